package zkproxy_test

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/zkproxy"
	"github.com/zkdog/zkdog/internal/zktest"
)

// waitTimeout bounds every wait; none of them should come near it.
const waitTimeout = 15 * time.Second

// tick makes the server expire sessions within a tick of their timeout.
var tick = zktest.WithTickTime(100 * time.Millisecond)

var acl = zk.WorldACL(zk.PermAll)

func TestTrafficPasses(t *testing.T) {
	srv := zktest.Standalone(t, tick)
	p := zkproxy.ForTest(t, srv.Addr())
	multis := p.Observe(zkproxy.Match{Op: zkproxy.OpMulti, Times: zkproxy.Forever})
	c := dial(t, p.Addr(), 4*time.Second)
	direct := zktest.Connect(t, srv.Addr())

	mustCreate(t, c.Conn, "/pass", "a")
	data, _, watch, err := c.GetW("/pass")
	if err != nil || string(data) != "a" {
		t.Fatalf("GetW: %q, %v", data, err)
	}
	if _, err := direct.Set("/pass", []byte("b"), -1); err != nil {
		t.Fatal(err)
	}
	if ev := awaitEvent(t, watch); ev.Type != zk.EventNodeDataChanged || ev.Path != "/pass" {
		t.Fatalf("watch: got %+v", ev)
	}

	_, err = c.Multi(
		&zk.CreateRequest{Path: "/pass/x", Acl: acl},
		&zk.SetDataRequest{Path: "/pass", Data: []byte("c"), Version: -1},
		&zk.CheckVersionRequest{Path: "/pass/x", Version: 0},
		&zk.DeleteRequest{Path: "/pass/x", Version: -1},
	)
	if err != nil {
		t.Fatalf("Multi: %v", err)
	}
	if data, _, err := direct.Get("/pass"); err != nil || string(data) != "c" {
		t.Fatalf("after the multi: %q, %v", data, err)
	}
	want := []zkproxy.SubOp{
		{Op: zkproxy.OpCreate, Path: "/pass/x"}, {Op: zkproxy.OpSetData, Path: "/pass"},
		{Op: zkproxy.OpCheck, Path: "/pass/x"}, {Op: zkproxy.OpDelete, Path: "/pass/x"},
	}
	if reqs := multis.Requests(); len(reqs) != 1 || !equalOps(reqs[0].Ops, want) {
		t.Fatalf("the proxy saw multis %v, want one of %v", reqs, want)
	}
}

func TestDropConnectionOnPath(t *testing.T) {
	srv := zktest.Standalone(t, tick)
	p := zkproxy.ForTest(t, srv.Addr())
	direct := zktest.Connect(t, srv.Addr())
	mustCreate(t, direct, "/leases", "")
	connects := p.Observe(zkproxy.Match{Op: zkproxy.OpConnect, Times: zkproxy.Forever})
	c := dial(t, p.Addr(), 4*time.Second)
	session := c.SessionID()

	r := p.DropConnection(zkproxy.Match{Op: zkproxy.OpCreate, Path: "/leases/"})
	_, err := c.Create("/leases/a", nil, 0, acl)
	if !errors.Is(err, zk.ErrConnectionClosed) {
		t.Fatalf("Create through the dropped connection: got %v, want %v", err, zk.ErrConnectionClosed)
	}
	awaitFired(t, r)
	if ok, _, err := direct.Exists("/leases/a"); err != nil || ok {
		t.Fatalf("the server has /leases/a (%v, %v); the request should not have reached it", ok, err)
	}

	// Requests made before the client has its session back can fail with
	// zk.ErrNoServer; see TestPartitionLongerThanSessionTimeout.
	c.await(t, zk.StateHasSession)
	if id := c.SessionID(); id != session {
		t.Fatalf("session 0x%x after the reconnect, want 0x%x", id, session)
	}
	if reqs := connects.Requests(); len(reqs) != 2 || reqs[1].SessionID != session || reqs[1].Conn != 2 {
		t.Fatalf("connects %v, want a second one resuming session 0x%x", reqs, session)
	}
	mustCreate(t, c.Conn, "/leases/a", "")
	if n := r.Count(); n != 1 {
		t.Fatalf("the rule fired %d times, want once", n)
	}
}

func TestDropReplyOnCreateInMulti(t *testing.T) {
	srv := zktest.Standalone(t, tick)
	p := zkproxy.ForTest(t, srv.Addr())
	direct := zktest.Connect(t, srv.Addr())
	mustCreate(t, direct, "/multi", "")
	c := dial(t, p.Addr(), 4*time.Second)
	session := c.SessionID()
	ops := []any{
		&zk.CreateRequest{Path: "/multi/a", Acl: acl},
		&zk.CreateRequest{Path: "/multi/b", Acl: acl},
	}

	r := p.DropReply(zkproxy.Match{Op: zkproxy.OpCreate, Path: "/multi/b", PathMode: zkproxy.Exact})
	if _, err := c.Multi(ops...); !errors.Is(err, zk.ErrConnectionClosed) {
		t.Fatalf("Multi whose reply is dropped: got %v, want %v", err, zk.ErrConnectionClosed)
	}
	awaitFired(t, r)
	for _, path := range []string{"/multi/a", "/multi/b"} {
		if ok, _, err := direct.Exists(path); err != nil || !ok {
			t.Fatalf("the server lacks %s (%v, %v); it should have applied the multi", path, ok, err)
		}
	}
	if reqs := r.Requests(); len(reqs) != 1 || reqs[0].Op != zkproxy.OpMulti {
		t.Fatalf("the rule fired on %v, want the multi", reqs)
	}

	// What a retry sees: the multi failed as a whole, on the server's
	// word, although it was applied.
	c.await(t, zk.StateHasSession)
	if id := c.SessionID(); id != session {
		t.Fatalf("session 0x%x after the reconnect, want 0x%x", id, session)
	}
	if _, err := c.Multi(ops...); !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("retried Multi: got %v, want %v", err, zk.ErrNodeExists)
	}
}

func TestPartitionLongerThanSessionTimeout(t *testing.T) {
	srv := zktest.Standalone(t, tick)
	p := zkproxy.ForTest(t, srv.Addr())
	direct := zktest.Connect(t, srv.Addr())
	c := dial(t, p.Addr(), time.Second)
	session := c.SessionID()
	if _, err := c.Create("/eph", nil, zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	ok, _, gone, err := direct.ExistsW("/eph")
	if err != nil || !ok {
		t.Fatalf("ExistsW: %v, %v", ok, err)
	}

	p.Partition()
	// Sent while connected, held by the partition: the client gives up
	// on it at its read timeout, two thirds of the session timeout.
	sentBefore := async(func() error { _, _, err := c.Get("/"); return err })
	c.await(t, zk.StateDisconnected)
	// Queued while disconnected: never sent, failed by the reconnect.
	queued := async(func() error { _, _, err := c.Get("/"); return err })
	// Partitioned until the server has expired the session, however long
	// that takes, rather than for a guess at it.
	if ev := awaitEvent(t, gone); ev.Type != zk.EventNodeDeleted {
		t.Fatalf("watch on the ephemeral: got %+v", ev)
	}
	p.Heal()

	c.await(t, zk.StateExpired)
	c.await(t, zk.StateHasSession)
	if id := c.SessionID(); id == session {
		t.Fatalf("still session 0x%x after expiry", id)
	}
	if err := <-sentBefore; !errors.Is(err, zk.ErrConnectionClosed) {
		t.Errorf("request sent into the partition: got %v, want %v", err, zk.ErrConnectionClosed)
	}
	if err := <-queued; !errors.Is(err, zk.ErrNoServer) {
		t.Errorf("request queued during the partition: got %v, want %v", err, zk.ErrNoServer)
	}
	if ok, _, err := c.Exists("/eph"); err != nil || ok {
		t.Fatalf("through the new session, /eph exists: %v, %v", ok, err)
	}
}

func TestPartitionShorterThanSessionTimeout(t *testing.T) {
	srv := zktest.Standalone(t, tick)
	p := zkproxy.ForTest(t, srv.Addr())
	direct := zktest.Connect(t, srv.Addr())
	// The client reads with a timeout of 4s and pings every 2s, so that a
	// partition of 0.5s goes unnoticed by both sides however it falls
	// between pings.
	c := dial(t, p.Addr(), 6*time.Second)
	session := c.SessionID()
	if _, err := c.Create("/eph", []byte("x"), zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}

	healed := p.PartitionFor(500 * time.Millisecond)
	held := async(func() error { _, _, err := c.Get("/eph"); return err })
	select {
	case err := <-held:
		select {
		case <-healed:
		default:
			t.Fatal("a reply came through the partition")
		}
		if err != nil {
			t.Fatalf("Get held by the partition: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no reply after the partition healed")
	}

	if id := c.SessionID(); id != session {
		t.Fatalf("session 0x%x after the partition, want 0x%x", id, session)
	}
	if ok, stat, err := direct.Exists("/eph"); err != nil || !ok || stat.EphemeralOwner != session {
		t.Fatalf("the ephemeral did not survive: %v, %+v, %v", ok, stat, err)
	}
	select {
	case s := <-c.states:
		t.Fatalf("the client saw %v during a short partition", s)
	default:
	}
}

// The server opens a session whose id the client never learns: the
// client asks for another, and the first is left to expire.
func TestDropReplyToConnect(t *testing.T) {
	srv := zktest.Standalone(t, tick)
	p := zkproxy.ForTest(t, srv.Addr())
	connects := p.Observe(zkproxy.Match{Op: zkproxy.OpConnect, Times: zkproxy.Forever})
	r := p.DropReply(zkproxy.Match{Op: zkproxy.OpConnect})

	c := dial(t, p.Addr(), 4*time.Second)
	awaitFired(t, r)
	reqs := connects.Requests()
	if len(reqs) != 2 || reqs[0].SessionID != 0 || reqs[1].SessionID != 0 {
		t.Fatalf("connects %v, want two asking for a new session", reqs)
	}
	if _, err := c.Sync("/"); err != nil {
		t.Fatal(err)
	}
}

func TestDropAll(t *testing.T) {
	srv := zktest.Standalone(t, tick)
	p := zkproxy.ForTest(t, srv.Addr())
	c := dial(t, p.Addr(), 4*time.Second)
	session := c.SessionID()

	p.DropAll()
	c.await(t, zk.StateDisconnected)
	c.await(t, zk.StateHasSession)
	if id := c.SessionID(); id != session {
		t.Fatalf("session 0x%x after DropAll, want 0x%x", id, session)
	}
	if _, err := c.Sync("/"); err != nil {
		t.Fatal(err)
	}
}

// Close must end every goroutine the proxy started, including those of a
// connection held by a partition before it reached the server.
func TestCloseEndsEverything(t *testing.T) {
	srv := zktest.Standalone(t, tick)
	before := runtime.NumGoroutine()
	p, err := zkproxy.Start(srv.Addr(), zkproxy.WithLogf(t.Logf))
	if err != nil {
		t.Fatal(err)
	}
	// The first may or may not reach the server before the partition;
	// the second is held short of it.
	through := rawDial(t, p.Addr())
	healed := p.PartitionFor(time.Hour)
	held := rawDial(t, p.Addr())
	poll(t, "the proxy accepts both connections", func() bool { return p.Conns() == 2 })

	closed := async(p.Close)
	select {
	case <-closed:
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return")
	}
	select {
	case <-healed:
	default:
		t.Error("Close left the partition's channel open")
	}
	for _, c := range []net.Conn{through, held} {
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("a connection was still open after Close")
		}
	}
	if n := p.Conns(); n != 0 {
		t.Errorf("%d connections after Close", n)
	}
	// The runtime's own goroutines, such as the network poller's, may take
	// a moment to go.
	poll(t, "goroutines back to their number before Start", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitTimeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is a session through the proxy whose state changes a test can
// wait for, in order.
type client struct {
	*zk.Conn
	states chan zk.State
}

func dial(t *testing.T, addr string, timeout time.Duration) *client {
	t.Helper()
	logger := &testLogger{t: t}
	c := &client{states: make(chan zk.State, 256)}
	conn, _, err := zk.Connect([]string{addr}, timeout, zk.WithLogger(logger),
		zk.WithEventCallback(func(ev zk.Event) {
			if ev.Type != zk.EventSession {
				return
			}
			select {
			case c.states <- ev.State:
			default:
				logger.Printf("test lost session event %v", ev.State)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		logger.stop()
	})
	c.Conn = conn
	c.await(t, zk.StateHasSession)
	return c
}

// await consumes state changes until want.
func (c *client) await(t *testing.T, want zk.State) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case s := <-c.states:
			if s == want {
				return
			}
		case <-deadline:
			t.Fatalf("the client never reached %v (now %v)", want, c.State())
		}
	}
}

func awaitFired(t *testing.T, r *zkproxy.Rule) {
	t.Helper()
	select {
	case <-r.Fired():
	case <-time.After(waitTimeout):
		t.Fatal("the rule never fired")
	}
}

func awaitEvent(t *testing.T, ch <-chan zk.Event) zk.Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(waitTimeout):
		t.Fatal("no watch event")
		return zk.Event{}
	}
}

func mustCreate(t *testing.T, c *zk.Conn, path, data string) {
	t.Helper()
	if _, err := c.Create(path, []byte(data), 0, acl); err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
}

func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func equalOps(a, b []zkproxy.SubOp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// testLogger sends the client's log to t.Log until the test ends: the
// client's goroutines outlive Close, and t.Log after a test panics.
type testLogger struct {
	t       *testing.T
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
