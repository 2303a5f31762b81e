package master_test

// Regression tests for the faults the protocol version 2 rework fixed,
// each at the level of master.Wait and asserting what a user sees: how
// the job ended, its counts, its retries and the reason given. Every test
// here failed (most of them by hanging) on the code before the rework.
//
// They run a real ZooKeeper and play the workers with the job package's
// own operations, or with heartbeat timers for a worker that kicks. No
// test sleeps to synchronise: they follow the master through OnStatus and
// through the job's clock node, which the master writes at the start of
// every poll (job.Timers reads the server's time that way), so the
// clock's data version counts the polls begun.
//
// The helpers are prefixed flt so as not to collide with master_test.go.

import (
	"bytes"
	"context"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/heartbeat"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/internal/zkproxy"
	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/internal/zktest"
	"github.com/zkdog/zkdog/master"
)

// fltGuard bounds every wait: a hang is how the old code fails most of
// these tests, and the guard turns it into a failure. It is not a
// performance assertion.
const fltGuard = 30 * time.Second

// fltTick is the servers' tickTime: sessions expire to within a tick, and
// the minimum session timeout (two ticks) stays well under what the tests
// ask for.
const fltTick = 100 * time.Millisecond

func fltServer(t *testing.T) *zkserver.Server {
	t.Helper()
	return zktest.Standalone(t, zktest.WithTickTime(fltTick))
}

// fltJob creates a job at a root of the test's own and returns the
// master's handle on it, on a session of its own.
func fltJob(t *testing.T, srv *zkserver.Server, spec protocol.Job, items ...string) *job.Job {
	t.Helper()
	root := "/faults/" + strings.NewReplacer("/", "_", " ", "_", ",", "_").Replace(t.Name())
	l, err := protocol.NewLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	j := job.New(zktest.Connect(t, srv.Addr()), l)
	var its [][]byte
	for _, it := range items {
		its = append(its, []byte(it))
	}
	if err := j.Create(spec, its); err != nil {
		t.Fatal(err)
	}
	return j
}

// fltWorker is a worker on a session of its own, with its timer.
type fltWorker struct {
	id    string
	conn  *zk.Conn
	j     *job.Job
	timer string // child name
}

// fltJoin starts a worker: a session and a timer. The timer records the
// session timeout zktest.Connect asks for (and the server grants), as
// heartbeat.Start would.
func fltJoin(t *testing.T, srv *zkserver.Server, j *job.Job, id string) *fltWorker {
	t.Helper()
	conn := zktest.Connect(t, srv.Addr())
	wj := job.New(conn, j.L)
	p, err := wj.CreateTimer(protocol.Timer{ID: id, Host: "node-" + id, Pid: 1, SessionMillis: zktest.SessionTimeout.Milliseconds()})
	if err != nil {
		t.Fatalf("worker %s creating its timer: %v", id, err)
	}
	return &fltWorker{id: id, conn: conn, j: wj, timer: path.Base(p)}
}

func (w *fltWorker) take(t *testing.T) job.Claim {
	t.Helper()
	c, err := fltTake(t, w.j, w.timer, w.id)
	if err != nil {
		t.Fatalf("worker %s taking an item: %v", w.id, err)
	}
	return c
}

func fltTake(t *testing.T, j *job.Job, timer, id string) (job.Claim, error) {
	t.Helper()
	spec, err := j.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return j.Take(t.Context(), spec, protocol.Lease{Timer: timer, ID: id, Host: "node-" + id, Pid: 1})
}

func (w *fltWorker) record(t *testing.T, c job.Claim) error {
	t.Helper()
	return w.j.Record(t.Context(), c, protocol.Result{Outcome: protocol.OK, ID: w.id, Host: "node-" + w.id})
}

// gone ends the worker's session: the server deletes its timer and any
// lease at once. A worker that finished and one that was killed mid-item
// leave the same way; only a lease left behind tells them apart.
func (w *fltWorker) gone() { w.conn.Close() }

// fltWaiting is a master.Wait running in the background, with every
// status it reported.
type fltWaiting struct {
	mu       sync.Mutex
	statuses []master.Status
	notify   chan struct{}

	done   chan struct{} // closed when Wait has returned
	report master.Report // set before done closes
	err    error
}

func fltStartWait(t *testing.T, j *job.Job, cfg master.WaitConfig) *fltWaiting {
	t.Helper()
	w := &fltWaiting{notify: make(chan struct{}, 1), done: make(chan struct{})}
	cfg.OnStatus = w.add
	cfg.Log = fltLogger(t)
	go func() {
		defer close(w.done)
		w.report, w.err = master.Wait(t.Context(), j, cfg)
	}()
	return w
}

func (w *fltWaiting) add(s master.Status) {
	w.mu.Lock()
	w.statuses = append(w.statuses, s)
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// mark is the index of the next status; waitStatus(mark, ...) looks only
// at statuses reported after the call.
func (w *fltWaiting) mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.statuses)
}

func (w *fltWaiting) find(since int, cond func(master.Status) bool) (master.Status, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.statuses[min(since, len(w.statuses)):] {
		if cond(s) {
			return s, true
		}
	}
	return master.Status{}, false
}

// waitStatus waits for a status reported at index since or later for
// which cond holds. Wait returning first fails the test, with its report.
func (w *fltWaiting) waitStatus(t *testing.T, since int, what string, cond func(master.Status) bool) master.Status {
	t.Helper()
	guard := time.NewTimer(fltGuard)
	defer guard.Stop()
	for {
		if s, ok := w.find(since, cond); ok {
			return s
		}
		select {
		case <-w.notify:
		case <-w.done:
			if s, ok := w.find(since, cond); ok {
				return s
			}
			t.Fatalf("Wait ended before it reported %s: %s", what, w.describe())
		case <-guard.C:
			t.Fatalf("Wait did not report %s within %v", what, fltGuard)
		}
	}
}

// ended fails the test if Wait has returned.
func (w *fltWaiting) ended(t *testing.T, when string) {
	t.Helper()
	select {
	case <-w.done:
		t.Fatalf("Wait ended %s: %s", when, w.describe())
	default:
	}
}

// result waits for Wait's report. A hang here is the old code's failure.
func (w *fltWaiting) result(t *testing.T) master.Report {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(fltGuard):
		t.Fatalf("Wait has not returned after %v (hung)", fltGuard)
	}
	if w.err != nil {
		t.Fatalf("Wait: %v (report %+v)", w.err, w.report)
	}
	return w.report
}

// describe is the report, once done is closed.
func (w *fltWaiting) describe() string {
	var b bytes.Buffer
	if w.err != nil {
		b.WriteString("error " + w.err.Error() + "; ")
	}
	w.report.Print(&b)
	return strings.TrimSpace(b.String())
}

// fltClock follows the master's polls. Each poll begins with a write of
// the job's clock node (job.Timers takes the server's time from it), and
// nothing else in these tests writes it, so its data version is the
// number of polls begun.
type fltClock struct {
	conn *zk.Conn
	path string
}

func fltClockOf(t *testing.T, srv *zkserver.Server, j *job.Job) fltClock {
	return fltClock{conn: zktest.Connect(t, srv.Addr()), path: j.L.Clock()}
}

func (c fltClock) version(t *testing.T) int32 {
	t.Helper()
	_, st, err := c.conn.Exists(c.path)
	if err != nil || st == nil {
		t.Fatalf("reading %s: %v", c.path, err)
	}
	return st.Version
}

// waitBeyond waits until a poll begins after version v was read, and
// returns the new version. Wait returning first fails the test.
func (c fltClock) waitBeyond(t *testing.T, v int32, w *fltWaiting) int32 {
	t.Helper()
	guard := time.NewTimer(fltGuard)
	defer guard.Stop()
	for {
		ok, st, ch, err := c.conn.ExistsW(c.path)
		if err != nil || !ok {
			t.Fatalf("watching %s: %v", c.path, err)
		}
		if st.Version > v {
			return st.Version
		}
		select {
		case <-ch:
		case <-w.done:
			t.Fatalf("Wait ended while the test waited for its next poll: %s", w.describe())
		case <-guard.C:
			t.Fatalf("the master began no poll within %v", fltGuard)
		}
	}
}

// pollPassed returns once a poll that wrote the clock after the call has
// run to its end: its clock write, then a status. The master reports a
// status only between polls (onPoll runs resolve and the sweep after the
// clock write, and the loop reports once it returns), so a status
// reported after the write was seen comes after that poll's resolve and
// sweep. It returns the clock version that poll wrote.
func (w *fltWaiting) pollPassed(t *testing.T, c fltClock) int32 {
	t.Helper()
	v := c.waitBeyond(t, c.version(t), w)
	w.waitStatus(t, w.mark(), "a status after a poll", func(master.Status) bool { return true })
	return v
}

// fltWaitRetry waits until the retry list holds an entry and returns the
// list. Wait returning first fails the test.
func fltWaitRetry(t *testing.T, conn *zk.Conn, j *job.Job, w *fltWaiting) []string {
	t.Helper()
	guard := time.NewTimer(fltGuard)
	defer guard.Stop()
	for {
		kids, _, ch, err := conn.ChildrenW(j.L.Retry())
		if err != nil {
			t.Fatal(err)
		}
		if len(kids) > 0 {
			slices.Sort(kids)
			return kids
		}
		select {
		case <-ch:
		case <-w.done:
			t.Fatalf("Wait ended before the item was handed out again: %s", w.describe())
		case <-guard.C:
			t.Fatalf("nothing came on the retry list within %v", fltGuard)
		}
	}
}

// fltLogger sends the master's log to t.Log until the test's cleanup: a
// Wait that ctx ends may log after the test function returned.
func fltLogger(t *testing.T) *slog.Logger {
	lw := &fltLogWriter{t: t}
	t.Cleanup(lw.stop)
	return slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type fltLogWriter struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (l *fltLogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("master: %s", bytes.TrimRight(p, "\n"))
	}
	return len(p), nil
}

func (l *fltLogWriter) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
}

// Old behaviour caught: an item given back unstarted (job.Release) went on
// the retry list under the same turn name, so the next worker's lease had
// the very name of the one the master had just seen vanish. Within one
// poll the master could not tell the two apart: at its next poll it
// found the retry entry gone and no result, took the new worker's live
// lease for the dead one, and recorded the item lost (or, with retries,
// handed it out a second time) while that worker held it; the worker's
// result was then refused with ErrLeaseLost.
//
// The arrangement is deterministic: the whole give-back and re-take
// happens between two polls (the clock node proves no poll began in
// between), then the test lets one whole poll pass with the new lease in
// place before the worker records.
func TestFaultReleaseRetakenWithinPoll(t *testing.T) {
	t.Parallel()
	srv := fltServer(t)
	j := fltJob(t, srv, protocol.Job{TimerMillis: 60_000, Retries: 0}, "a")
	clock := fltClockOf(t, srv, j)
	// Long polls: the window between two is what the give-back and the
	// re-take must fit in.
	const poll = 2 * time.Second
	w := fltStartWait(t, j, master.WaitConfig{Poll: poll})
	w.waitStatus(t, 0, "a first status", func(master.Status) bool { return true })

	// The master lists the leases once a poll: it must see A's lease at
	// one poll and, at the next, A's lease gone and B's in its place.
	m := w.mark()
	a := fltJoin(t, srv, j, "A")
	ca := a.take(t)
	w.waitStatus(t, m, "A's lease", func(s master.Status) bool { return s.Running == 1 })
	// Start right after a poll has run to its end, so that the next one
	// is a whole poll period away.
	before := w.pollPassed(t, clock)
	if err := a.j.Release(t.Context(), ca); err != nil {
		t.Fatalf("A giving the item back: %v", err)
	}
	b := fltJoin(t, srv, j, "B")
	cb := b.take(t)
	if cb.Index != ca.Index {
		t.Fatalf("B took item %d, want item %d that A gave back", cb.Index, ca.Index)
	}
	// A worker leaving makes the master look at the leases gone.
	fltJoin(t, srv, j, "C").gone()
	if v := clock.version(t); v != before {
		t.Fatalf("a poll began between A giving the item back and B taking it (clock version %d, then %d): "+
			"the arrangement needs all of it within one poll period (%v); the machine is too slow for it", before, v, poll)
	}

	// A whole poll, which looks at A's vanished lease, with B's in place.
	w.pollPassed(t, clock)
	w.ended(t, "while B held the item")
	if err := b.record(t, cb); err != nil {
		t.Fatalf("B recording the item it holds: %v (the master took B's lease for A's vanished one)", err)
	}
	a.gone()
	b.gone()

	r := w.result(t)
	if r.End != master.EndOK || r.OK != r.Items || r.Items != 1 || r.Lost != 0 || r.Retried != 0 {
		t.Errorf("report = %+v; want end ok, the 1 item ok, nothing lost or retried", r)
	}
}

// Old behaviour caught: a master started after the workers had ended saw
// no lease vanish, only an item handed out with neither lease nor result
// (its worker died). On a first attempt the old sweep could not tell that
// from a ticket whose reply was lost, gave the item the benefit of the
// doubt and offered it again free of charge, for ever, with no worker
// left to take it: zkdog wait hung. With retries the item did come back,
// but uncharged, so the report said nothing had been retried.
//
// The item's version now says whether the turn was leased, so the dead
// worker's turn is charged like any other.
func TestFaultLateMasterDeadWorker(t *testing.T) {
	t.Parallel()
	srv := fltServer(t)

	// run has one worker record item 0 and another take item 1 and die,
	// all before Wait starts.
	run := func(t *testing.T, retries int) (*job.Job, job.Claim) {
		j := fltJob(t, srv, protocol.Job{TimerMillis: 60_000, Retries: retries}, "a", "b")
		w1 := fltJoin(t, srv, j, "w1")
		c := w1.take(t)
		if err := w1.record(t, c); err != nil {
			t.Fatal(err)
		}
		w1.gone()
		w2 := fltJoin(t, srv, j, "w2")
		doomed := w2.take(t)
		w2.gone() // killed mid-item
		return j, doomed
	}

	t.Run("no retries", func(t *testing.T) {
		t.Parallel()
		j, doomed := run(t, 0)
		w := fltStartWait(t, j, master.WaitConfig{Poll: 100 * time.Millisecond})
		r := w.result(t)
		if r.End != master.EndLost || r.Lost != 1 || r.OK != 1 || r.Unfinished != 0 || r.Retried != 0 {
			t.Fatalf("report = %+v; want end lost, 1 lost, 1 ok", r)
		}
		if len(r.Problems) != 1 || r.Problems[0].Index != doomed.Index+1 || r.Problems[0].Outcome != protocol.Lost {
			t.Errorf("problems = %+v; want item %d lost", r.Problems, doomed.Index+1)
		}
		if !strings.Contains(r.Reason, "lost") {
			t.Errorf("reason %q does not say an item was lost", r.Reason)
		}
	})

	t.Run("one retry", func(t *testing.T) {
		t.Parallel()
		j, doomed := run(t, 1)
		w := fltStartWait(t, j, master.WaitConfig{Poll: 100 * time.Millisecond})
		entries := fltWaitRetry(t, zktest.Connect(t, srv.Addr()), j, w)
		want := protocol.Turn{Index: doomed.Index, Attempt: doomed.Attempt + 1, Charged: 1}.Name()
		if !slices.Equal(entries, []string{want}) {
			t.Errorf("retry list %q, want %q: the dead worker's turn charged", entries, want)
		}
		w3 := fltJoin(t, srv, j, "w3")
		c := w3.take(t)
		if c.Index != doomed.Index {
			t.Fatalf("w3 took item %d, want item %d handed out again", c.Index, doomed.Index)
		}
		if err := w3.record(t, c); err != nil {
			t.Fatal(err)
		}
		w3.gone()
		r := w.result(t)
		if r.End != master.EndOK || r.OK != 2 || r.Lost != 0 || r.Retried != 1 {
			t.Errorf("report = %+v; want end ok, 2 ok, 1 retried (the dead worker's attempt charged)", r)
		}
	})
}

// Old behaviour caught: the master of a job without items ended once it
// had seen a timer and none was left. One that never saw a timer (every
// worker came and went before zkdog wait started) waited for ever; one
// whose workers were staggered (a task ending before the next started)
// ended after the first. The workers counter, bumped with every timer,
// and expect_workers now say who came.
func TestFaultNoItemsWorkers(t *testing.T) {
	t.Parallel()
	srv := fltServer(t)

	t.Run("worker gone before Wait", func(t *testing.T) {
		t.Parallel()
		j := fltJob(t, srv, protocol.Job{TimerMillis: 60_000})
		fltJoin(t, srv, j, "w1").gone()
		w := fltStartWait(t, j, master.WaitConfig{Poll: 100 * time.Millisecond})
		r := w.result(t)
		if r.End != master.EndOK || !strings.Contains(r.Reason, "every worker finished") {
			t.Errorf("report = %+v; want end ok, every worker finished", r)
		}
	})

	t.Run("staggered workers", func(t *testing.T) {
		t.Parallel()
		j := fltJob(t, srv, protocol.Job{TimerMillis: 60_000, ExpectWorkers: 2})
		clock := fltClockOf(t, srv, j)
		w := fltStartWait(t, j, master.WaitConfig{Poll: 100 * time.Millisecond})
		w.waitStatus(t, 0, "a first status", func(master.Status) bool { return true })

		m := w.mark()
		w1 := fltJoin(t, srv, j, "w1")
		w.waitStatus(t, m, "the first worker", func(s master.Status) bool { return s.Timers == 1 })
		m = w.mark()
		w1.gone()
		w.waitStatus(t, m, "the first worker gone", func(s master.Status) bool { return s.Timers == 0 })
		// A negative check, so a bounded one: the master has seen the
		// first worker go and then run two whole polls without ending.
		// The old code ended at once, in the loop turn that saw it go.
		w.pollPassed(t, clock)
		w.pollPassed(t, clock)
		w.ended(t, "with one of the two expected workers come and gone")

		fltJoin(t, srv, j, "w2").gone()
		r := w.result(t)
		if r.End != master.EndOK || !strings.Contains(r.Reason, "every worker finished") {
			t.Errorf("report = %+v; want end ok, every worker finished", r)
		}
	})
}

// Old behaviour caught: the old master never looked at the abort node. A
// job aborted by an earlier master (or by zkdog clear --force, or a second
// master) has workers that stopped, so zkdog wait on it waited for ever
// for results that would never come.
func TestFaultAborted(t *testing.T) {
	t.Parallel()
	srv := fltServer(t)
	// Polls far apart: the job can end only through the abort.
	const poll = time.Minute

	t.Run("before Wait", func(t *testing.T) {
		t.Parallel()
		j := fltJob(t, srv, protocol.Job{TimerMillis: 60_000}, "a", "b")
		if err := j.Abort("test reason"); err != nil {
			t.Fatal(err)
		}
		w := fltStartWait(t, j, master.WaitConfig{Poll: poll})
		r := w.result(t)
		if r.End != master.EndHung || !strings.Contains(r.Reason, "test reason") {
			t.Errorf("report = %+v; want end hung with the abort's reason", r)
		}
		if r.Unfinished != 2 {
			t.Errorf("report = %+v; want both items without a result", r)
		}
	})

	t.Run("while waiting", func(t *testing.T) {
		t.Parallel()
		j := fltJob(t, srv, protocol.Job{TimerMillis: 60_000}, "a", "b")
		w := fltStartWait(t, j, master.WaitConfig{Poll: poll})
		w.waitStatus(t, 0, "a first status", func(master.Status) bool { return true })
		second := job.New(zktest.Connect(t, srv.Addr()), j.L)
		if err := second.Abort("a second master gave up"); err != nil {
			t.Fatal(err)
		}
		r := w.result(t)
		if r.End != master.EndHung || !strings.Contains(r.Reason, "a second master gave up") {
			t.Errorf("report = %+v; want end hung with the second master's reason", r)
		}
	})
}

// Old behaviour caught: a timer was judged against the job's --timer
// alone. A worker killed outright (SIGKILL, node lost) stops kicking at
// once but keeps its timer until the server expires its session; with a
// --timer shorter than the session timeout the master read the silent
// timer as a hung worker and aborted the job (exit 3), instead of waiting
// for the session to expire and handing the item out again. A timer's
// limit is now at least twice the session timeout its worker recorded.
//
// Under --on-hang stall the same holds: such a worker is one that
// vanished, its item retried, never stalled.
func TestFaultShortTimerKilledWorker(t *testing.T) {
	t.Parallel()
	srv := fltServer(t)
	for _, onHang := range []string{protocol.OnHangAbort, protocol.OnHangStall} {
		t.Run(onHang, func(t *testing.T) {
			t.Parallel()
			fltShortTimerKilledWorker(t, srv, onHang)
		})
	}
}

func fltShortTimerKilledWorker(t *testing.T, srv *zkserver.Server, onHang string) {
	j := fltJob(t, srv, protocol.Job{TimerMillis: 500, Retries: 1, Policy: protocol.Policy{OnHang: onHang}}, "a")
	w := fltStartWait(t, j, master.WaitConfig{}) // polls a tenth of the timer
	w.waitStatus(t, 0, "a first status", func(master.Status) bool { return true })

	// The doomed worker reaches the server through a proxy, so that it can
	// be cut off for good: no more kicks, no more pings.
	p := zkproxy.ForTest(t, srv.Addr())
	const sessionTimeout = 4 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), fltGuard)
	defer cancel()
	sess, err := zkconn.Dial(ctx, p.Addr(), sessionTimeout, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	if got := sess.Timeout(); got != sessionTimeout {
		t.Fatalf("the server granted a session timeout of %v, want %v", got, sessionTimeout)
	}
	dj := job.New(sess.Conn(), j.L)
	hb, err := heartbeat.Start(sess, dj, protocol.Timer{ID: "doomed", Host: "node-doomed", Pid: 1},
		heartbeat.WithKickInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hb.Close) // before sess.Close; a no-op once the session is lost
	// Heal before that: a timer still running (the test failed early)
	// deletes its node, and must reach the server to be done.
	t.Cleanup(p.Heal)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() { // the command makes progress until the worker is killed
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-hb.Done():
				return
			case <-tick.C:
				hb.Progress()
			}
		}
	}()
	doomed, err := fltTake(t, dj, hb.Name(), "doomed")
	if err != nil {
		t.Fatalf("the doomed worker taking an item: %v", err)
	}
	w.waitStatus(t, 0, "the doomed worker's lease", func(s master.Status) bool { return s.Running == 1 })

	p.Partition() // killed: the server expires its session after about 4s

	// Only the session's expiry may end its turn: then the item comes back.
	entries := fltWaitRetry(t, zktest.Connect(t, srv.Addr()), j, w)
	want := protocol.Turn{Index: doomed.Index, Attempt: doomed.Attempt + 1, Charged: 1}.Name()
	if !slices.Equal(entries, []string{want}) {
		t.Errorf("retry list %q, want %q", entries, want)
	}
	w2 := fltJoin(t, srv, j, "w2")
	c := w2.take(t)
	if err := w2.record(t, c); err != nil {
		t.Fatal(err)
	}
	w2.gone()
	r := w.result(t)
	if r.End != master.EndOK || r.OK != 1 || r.Lost != 0 || r.Stalled != 0 || r.Retried != 1 || len(r.Expired) != 0 {
		t.Errorf("report = %+v; want end ok, 1 ok, 1 retried, no expired timer", r)
	}
}

// Not covered: timer reads against the clock (the sixth fault). The old
// job.Timers sent the clock write alongside the timer reads; a lagging
// follower could serve a read older than the write and a live worker
// would look older than it was. Reproducing it needs a follower that lags
// its leader on demand, which neither a standalone server (it serializes
// the session's requests, so the old order was harmless there) nor
// zkproxy (it sits between client and server, not between members of an
// ensemble) can give. A test on a live kicking worker would pass on the
// old code as well, so it would guard nothing.
