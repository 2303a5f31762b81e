package zkserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Modes reported by the srvr four-letter word.
const (
	ModeStandalone = "standalone"
	ModeLeader     = "leader"
	ModeFollower   = "follower"
	ModeObserver   = "observer"
)

// ErrNotServing means the server answers four-letter words but does not
// serve clients yet (starting, electing a leader or syncing with one).
var ErrNotServing = errors.New("zookeeper is not serving requests")

// DefaultFourLetterTimeout bounds a four-letter word whose context has no
// deadline.
const DefaultFourLetterTimeout = 5 * time.Second

// notServingReply is what every four-letter word but a few (ruok, conf...)
// answers before the server serves.
const notServingReply = "This ZooKeeper instance is not currently serving requests"

// FourLetter sends a four-letter word such as "srvr", "mntr" or "stat" to the
// server at addr and returns its reply.
//
// Right after start-up ZooKeeper sometimes leaves the connection open after
// its reply; FourLetter then returns what arrived together with an error
// once ctx is done, or after DefaultFourLetterTimeout if ctx has no deadline.
func FourLetter(ctx context.Context, addr, cmd string) (string, error) {
	var b strings.Builder
	err := fourLetter(ctx, addr, cmd, func(line string) bool {
		b.WriteString(line)
		b.WriteByte('\n')
		return false
	})
	return b.String(), err
}

// fourLetter sends cmd to addr and calls fn on each line of the reply until
// fn returns true or the reply ends. Stopping at the line the caller needs
// sidesteps replies whose connection is not closed.
func fourLetter(ctx context.Context, addr, cmd string, fn func(line string) bool) (err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultFourLetterTimeout)
		defer cancel()
	}
	defer func() {
		if err != nil {
			// Report the context's error rather than the "i/o timeout" it
			// causes below. The connection's deadline is ctx's, but its
			// timer may fire first.
			if cerr := ctx.Err(); cerr != nil {
				err = cerr
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				err = context.DeadlineExceeded
			}
			err = fmt.Errorf("zkserver: %s to %s: %w", cmd, addr, err)
		}
	}()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	// The deadline covers expiry; this covers cancellation.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := conn.Write([]byte(cmd)); err != nil {
		return err
	}
	sc := bufio.NewScanner(conn)
	// Replies such as "wchp" or "dump" on a busy server have long lines.
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		if fn(sc.Text()) {
			return nil
		}
	}
	return sc.Err()
}

// queryMode asks addr for its srvr reply and returns the Mode line's value.
// go-zookeeper's FLWSrvr cannot be used: its parser rejects the output of
// ZooKeeper 3.8.
func queryMode(ctx context.Context, addr string) (string, error) {
	var mode string
	var notServing bool
	err := fourLetter(ctx, addr, "srvr", func(line string) bool {
		mode, notServing = parseSrvrLine(line)
		return mode != "" || notServing
	})
	switch {
	case mode != "":
		return mode, nil
	case notServing:
		return "", fmt.Errorf("zkserver: %s: %w", addr, ErrNotServing)
	case err != nil:
		return "", err
	default:
		return "", fmt.Errorf("zkserver: srvr to %s: reply has no Mode line", addr)
	}
}

// parseSrvrLine recognises the two srvr lines that tell whether and how a
// server serves.
func parseSrvrLine(line string) (mode string, notServing bool) {
	if m, ok := strings.CutPrefix(line, "Mode:"); ok {
		return strings.TrimSpace(m), false
	}
	return "", strings.HasPrefix(line, notServingReply)
}
