package zkconn_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/internal/zktest"
)

// unresolvable is a name that never resolves: .invalid is reserved for
// that (RFC 6761).
const unresolvable = "zk-decommissioned.invalid:2181"

// lockedBuffer collects a logger's output from the client's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func textLogger(w *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// TestDialSkipsUnresolvable: one name in the list that does not resolve
// no longer fails the session the other servers can give; it is named in
// a warning. Old behaviour: the client resolves the whole list up front
// and Dial failed with "lookup ...: no such host".
func TestDialSkipsUnresolvable(t *testing.T) {
	t.Parallel()
	srv := zktest.Standalone(t)
	for _, list := range []string{unresolvable + "," + srv.Addr(), srv.Addr() + "," + unresolvable} {
		var logs lockedBuffer
		s := dial(t, list, 4*time.Second, textLogger(&logs))
		if s.Servers() != srv.Addr() {
			t.Errorf("Dial(%q): Servers() = %q, want only %q", list, s.Servers(), srv.Addr())
		}
		if !strings.Contains(logs.String(), "zk-decommissioned.invalid:2181 (no such host)") {
			t.Errorf("Dial(%q) logged no warning naming the skipped server:\n%s", list, logs.String())
		}
	}
}

// TestDialNoneResolves: when no name resolves the error says which and
// what to check, at once rather than after the bound on connecting.
func TestDialNoneResolves(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	_, err := zkconn.Dial(ctx, unresolvable+",zk-other.invalid", 4*time.Second, nil)
	if !errors.Is(err, zkconn.ErrBadServers) {
		t.Fatalf("Dial with no resolvable name = %v, want ErrBadServers", err)
	}
	for _, want := range []string{"zk-decommissioned.invalid:2181 (no such host)", "zk-other.invalid:2181", "--zk"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if ctx.Err() != nil {
		t.Errorf("Dial waited for its context to end: %v", err)
	}
}

// TestDialUnreachableSaysWhatToDo: with nothing listening the user hears
// at once that nothing answers, and the final error says what to do.
func TestDialUnreachableSaysWhatToDo(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var logs lockedBuffer
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err = zkconn.Dial(ctx, addr, 10*time.Second, textLogger(&logs))
	if !errors.Is(err, zkconn.ErrUnreachable) {
		t.Fatalf("Dial to a closed port = %v, want ErrUnreachable", err)
	}
	for _, want := range []string{addr + ": connection refused", "start ZooKeeper there", "--zk or ZKDOG_ZK"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "zkconn") {
		t.Errorf("error %q names a Go package", err)
	}
	if !strings.Contains(logs.String(), "cannot reach ZooKeeper yet") {
		t.Errorf("no early warning while the client retried:\n%s", logs.String())
	}
}
