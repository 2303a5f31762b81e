//go:build linux

package supervise

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// guard is how long a test waits for something that should happen at
// once. It only keeps a broken test from hanging; nothing is timed.
const guard = 60 * time.Second

// output is an io.Writer safe for concurrent use whose content tests can
// wait on.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.buf.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return n, err
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output contains s.
func (o *output) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(guard)
	for {
		o.mu.Lock()
		ok := strings.Contains(o.buf.String(), s)
		ch := o.changed
		o.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("output never contained %q; got %q", s, o.String())
		}
	}
}

// lines waits until the output holds n complete lines and returns them.
func (o *output) lines(t testing.TB, n int) []string {
	t.Helper()
	deadline := time.After(guard)
	for {
		o.mu.Lock()
		s := o.buf.String()
		ch := o.changed
		o.mu.Unlock()
		if strings.Count(s, "\n") >= n {
			return strings.Split(s, "\n")[:n]
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("output never had %d lines; got %q", n, s)
		}
	}
}

// eventually polls cond until it holds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(guard)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting: %s", what)
		}
	}
}

// startSh runs `sh -c script`. Signals come from a channel nobody sends on
// unless the test changes cfg: real signal.Notify is process-wide, and a
// signal meant for one test's child must not reach another's. The child
// is stopped when the test ends, whatever happened.
func startSh(t testing.TB, script string, cfg Config) *Child {
	t.Helper()
	cfg.Path = "sh"
	cfg.Args = []string{"-c", script}
	if cfg.sigs == nil && cfg.Signals == nil {
		cfg.sigs = make(chan os.Signal)
	}
	c, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("cleanup Stop: %v", err)
		}
	})
	return c
}

// waitDone waits for the child to exit and returns its Exit.
func waitDone(t *testing.T, c *Child) Exit {
	t.Helper()
	select {
	case <-c.Done():
		return c.Exit()
	case <-time.After(guard):
		t.Fatalf("child %d never exited", c.Pid())
		return Exit{}
	}
}

// procState returns the state letter of pid from /proc/PID/stat, and its
// command name; "" if there is no such process.
func procStateOf(pid int) (state, comm string) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", ""
	}
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < 0 || close+3 > len(b) {
		return "", ""
	}
	return string(b[close+2 : close+3]), string(b[open+1 : close])
}

// dead reports whether pid is gone or a zombie nobody has reaped yet.
func dead(pid int) bool {
	s, _ := procStateOf(pid)
	return s == "" || s == "Z" || s == "X"
}

// waitAsleep waits until pid runs comm and sleeps in the kernel, so that
// what it did while starting up is behind it.
func waitAsleep(t testing.TB, pid int, comm string) {
	t.Helper()
	eventually(t, "process "+strconv.Itoa(pid)+" asleep in "+comm, func() bool {
		s, c := procStateOf(pid)
		return s == "S" && c == comm
	})
}

func atoiT(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("not a pid: %q", s)
	}
	return n
}
