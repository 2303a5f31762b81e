// Package tty is what zkdog knows about the terminal on standard error:
// how wide it is, and one writer that the live progress line and the log
// lines share, so that a log line never lands on the end of the live line.
package tty

import (
	"bytes"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultWidth is assumed when the terminal does not say how wide it is:
// the width every terminal has had since the VT100.
const DefaultWidth = 80

// Width is the number of columns of the terminal f, or DefaultWidth when
// f is not a terminal or does not say.
func Width(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return DefaultWidth
	}
	return int(ws.Col)
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// clearLine returns the cursor to the start of the row and clears it.
const clearLine = "\r\033[K"

// Live is a writer with at most one live line at its end: Draw shows a
// line in place, and whatever is written meanwhile (a log line) first
// clears it and has it drawn again after, so that the two never mix.
type Live struct {
	mu   sync.Mutex
	out  io.Writer
	line string // the live line, "" when none is shown
	// partial: the last write did not end a line, so the live line waits
	// until one does.
	partial bool
}

// NewLive writes to out.
func NewLive(out io.Writer) *Live { return &Live{out: out} }

// Stderr is the process's standard error, shared by the live progress
// line and the logger.
var Stderr = NewLive(os.Stderr)

// Write writes p above the live line.
func (l *Live) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.line != "" && !l.partial {
		if _, err := io.WriteString(l.out, clearLine); err != nil {
			return 0, err
		}
	}
	n, err := l.out.Write(p)
	if err != nil {
		return n, err
	}
	l.partial = len(p) > 0 && !bytes.HasSuffix(p, []byte("\n"))
	if l.line != "" && !l.partial {
		_, err = io.WriteString(l.out, l.line)
	}
	return n, err
}

// Draw shows line in place of the live line.
func (l *Live) Draw(line string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.line = line
	if l.partial {
		return nil
	}
	_, err := io.WriteString(l.out, clearLine+line)
	return err
}

// Clear removes the live line, so that what follows starts on a row of
// its own.
func (l *Live) Clear() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.line == "" {
		return nil
	}
	l.line = ""
	if l.partial {
		return nil
	}
	_, err := io.WriteString(l.out, clearLine)
	return err
}
