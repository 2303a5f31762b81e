package job_test

// Regression tests for the faults the protocol version 2 rework fixed.
// Each one injects its fault with zkproxy (or a session expiry) and
// asserts what a participant would see; none relies on timing luck: waits
// are on channels or polls with a deadline, and faultGuard only bounds a
// hang.

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkproxy"
	"github.com/zkdog/zkdog/internal/zktest"
)

// faultGuard bounds every wait of these tests. It guards against a hang;
// it is no performance assertion.
const faultGuard = 30 * time.Second

func faultSpec() protocol.Job { return protocol.Job{TimerMillis: 60_000} }

// faultReadySpec creates a job of n items through conn and returns its
// settings as a worker reads them.
func faultReadySpec(t *testing.T, j *job.Job, n int) protocol.Job {
	t.Helper()
	if err := j.Create(faultSpec(), items(n)); err != nil {
		t.Fatal(err)
	}
	s, err := j.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// faultLease creates a worker's timer on j's session and returns the
// lease naming it.
func faultLease(t *testing.T, j *job.Job, id string) protocol.Lease {
	t.Helper()
	p, err := j.CreateTimer(protocol.Timer{ID: id, Host: "h", Pid: 1})
	if err != nil {
		t.Fatal(err)
	}
	return protocol.Lease{Timer: path.Base(p), ID: id, Host: "h", Pid: 1}
}

// faultLeases lists the leases directly, with their owners.
func faultLeases(t *testing.T, conn *zk.Conn, j *job.Job) map[string]int64 {
	t.Helper()
	names, _, err := conn.Children(j.L.Leases())
	if err != nil {
		t.Fatalf("listing %s: %v", j.L.Leases(), err)
	}
	out := map[string]int64{}
	for _, n := range names {
		_, st, err := conn.Exists(j.L.Leases() + "/" + n)
		if err != nil {
			t.Fatalf("reading lease %s: %v", n, err)
		}
		if st != nil {
			out[n] = st.EphemeralOwner
		}
	}
	return out
}

// faultTurns reads the turn count of the item whose turn node is p.
func faultTurns(t *testing.T, conn *zk.Conn, p string) int32 {
	t.Helper()
	ok, st, err := conn.Exists(p)
	if err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	if !ok {
		return protocol.TurnCount(false, 0)
	}
	return protocol.TurnCount(true, st.Version)
}

// faultAwait waits for ch, or fails the test after faultGuard.
func faultAwait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(faultGuard):
		t.Fatalf("no %s after %v", what, faultGuard)
		panic("unreachable")
	}
}

// TestFaultCreateAtomic: the old Create made the root (state filling) and
// the ephemeral filler in two requests; when the second was lost, a worker
// found a filling job without a filler for the second the client took to
// redial, and failed it as abandoned by a dead master while the master
// lived and went on to create it.
func TestFaultCreateAtomic(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	// One address: the client waits a second before it redials, which is
	// the window the old code left a filler-less root open in.
	p := zkproxy.ForTest(t, srv.Addr())
	const root = "/fault/create/job"
	mj := newJob(t, zktest.Connect(t, p.Addr()), root)
	direct := zktest.Connect(t, srv.Addr())
	wj := newJob(t, zktest.Connect(t, srv.Addr()), root)

	type ready struct {
		spec protocol.Job
		err  error
	}
	awaited := make(chan ready, 1)
	go func() {
		s, err := wj.AwaitReady(t.Context(), faultGuard)
		awaited <- ready{s, err}
	}()

	// The transaction that creates the root and its filler is dropped
	// before the server sees it; Create rides the dropped connection out
	// and tries again.
	drop := p.DropConnection(zkproxy.Match{Path: mj.L.Filler()})
	if err := mj.Create(faultSpec(), items(3)); err != nil {
		t.Fatalf("Create with its first root transaction dropped: %v, want it retried", err)
	}
	faultAwait(t, drop.Fired(), "dropped filler request")
	got := faultAwait(t, awaited, "answer from AwaitReady")
	if errors.Is(got.err, job.ErrAbandoned) {
		t.Fatalf("the worker saw the job abandoned: %v", got.err)
	}
	if got.err != nil || got.spec.State != protocol.StateReady || got.spec.Items != 3 {
		t.Fatalf("AwaitReady = %+v, %v; want the ready job of 3 items", got.spec, got.err)
	}
	if ok, _, err := direct.Exists(mj.L.Filler()); err != nil || ok {
		t.Fatalf("filler of the ready job exists = %v (%v), want gone", ok, err)
	}
}

// TestFaultCreateLostRootReply catches a regression of the rework, not an
// old bug (the old Create removed the partial job): the root transaction
// is applied and only its reply lost, and Create reports failure yet
// leaves the job. Once the master exits its filler goes, the job stays
// filling for ever, workers fail on it as abandoned, and the master's
// rerun is refused with ErrExists.
func TestFaultCreateLostRootReply(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	p := zkproxy.ForTest(t, srv.Addr())
	const root = "/fault/create/lost"
	mconn := zktest.Connect(t, p.Addr(), p.Addr())
	mj := newJob(t, mconn, root)
	direct := zktest.Connect(t, srv.Addr())

	lost := p.DropReply(zkproxy.Match{Op: zkproxy.OpCreate, Path: mj.L.Filler(), PathMode: zkproxy.Exact})
	err := mj.Create(faultSpec(), items(3))
	faultAwait(t, lost.Fired(), "lost reply to the root transaction")
	if err == nil {
		// Applied, and Create found out: the job must be whole.
		s, err := newJob(t, direct, root).Spec()
		if err != nil || s.State != protocol.StateReady || s.Items != 3 {
			t.Fatalf("Create succeeded, yet the job is %+v, %v; want it ready with 3 items", s, err)
		}
		return
	}
	// Failed: nothing may be left, or the rerun is refused.
	if b, _, gerr := direct.Get(root); gerr == nil {
		t.Fatalf("Create = %v, yet %s was left: %s", err, root, b)
	}
	deadline := time.Now().Add(faultGuard)
	for err = mj.Create(faultSpec(), items(3)); err != nil; err = mj.Create(faultSpec(), items(3)) {
		if !job.Transient(err) || time.Now().After(deadline) {
			t.Fatalf("Create again: %v", err)
		}
		time.Sleep(job.RetryPause)
	}
}

// faultSessions records a client's session events, for tests that expire
// a session: zktest.Connect hides them.
type faultSessions struct {
	mu     sync.Mutex
	states []zk.State
	moved  chan struct{} // closed and replaced at every event
}

func newFaultSessions() *faultSessions { return &faultSessions{moved: make(chan struct{})} }

func (s *faultSessions) callback(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states = append(s.states, ev.State)
	close(s.moved)
	s.moved = make(chan struct{})
}

// mark is the number of events so far, for await.
func (s *faultSessions) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.states)
}

// await waits for state among the events after mark and returns the mark
// after it.
func (s *faultSessions) await(t *testing.T, from int, state zk.State) int {
	t.Helper()
	deadline := time.After(faultGuard)
	for {
		s.mu.Lock()
		if i := slices.Index(s.states[from:], state); i >= 0 {
			s.mu.Unlock()
			return from + i + 1
		}
		moved := s.moved
		s.mu.Unlock()
		select {
		case <-moved:
		case <-deadline:
			t.Fatalf("no %v event after %v; events %v", state, faultGuard, s.states)
		}
	}
}

// faultLogger sends the client's log to t until the test ends: its
// goroutines outlive Close, and logging after the end of a test panics.
type faultLogger struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

func (l *faultLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("zk: "+format, args...)
	}
}

// faultConnect dials addrs with its own session timeout and events.
func faultConnect(t *testing.T, addrs []string, timeout time.Duration, s *faultSessions) *zk.Conn {
	t.Helper()
	logger := &faultLogger{t: t}
	conn, _, err := zk.Connect(addrs, timeout, zk.WithEventCallback(s.callback), zk.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		logger.mu.Lock()
		logger.stopped = true
		logger.mu.Unlock()
	})
	s.await(t, 0, zk.StateHasSession)
	return conn
}

// TestFaultExpiredSessionTake: after an expiry the client opens a new
// session and sends its queued requests there; the old Take created the
// lease on that session, which the worker did not know it had, so nobody
// worked on the item and the master saw it leased until the client exited.
func TestFaultExpiredSessionTake(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	p := zkproxy.ForTest(t, srv.Addr())
	const root = "/fault/expired"
	direct := zktest.Connect(t, srv.Addr())
	mj := newJob(t, direct, root)
	s := faultReadySpec(t, mj, 3)

	// The proxy's address many times over. The client fails the requests
	// it holds with ErrNoServer, and pauses a second, only once it has
	// tried every address in its list since its last session; it takes
	// it a dial during the partition, one refusal for the expired session
	// and sometimes an EOF (the server still closing the session) before
	// it has a new one. With ten, the held requests go out on the new
	// session.
	events := newFaultSessions()
	addrs := slices.Repeat([]string{p.Addr()}, 10)
	wconn := faultConnect(t, addrs, 1200*time.Millisecond, events)
	first := wconn.SessionID()
	wj := job.New(wconn, mj.L)
	lease := faultLease(t, wj, "w")

	exists, _, timerW, err := direct.ExistsW(mj.L.Timer(lease.Timer))
	if err != nil || !exists {
		t.Fatalf("the worker's timer: exists %v, %v", exists, err)
	}
	connects := p.Observe(zkproxy.Match{Op: zkproxy.OpConnect, Times: zkproxy.Forever})
	tickets := p.Observe(zkproxy.Match{Op: zkproxy.OpSetData, Path: mj.L.Cursor(), PathMode: zkproxy.Exact, Times: zkproxy.Forever})

	from := events.mark()
	p.Partition()
	from = events.await(t, from, zk.StateDisconnected)
	// The client is redialling and sends nothing until it has a session:
	// this Take's requests wait in the client and go out on the next one.
	type taken struct {
		c   job.Claim
		err error
	}
	queued := make(chan taken, 1)
	go func() {
		c, err := wj.Take(t.Context(), s, lease)
		queued <- taken{c, err}
	}()
	if ev := faultAwait(t, timerW, "event on the worker's timer"); ev.Type != zk.EventNodeDeleted {
		t.Fatalf("timer event %v, want its deletion by the session's expiry", ev)
	}
	p.Heal()
	events.await(t, from, zk.StateHasSession)
	if second := wconn.SessionID(); second == first || second == 0 {
		t.Fatalf("session after the expiry 0x%x, want a new one (was 0x%x)", second, first)
	}

	got := faultAwait(t, queued, "answer from the queued Take")
	if !errors.Is(got.err, job.ErrTimerLost) {
		t.Errorf("Take queued across the expiry = %+v, %v; want ErrTimerLost", got.c, got.err)
	}
	if c, err := wj.Take(t.Context(), s, lease); !errors.Is(err, job.ErrTimerLost) {
		t.Errorf("Take on the new session = %+v, %v; want ErrTimerLost", c, err)
	}
	if l := faultLeases(t, direct, mj); len(l) != 0 {
		t.Errorf("leases after the Takes on a new session: %v, want none", l)
	}

	// Both tickets went out on the new session, so the test tested what
	// it says: the connect that opened that session asked for a new one.
	newSession := map[int]bool{}
	for _, r := range connects.Requests() {
		newSession[r.Conn] = r.SessionID == 0
	}
	reqs := tickets.Requests()
	if len(reqs) != 2 {
		t.Fatalf("tickets taken: %v, want 2", reqs)
	}
	for _, r := range reqs {
		if !newSession[r.Conn] {
			t.Fatalf("ticket %v came on connection %d, not the new session's (connects %v)", r, r.Conn, connects.Requests())
		}
	}
}

// TestFaultRetryDoubleFault: taking a retried turn, the old code repeated
// its lease transaction once the reply was lost, read the refusal as
// "another worker won it" when the ownership check failed too, and
// returned ErrEmpty while its live session held the lease: nobody worked
// on the item and the job never finished.
func TestFaultRetryDoubleFault(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	p := zkproxy.ForTest(t, srv.Addr())
	const root = "/fault/double"
	direct := zktest.Connect(t, srv.Addr())
	mj := newJob(t, direct, root)
	s := faultReadySpec(t, mj, 1)

	// The proxy's address twice: the client redials at once.
	wconn := zktest.Connect(t, p.Addr(), p.Addr())
	wj := job.New(wconn, mj.L)
	lease := faultLease(t, wj, "w")
	c, err := wj.Take(t.Context(), s, lease)
	if err != nil {
		t.Fatal(err)
	}
	// Given back: the cursor is spent and the item waits on retry/.
	if err := wj.Release(t.Context(), c); err != nil {
		t.Fatal(err)
	}

	lost := p.DropReply(zkproxy.Match{Op: zkproxy.OpMulti, Path: mj.L.Leases() + "/"})
	check := p.DropConnection(zkproxy.Match{Op: zkproxy.OpExists, Path: mj.L.Leases() + "/"})
	got, err := wj.Take(t.Context(), s, lease)
	faultAwait(t, lost.Fired(), "lost lease reply")
	leases := faultLeases(t, direct, mj)
	if err != nil {
		for name, owner := range leases {
			if owner == wconn.SessionID() {
				t.Fatalf("Take = %v, yet lease %s is held by the worker's live session", err, name)
			}
		}
		t.Fatalf("Take = %v, want the retried item", err)
	}
	faultAwait(t, check.Fired(), "dropped ownership check")
	if got.Index != c.Index || string(got.Data) != string(c.Data) || got.Attempt != c.Attempt+1 {
		t.Fatalf("Take = %+v, want item %d, attempt %d", got, c.Index, c.Attempt+1)
	}
	if owner, ok := leases[got.Name()]; !ok || owner != wconn.SessionID() || len(leases) != 1 {
		t.Fatalf("leases = %v, want only %s, owned by session 0x%x", leases, got.Name(), wconn.SessionID())
	}
	if r, err := mj.Retries(); err != nil || len(r) != 0 {
		t.Fatalf("retry list = %v, %v; want it empty", r, err)
	}
	// The claim is good: its result records.
	if err := wj.Record(t.Context(), got, protocol.Result{Outcome: protocol.OK}); err != nil {
		t.Fatal(err)
	}
}

// TestFaultReadOrder: reads that decide must not be served stale. The old
// Timers listed the timers before it wrote the clock and read them
// alongside the write, so a lagging server could show an old kick against
// a fresh clock (a live worker called hung); the old worker concluded a
// job did not exist without syncing, so it could miss one just created.
func TestFaultReadOrder(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	p := zkproxy.ForTest(t, srv.Addr())

	t.Run("Timers writes the clock first", func(t *testing.T) {
		const root = "/fault/order/timers"
		mj := newJob(t, zktest.Connect(t, srv.Addr()), root)
		faultReadySpec(t, mj, 1)
		for i := range 3 {
			faultLease(t, newJob(t, zktest.Connect(t, srv.Addr()), root), fmt.Sprint("w", i))
		}
		rj := newJob(t, zktest.Connect(t, p.Addr()), root)
		seen := p.Observe(zkproxy.Match{Path: root, Times: zkproxy.Forever})
		_, timers, err := rj.Timers()
		if err != nil || len(timers) != 3 {
			t.Fatalf("Timers = %v, %v; want 3", timers, err)
		}
		seen.Remove()
		reqs := seen.Requests()
		clock := slices.IndexFunc(reqs, func(r zkproxy.Request) bool {
			return r.Op == zkproxy.OpSetData && r.Path == rj.L.Clock()
		})
		if clock < 0 {
			t.Fatalf("no write of the clock in %v", reqs)
		}
		var reads int
		for i, r := range reqs {
			isList := (r.Op == zkproxy.OpGetChildren || r.Op == zkproxy.OpGetChildren2) && r.Path == rj.L.Timers()
			isTimer := r.Op == zkproxy.OpGetData && strings.HasPrefix(r.Path, rj.L.Timers()+"/")
			if (isList || isTimer) && i < clock {
				t.Errorf("%v was sent before the clock was written: %v", r, reqs)
			}
			if isList || isTimer {
				reads++
			}
		}
		if reads != 4 {
			t.Errorf("reads of the timers: %d, want the list and 3 timers: %v", reads, reqs)
		}
	})

	t.Run("AwaitReady syncs before it calls a job missing", func(t *testing.T) {
		const root = "/fault/order/missing"
		wj := newJob(t, zktest.Connect(t, p.Addr()), root)
		seen := p.Observe(zkproxy.Match{Path: root, PathMode: zkproxy.Exact, Times: zkproxy.Forever})
		_, err := wj.AwaitReady(t.Context(), 0)
		if !errors.Is(err, job.ErrNoJob) {
			t.Fatalf("AwaitReady on a missing job = %v, want ErrNoJob", err)
		}
		seen.Remove()
		reqs := seen.Requests()
		sync := slices.IndexFunc(reqs, func(r zkproxy.Request) bool { return r.Op == zkproxy.OpSync })
		if sync < 0 {
			t.Fatalf("AwaitReady concluded the job is missing without a sync: %v", reqs)
		}
		if !slices.ContainsFunc(reqs[sync+1:], func(r zkproxy.Request) bool {
			return r.Op == zkproxy.OpExists || r.Op == zkproxy.OpGetData
		}) {
			t.Fatalf("no read of %s after the sync: %v", root, reqs)
		}
	})
}

// TestFaultRootWithoutData: the old worker took a root with no data for
// one created between two reads and read it again, for ever, setting a
// watch per lap; it must be refused at once as no job.
func TestFaultRootWithoutData(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	p := zkproxy.ForTest(t, srv.Addr())
	direct := zktest.Connect(t, srv.Addr())
	const root = "/x"
	if _, err := direct.Create(root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	wj := newJob(t, zktest.Connect(t, p.Addr()), root)
	reads := p.Observe(zkproxy.Match{Path: root, PathMode: zkproxy.Exact, Times: zkproxy.Forever})

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	type ready struct {
		spec protocol.Job
		err  error
	}
	done := make(chan ready, 1)
	go func() {
		s, err := wj.AwaitReady(ctx, 0)
		done <- ready{s, err}
	}()
	var got ready
	select {
	case got = <-done:
	case <-time.After(faultGuard):
		t.Fatalf("AwaitReady on a root without data has not answered after %v (its context ended after 5s); it read %s %d times", faultGuard, root, reads.Count())
	}
	if !errors.Is(got.err, protocol.ErrNotAJob) {
		t.Fatalf("AwaitReady on a root without data = %+v, %v; want protocol.ErrNotAJob", got.spec, got.err)
	}
	if ctx.Err() != nil {
		t.Fatalf("AwaitReady answered only once its context was done: %v", got.err)
	}
	if n := reads.Count(); n > 4 {
		t.Errorf("AwaitReady read %s %d times, want a couple: %v", root, n, reads.Requests())
	}
}

// TestFaultReleaseNewTurn: the old Release put the item back under the
// same turn name (INDEX-1-0), so the next worker's lease had the name of
// the one that had just gone, and a master could take one for the other.
func TestFaultReleaseNewTurn(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	p := zkproxy.ForTest(t, srv.Addr())
	const root = "/fault/release"
	direct := zktest.Connect(t, srv.Addr())
	mj := newJob(t, direct, root)
	s := faultReadySpec(t, mj, 1)
	wj := newJob(t, zktest.Connect(t, p.Addr()), root)
	lease := faultLease(t, wj, "w")
	leasing := p.Observe(zkproxy.Match{Op: zkproxy.OpCreate, Path: mj.L.Leases() + "/", Times: zkproxy.Forever})

	c, err := wj.Take(t.Context(), s, lease)
	if err != nil {
		t.Fatal(err)
	}
	if err := wj.Release(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	next := protocol.Turn{Index: c.Index, Attempt: c.Attempt + 1, Charged: c.Charged}
	if r, err := mj.Retries(); err != nil || !slices.Equal(r, []protocol.Turn{next}) {
		t.Fatalf("retry list after Release = %v, %v; want [%+v]", r, err, next)
	}
	if v := faultTurns(t, direct, mj.L.Item(c.Index)); v != protocol.OpenVersion(c.Attempt+1) {
		t.Fatalf("item's turn count after Release = %d, want %d (turn %d open)", v, protocol.OpenVersion(c.Attempt+1), c.Attempt+1)
	}
	again, err := wj.Take(t.Context(), s, lease)
	if err != nil {
		t.Fatal(err)
	}
	if again.Index != c.Index || again.Attempt != 2 || again.Name() == c.Name() {
		t.Fatalf("Take after Release = %+v (lease %s), want item %d attempt 2 under a new name (first %s)", again.Turn, again.Name(), c.Index, c.Name())
	}
	// What went over the wire: two leases, two names.
	var names []string
	for _, r := range leasing.Requests() {
		for _, op := range r.Ops {
			if op.Op == zkproxy.OpCreate && strings.HasPrefix(op.Path, mj.L.Leases()+"/") {
				names = append(names, path.Base(op.Path))
			}
		}
	}
	if !slices.Equal(names, []string{c.Name(), again.Name()}) {
		t.Fatalf("leases created: %v, want [%s %s]", names, c.Name(), again.Name())
	}
}
