// Package master creates a job and waits for it: it fills the queue, holds
// the start barrier, watches results and timers, hands the items of
// vanished workers out again, and says how the job ended. It never runs a
// work command itself.
package master

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// ErrNoItems: the items file holds no item.
var ErrNoItems = errors.New("no items")

// ErrNUL: an item holds a NUL byte, which no program can be given in an
// argument or the environment.
var ErrNUL = errors.New("an item holds a NUL byte")

// ReadItems reads one item per line from r. Line ends (\n or \r\n) are not
// part of an item, and blank lines (empty, or only spaces and tabs) are
// skipped, so a file written by hand or by a script on any platform gives
// the same items; spaces in a line with text are kept. An item with a NUL
// byte is refused with its line number: it would fail only at the worker,
// after the job was made.
func ReadItems(r io.Reader, name string) ([][]byte, error) {
	var items [][]byte
	br := bufio.NewReaderSize(r, 1<<16)
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		b = bytes.TrimRight(b, "\r\n")
		if err := checkLine(b); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
		if len(bytes.Trim(b, " \t")) > 0 {
			items = append(items, b)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: %s has no items (one per line; blank lines are skipped)", ErrNoItems, name)
	}
	return items, nil
}

func checkLine(b []byte) error {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return fmt.Errorf("%w at byte %d: remove it (an item is text, given to the program in an argument or the environment)", ErrNUL, i+1)
	}
	return job.CheckItem(b)
}

// ReadItemsFile reads items from a file, or standard input for "-".
func ReadItemsFile(name string) ([][]byte, error) {
	if name == "-" {
		if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(os.Stderr, "zkdog: reading items from standard input, one per line; end with Ctrl-D")
		}
		return ReadItems(os.Stdin, "standard input")
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err // *PathError names the file and what is wrong
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
	// ExpectWorkers, for a job without items: how many workers must have
	// come and gone before it is finished; 0 means one.
	ExpectWorkers int
	// Origins, for a job re-running another's items (zkdog init --from),
	// is each item's index in the job it first came from; From names
	// that job.
	Origins []int
	From    string
	// Policy is what happens when an attempt ends badly.
	Policy protocol.Policy
}

// Create writes the job. Nothing is left behind if it fails.
func Create(j *job.Job, s Spec) error {
	return Fill(context.Background(), j, s, nil)
}

// Fill is Create, stopped when ctx is done (nothing is left behind then
// either), reporting its progress to progress if non-nil.
func Fill(ctx context.Context, j *job.Job, s Spec, progress job.Progress) error {
	return j.FillFrom(ctx, protocol.Job{
		TimerMillis:   s.Timer.Milliseconds(),
		Retries:       s.Retries,
		Sync:          s.Sync,
		Master:        s.Master,
		ExpectWorkers: s.ExpectWorkers,
		From:          s.From,
		Policy:        s.Policy,
	}, s.Items, s.Origins, progress)
}
