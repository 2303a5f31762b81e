// Package master creates a job and waits for it: it fills the queue, holds
// the start barrier, watches results and timers, hands the items of
// vanished workers out again, and says how the job ended. It never runs a
// work command itself.
package master

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// Exit codes of zkdog master (and zkdog wait). README's table lists them;
// a script after the batch job branches on them.
const (
	ExitOK          = 0 // every item done with exit 0
	ExitFailed      = 1 // every item has a result, some failed
	ExitUsage       = 2 // bad flags or input; nothing was changed
	ExitExpired     = 3 // a timer went un-kicked longer than the limit
	ExitSyncTimeout = 4 // no worker released the barrier in time
	ExitLost        = 5 // items whose workers vanished more often than retries allow
	ExitZooKeeper   = 6 // ZooKeeper unreachable or the job removed under us
)

// ErrNoItems: the items file holds no item.
var ErrNoItems = errors.New("master: no items")

// ReadItems reads one item per line from r. Line ends (\n or \r\n) are not
// part of an item and blank lines are skipped, so a file written by hand or
// by a script on any platform gives the same items.
func ReadItems(r io.Reader, name string) ([][]byte, error) {
	var items [][]byte
	br := bufio.NewReaderSize(r, 1<<16)
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		b = bytes.TrimRight(b, "\r\n")
		if len(b) > protocol.MaxItemBytes {
			return nil, fmt.Errorf("%w: %s line %d is %d bytes, over the %d-byte item limit; pass a file name or a key instead of the data",
				job.ErrTooLarge, name, line, len(b), protocol.MaxItemBytes)
		}
		if len(b) > 0 {
			items = append(items, b)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("master: reading %s: %w", name, err)
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: %s has no items (one per line; blank lines are skipped)", ErrNoItems, name)
	}
	return items, nil
}

// ReadItemsFile reads items from a file, or standard input for "-".
func ReadItemsFile(name string) ([][]byte, error) {
	if name == "-" {
		return ReadItems(os.Stdin, "standard input")
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("master: items file: %w", err)
	}
	defer f.Close()
	return ReadItems(f, name)
}

// Spec describes a job to create.
type Spec struct {
	Items   [][]byte // nil for a timer-only job
	Timer   time.Duration
	Retries int
	Sync    bool
	Master  string // host:pid, for people reading the job node
}

// Create writes the job. Nothing is left behind if it fails.
func Create(j *job.Job, s Spec) error {
	return j.Create(protocol.Job{
		TimerMillis: s.Timer.Milliseconds(),
		Retries:     s.Retries,
		Sync:        s.Sync,
		Master:      s.Master,
	}, s.Items)
}
