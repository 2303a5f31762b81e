package zkconn_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/internal/zktest"
)

// hangGuard bounds every wait. It is a guard against a hang, not a
// performance assertion: the machines running these tests are shared.
const hangGuard = 30 * time.Second

func TestParseServers(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"zk1", []string{"zk1:2181"}},
		{"zk1:2182", []string{"zk1:2182"}},
		{"zk1:2181,zk2:2181,zk3:2181", []string{"zk1:2181", "zk2:2181", "zk3:2181"}},
		{"zk1,zk2:3000", []string{"zk1:2181", "zk2:3000"}},
		{" zk1 , zk2:3000 ", []string{"zk1:2181", "zk2:3000"}},
		{"zk1,,zk2,", []string{"zk1:2181", "zk2:2181"}},
		{"127.0.0.1", []string{"127.0.0.1:2181"}},
		{"[::1]", []string{"[::1]:2181"}},
		{"[::1]:2182", []string{"[::1]:2182"}},
		{"::1", []string{"[::1]:2181"}},
		{"[fe80::1], [2001:db8::7]:2888", []string{"[fe80::1]:2181", "[2001:db8::7]:2888"}},
	} {
		got, err := zkconn.ParseServers(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseServers(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		for _, a := range got {
			if _, _, err := net.SplitHostPort(a); err != nil {
				t.Errorf("ParseServers(%q) gave %q, not a host:port: %v", c.in, a, err)
			}
		}
	}
}

func TestParseServersRefuses(t *testing.T) {
	for _, c := range []struct{ in, hint string }{
		{"", "--zk"},
		{" ", "--zk"},
		{",, ,", "--zk"},
		{"zk1:2181/zkdog", "--root"}, // a chroot: zkdog takes the path as --root
		{"zk1:2181,zk2:2181/zkdog", "--root"},
		{"zk1/zkdog", "--root"},
	} {
		_, err := zkconn.ParseServers(c.in)
		if !errors.Is(err, zkconn.ErrBadServers) {
			t.Errorf("ParseServers(%q) = %v, want ErrBadServers", c.in, err)
			continue
		}
		if !strings.Contains(err.Error(), c.hint) {
			t.Errorf("ParseServers(%q) = %q; want it to point at %s", c.in, err, c.hint)
		}
	}
}

// TestParseServersPorts: a server whose port is empty or not a number
// cannot be dialled; the list should be refused at once rather than dialled
// until --session-timeout runs out.
func TestParseServersPorts(t *testing.T) {
	for _, in := range []string{"zk1:", "zk1:abc", "zk1:99999"} {
		got, err := zkconn.ParseServers(in)
		if err == nil && !slices.Equal(got, []string{"zk1:2181"}) {
			t.Errorf("ParseServers(%q) = %q; want ErrBadServers (or the default port)", in, got)
		}
	}
}

func TestDialBadServers(t *testing.T) {
	// Refused before any network traffic, whatever the context allows.
	_, err := zkconn.Dial(t.Context(), "zk1:2181/chroot", time.Second, nil)
	if !errors.Is(err, zkconn.ErrBadServers) {
		t.Errorf("Dial with a chroot = %v, want ErrBadServers", err)
	}
}

// TestDialUnreachable: nothing listens on the port; Dial gives up with
// ErrUnreachable when the caller's context ends, not before and not never.
func TestDialUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	type result struct {
		s   *zkconn.Session
		err error
	}
	res := make(chan result, 1)
	go func() {
		s, err := zkconn.Dial(ctx, addr, 10*time.Second, nil)
		res <- result{s, err}
	}()
	var r result
	select {
	case r = <-res:
	case <-time.After(hangGuard):
		t.Fatalf("Dial(%s) still running %v after its context ended", addr, hangGuard)
	}
	if r.s != nil {
		r.s.Close()
	}
	if !errors.Is(r.err, zkconn.ErrUnreachable) {
		t.Fatalf("Dial to a closed port = %v, want ErrUnreachable", r.err)
	}
	if ctx.Err() == nil {
		t.Errorf("Dial gave up before its context ended: %v", r.err)
	}
	if !strings.Contains(r.err.Error(), addr) || !strings.Contains(r.err.Error(), "--zk") {
		t.Errorf("error %q should name %s and point at --zk", r.err, addr)
	}
}

// dial opens a session or fails the test.
func dial(t *testing.T, servers string, timeout time.Duration, log *slog.Logger, opts ...zkconn.Option) *zkconn.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	s, err := zkconn.Dial(ctx, servers, timeout, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// eventually polls cond, for state no watch or channel reports.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after %v", what, hangGuard)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDial(t *testing.T) {
	t.Parallel()
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond), zktest.WithSessionTimeouts(0, 2*time.Second))

	t.Run("session", func(t *testing.T) {
		s := dial(t, srv.Addr(), time.Second, nil)
		if s.ID() == 0 {
			t.Fatal("ID() = 0 after Dial returned")
		}
		if s.ID() != s.Conn().SessionID() {
			t.Errorf("ID() = %#x, the connection's session is %#x", s.ID(), s.Conn().SessionID())
		}
		if s.Servers() != srv.Addr() {
			t.Errorf("Servers() = %q, want %q", s.Servers(), srv.Addr())
		}
		// The session is usable: an ephemeral node is ours.
		p, err := s.Conn().Create("/dial", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
		if err != nil {
			t.Fatal(err)
		}
		_, st, err := s.Conn().Exists(p)
		if err != nil || st.EphemeralOwner != s.ID() {
			t.Errorf("ephemeral %s: owner %#x, %v; want the session %#x", p, st.EphemeralOwner, err, s.ID())
		}
		select {
		case <-s.Lost():
			t.Errorf("Lost closed on a healthy session: %v", s.Err())
		default:
		}
		if s.Err() != nil {
			t.Errorf("Err() = %v on a healthy session", s.Err())
		}
	})

	t.Run("two sessions", func(t *testing.T) {
		a, b := dial(t, srv.Addr(), time.Second, nil), dial(t, srv.Addr(), time.Second, nil)
		if a.ID() == b.ID() {
			t.Errorf("two Dials share session %#x", a.ID())
		}
	})

	t.Run("negotiated timeout", func(t *testing.T) {
		// The server grants at most 2s, whatever is asked.
		s := dial(t, srv.Addr(), 30*time.Second, nil)
		if got := s.Timeout(); got != 2*time.Second {
			t.Errorf("Timeout() = %v, want the granted 2s", got)
		}
	})

	t.Run("default timeout", func(t *testing.T) {
		// Zero asks for DefaultSessionTimeout (10s), which this server
		// clamps too; what matters is that a session is granted.
		s := dial(t, srv.Addr(), 0, nil)
		if got := s.Timeout(); got != 2*time.Second {
			t.Errorf("Timeout() = %v, want the granted 2s", got)
		}
	})
}

// blockingHandler holds up the go-zookeeper client's "authenticated" log
// line, the only place the client tells the granted timeout, until
// released. The client prints that line just after it reports the
// session; Session reads the timeout off the connect reply instead, and
// must not depend on the line.
type blockingHandler struct {
	release chan struct{}
	once    sync.Once
	gaveUp  atomic.Bool // the line was held until the handler's own timeout
}

func (h *blockingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *blockingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *blockingHandler) WithGroup(string) slog.Handler            { return h }
func (h *blockingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "authenticated:") {
		select {
		case <-h.release:
		case <-time.After(5 * time.Second): // lets a Dial that waits for it go on
			h.gaveUp.Store(true)
		}
	}
	return nil
}

// TestDialTimeoutKnownOnReturn: Timeout is documented as the granted
// timeout, and the deadlines are computed from it; a caller that reads it
// right after Dial (to pick a kick interval, say) must get the granted
// value, not the one it asked for, and Dial must not wait for a slow log.
func TestDialTimeoutKnownOnReturn(t *testing.T) {
	t.Parallel()
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond), zktest.WithSessionTimeouts(0, 2*time.Second))
	h := &blockingHandler{release: make(chan struct{})}
	defer close(h.release)
	s := dial(t, srv.Addr(), 30*time.Second, slog.New(h))
	if h.gaveUp.Load() {
		t.Error("Dial returned only after the client's log line was let go")
	}
	if got := s.Timeout(); got != 2*time.Second {
		t.Errorf("Timeout() = %v right after Dial, want the granted 2s", got)
	}
}

// TestLostAfterSessionTimeout: the server dies and nothing comes back. The
// server cannot say the session expired, so Session closes Lost by its own
// clock once the server may have expired it: a session timeout, less the
// margin, after the last request it answered was sent.
func TestLostAfterSessionTimeout(t *testing.T) {
	t.Parallel()
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	s := dial(t, srv.Addr(), time.Second, nil)
	eventually(t, "reporting the granted 1s", func() bool { return s.Timeout() == time.Second })

	killed := time.Now()
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Lost():
	case <-time.After(hangGuard):
		t.Fatalf("Lost still open %v after the server was killed (session timeout %v)", hangGuard, s.Timeout())
	}
	lostAt := time.Now()
	select {
	case <-s.Endangered():
	default:
		t.Error("Lost closed, Endangered still open")
	}
	// Not timing assertions. Nothing is answered once the server is dead,
	// so EarliestExpiry stays where it was at the kill. Lost must not come
	// before it, and it cannot count from later than the last data heard
	// (it counts from when the request that data answered was sent).
	expiry, ok := s.EarliestExpiry()
	if !ok {
		t.Fatal("EarliestExpiry not known")
	}
	if lostAt.Before(expiry) {
		t.Errorf("Lost closed %v before EarliestExpiry", expiry.Sub(lostAt))
	}
	if limit := s.LastHeard().Add(s.Timeout() - zkconn.ExpiryMargin(s.Timeout())); expiry.After(limit) {
		t.Errorf("EarliestExpiry %v after the last data heard plus timeout less margin", expiry.Sub(limit))
	}
	t.Logf("Lost %v after the kill", lostAt.Sub(killed))
	err := s.Err()
	if !errors.Is(err, zkconn.ErrLost) {
		t.Fatalf("Err() = %v, want ErrLost", err)
	}
	if !strings.Contains(err.Error(), "session timeout") || !strings.Contains(err.Error(), "1s") {
		t.Errorf("Err() = %q; want it to name the session timeout (1s)", err)
	}
}

// TestShortDisconnectKeepsSession: the server restarts well within the
// session timeout; the client resumes the same session, its ephemerals
// survive and Lost stays open past the moment the disconnection deadline
// would have fired.
func TestShortDisconnectKeepsSession(t *testing.T) {
	t.Parallel()
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	const timeout = 6 * time.Second
	s := dial(t, srv.Addr(), timeout, nil)
	eventually(t, "reporting the granted timeout", func() bool { return s.Timeout() == timeout })
	id := s.ID()
	node, err := s.Conn().Create("/mine", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatal(err)
	}

	// Nothing is answered while the server is down, so this is the
	// deadline the restart must beat.
	expiry, _ := s.EarliestExpiry()
	killed := time.Now()
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := restart(t, srv); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(hangGuard); s.Conn().State() != zk.StateHasSession; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(expiry) {
			// The premise failed, not the code: the session may be gone
			// before the client could resume it. Either the restart took
			// that long on this machine, or the client connected while
			// the server was starting, a connection ZooKeeper 3.8.0
			// neither answers nor closes (the client then waits ten read
			// timeouts for its connect reply).
			t.Skipf("no session again %v after the kill, past the session's earliest expiry %v after it (state %v)",
				time.Since(killed), expiry.Sub(killed), s.Conn().State())
		}
		if time.Now().After(deadline) {
			if srv.Pid() == 0 {
				// The premise failed, not the code: another process on this
				// machine took the port while the server was down.
				t.Skipf("the restarted server is not running:\n%s", srv.LogTail(10))
			}
			t.Fatalf("the client has not reconnected %v after the server came back (state %v)", hangGuard, s.Conn().State())
		}
	}
	if time.Now().After(expiry) {
		// The premise failed, not the code: the restart took longer than
		// the session may live on this machine.
		t.Skipf("the server took %v to come back, past the session's earliest expiry %v after the kill", time.Since(killed), expiry.Sub(killed))
	}
	if got := s.Conn().SessionID(); got != id {
		t.Fatalf("after the restart the client has session %#x, want the same %#x", got, id)
	}
	_, st, err := s.Conn().Exists(node)
	if err != nil || st == nil || st.EphemeralOwner != id {
		t.Fatalf("ephemeral %s after the restart: %+v, %v; want it still owned by %#x", node, st, err, id)
	}
	// A negative check needs a wait: without the restored connection Lost
	// would close at expiry, before killed+timeout. Watch Lost until
	// then, with some slack.
	select {
	case <-s.Lost():
		t.Fatalf("Lost closed after the session resumed: %v", s.Err())
	case <-time.After(time.Until(killed.Add(timeout + 500*time.Millisecond))):
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err() = %v after a short disconnection", err)
	}
	if s.ID() != id {
		t.Errorf("ID() = %#x, want %#x", s.ID(), id)
	}
}

func restart(t *testing.T, srv *zkserver.Server) error {
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	return srv.Restart(ctx)
}
