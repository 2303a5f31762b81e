// Package zktest runs real ZooKeeper servers for tests, through zkserver.
//
//	func TestLock(t *testing.T) {
//		srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
//		conn := zktest.Connect(t, srv.Addr())
//		...
//	}
//
//	func TestFailover(t *testing.T) {
//		e := zktest.Ensemble(t, 3)
//		conn := zktest.Connect(t, e.ConnString())
//		leader, err := e.Leader(t.Context())
//		...
//		err = e.Kill(leader)
//		newLeader, err := e.WaitLeader(t.Context())
//		...
//	}
//
// TLS servers and clients get their certificates from a CA made for the
// test (NewCA, CA.Issue): see CA.
//
// Servers are stopped and their directories removed when the test ends;
// if it failed, the end of each server's log is logged first. When
// ZooKeeper is not installed the test is skipped under -short and fails
// otherwise, so that CI cannot pass without running these tests.
//
// A standalone server takes about 0.3s to start and an ensemble of three
// about 1s: tests that can share one should start it in a parent test and
// use it from subtests.
package zktest

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/zkserver"
)

// Option adjusts the zkserver.Config of a server or ensemble. Any
// func(*zkserver.Config) converts to an Option, for the settings that
// have no With function.
type Option func(*zkserver.Config)

// WithTickTime sets ZooKeeper's tickTime (default zkserver.DefaultTickTime).
// The minimum session timeout is two ticks unless set by
// WithSessionTimeouts.
func WithTickTime(d time.Duration) Option {
	return func(c *zkserver.Config) { c.TickTime = d }
}

// WithSessionTimeouts sets the bounds of the session timeouts the server
// grants; 0 keeps a bound's default.
func WithSessionTimeouts(minTimeout, maxTimeout time.Duration) Option {
	return func(c *zkserver.Config) {
		c.MinSessionTimeout, c.MaxSessionTimeout = minTimeout, maxTimeout
	}
}

// WithLog copies the JVMs' output to w at the given SLF4J level ("info"
// shows ZooKeeper's own account of elections and sessions; "" keeps
// zkserver.DefaultLogLevel). Output ends when the server stops.
func WithLog(w io.Writer, level string) Option {
	return func(c *zkserver.Config) { c.Log, c.LogLevel = w, level }
}

// Standalone starts a standalone server that lives until the end of the
// test.
func Standalone(t testing.TB, opts ...Option) *zkserver.Server {
	t.Helper()
	s, err := zkserver.Start(t.Context(), config(t, opts))
	if err != nil {
		fail(t, err, testing.Short())
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("zktest: %v", err)
		}
	})
	// Registered last so that it runs first, while the log still exists.
	t.Cleanup(func() { logTailsIfFailed(t, s) })
	return s
}

// Ensemble starts an ensemble of n members that lives until the end of the
// test. It returns once a leader serves and the other members follow it.
func Ensemble(t testing.TB, n int, opts ...Option) *zkserver.Ensemble {
	t.Helper()
	e, err := zkserver.StartEnsemble(t.Context(), n, config(t, opts))
	if err != nil {
		fail(t, err, testing.Short())
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("zktest: %v", err)
		}
	})
	t.Cleanup(func() { logTailsIfFailed(t, e.Members()...) })
	return e
}

func config(t testing.TB, opts []Option) zkserver.Config {
	// In the test's temporary directory, whose name tells which test a
	// server belongs to, and which the testing package removes even if a
	// failed start leaves something behind.
	cfg := zkserver.Config{Dir: t.TempDir()}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// fail ends the test after a failed start. Only a missing installation may
// skip it, and only in short mode: a silent skip would let CI pass without
// a single ZooKeeper test having run.
func fail(t testing.TB, err error, short bool) {
	t.Helper()
	if short && errors.Is(err, zkserver.ErrNotInstalled) {
		t.Skip(err)
	}
	t.Fatal(err)
}

func logTailsIfFailed(t testing.TB, servers ...*zkserver.Server) {
	if !t.Failed() {
		return
	}
	for _, s := range servers {
		t.Logf("zktest: end of %s:\n%s", s.LogPath(), s.LogTail(40))
	}
}

// SessionTimeout is the session timeout Connect asks for.
const SessionTimeout = 10 * time.Second

// connectTimeout bounds how long Connect waits for a session.
const connectTimeout = 30 * time.Second

// Connect opens a session with the servers, given as addresses,
// connection strings or both, waits until it is established and closes it
// when the test ends. The client logs through t.Log.
func Connect(t testing.TB, servers ...string) *zk.Conn {
	t.Helper()
	var addrs []string
	for _, s := range servers {
		addrs = append(addrs, strings.Split(s, ",")...)
	}
	logger := &testLogger{t: t}
	conn, events, err := zk.Connect(addrs, SessionTimeout, zk.WithLogger(logger))
	if err != nil {
		t.Fatalf("zktest: connect to %v: %v", addrs, err)
	}
	t.Cleanup(func() {
		conn.Close()
		logger.stop()
	})
	timeout := time.NewTimer(connectTimeout)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("zktest: connect to %v: connection closed before a session was established", addrs)
			}
			if ev.State == zk.StateHasSession {
				return conn
			}
		case <-timeout.C:
			t.Fatalf("zktest: connect to %v: no session after %v (state %v)", addrs, connectTimeout, conn.State())
		}
	}
}

// testLogger sends go-zookeeper's log to t.Log until the test ends. The
// client's goroutines outlive Close, and t.Log after the end of a test
// panics.
type testLogger struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

func (l *testLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("zk: "+format, args...)
	}
}

func (l *testLogger) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
}
