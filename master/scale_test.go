package master_test

import (
	"context"
	"fmt"
	"path"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/heartbeat"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/internal/zkproxy"
	"github.com/zkdog/zkdog/internal/zktest"
	"github.com/zkdog/zkdog/master"
)

// Old behaviour caught: the master listed the leases on every change (at
// most every 50 ms), which with thousands of workers is a listing of
// every worker twenty times a second. The master's reads go through a
// proxy that counts them: while results come in, one batch at a time and
// each seen by the master before the next, the leases and the timers are
// listed at most once a poll (and once by the first sweep), not once a
// batch. A worker that vanishes mid-item still has its item handed out
// again, and a hung one is still stalled.
func TestWaitListsOncePerPoll(t *testing.T) {
	t.Parallel()
	srv := fltServer(t)
	const batches, batch = 20, 10
	items := make([]string, batches*batch+2)
	for i := range items {
		items[i] = fmt.Sprintf("item-%d", i)
	}
	owner := fltJob(t, srv, protocol.Job{TimerMillis: 3000, Retries: 1, Policy: protocol.Policy{OnHang: protocol.OnHangStall}}, items...)
	p := zkproxy.ForTest(t, srv.Addr())
	seen := p.Observe(zkproxy.Match{Path: owner.L.Root, Times: zkproxy.Forever})
	j := job.New(zktest.Connect(t, p.Addr()), owner.L)
	clock := fltClockOf(t, srv, owner)
	w := fltStartWait(t, j, master.WaitConfig{Poll: 500 * time.Millisecond})
	w.waitStatus(t, 0, "a first status", func(master.Status) bool { return true })

	busy := scaleBusyWorker(t, srv.Addr(), owner.L)
	doomed := fltJoin(t, srv, owner, "doomed")
	dc := doomed.take(t)
	w.pollPassed(t, clock) // the master has listed the doomed worker's lease

	from, polls := seen.Count(), clock.version(t)
	for b := 1; b <= batches; b++ {
		for range batch {
			busy.work(t)
		}
		w.waitStatus(t, w.mark(), "the batch's results", func(s master.Status) bool { return s.Done >= b*batch })
	}
	polls = clock.version(t) - polls
	leases, timers := scaleListings(seen.Requests()[from:], owner.L)
	if max(leases, timers) > int(polls)+2 {
		t.Errorf("%d batches of results, %d polls: the master listed the leases %d times and the timers %d times, want at most once a poll and once more for a sweep",
			batches, polls, leases, timers)
	}

	// The doomed worker dies holding its item: it is handed out again.
	doomed.gone()
	fltWaitRetry(t, busy.conn, owner, w)
	busy.work(t)

	// A worker that never kicks holds the last item: it is stalled.
	hung := scaleHungWorker(t, srv.Addr(), owner)
	hc := hung.take(t)
	scaleAwaitGone(t, hung.conn, owner.L.Timer(hung.timer), w)
	if err := hung.record(t, hc); err == nil {
		t.Errorf("the stalled worker recorded its item: the master did not end its turn")
	}
	busy.close()

	r := w.result(t)
	if r.Items != len(items) || r.OK != len(items)-1 || r.Stalled != 1 || r.Retried != 1 {
		t.Errorf("report = %+v; want %d items, all ok but the stalled one, the doomed worker's retried (item %d)", r, len(items), dc.Index)
	}
}

// scaleListings counts the listings of the leases and of the timers.
func scaleListings(reqs []zkproxy.Request, l protocol.Layout) (leases, timers int) {
	for _, r := range reqs {
		if r.Op != zkproxy.OpGetChildren && r.Op != zkproxy.OpGetChildren2 {
			continue
		}
		switch r.Path {
		case l.Leases():
			leases++
		case l.Timers():
			timers++
		}
	}
	return leases, timers
}

// scaleWorker is a worker whose timer a heartbeat kicks.
type scaleWorker struct {
	conn *zk.Conn
	sess *zkconn.Session
	j    *job.Job
	hb   *heartbeat.Timer
}

func scaleBusyWorker(t *testing.T, addr string, l protocol.Layout) *scaleWorker {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), fltGuard)
	defer cancel()
	sess, err := zkconn.Dial(ctx, addr, zktest.SessionTimeout, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	j := job.New(sess.Conn(), l)
	hb, err := heartbeat.Start(sess, j, protocol.Timer{ID: "busy", Host: "node-busy", Pid: 1}, heartbeat.WithKickInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hb.Close)
	return &scaleWorker{conn: sess.Conn(), sess: sess, j: j, hb: hb}
}

// work takes an item and records it ok.
func (w *scaleWorker) work(t *testing.T) {
	t.Helper()
	c, err := fltTake(t, w.j, w.hb.Name(), "busy")
	if err != nil {
		t.Fatalf("the busy worker taking an item: %v", err)
	}
	w.hb.Progress()
	if err := w.j.Record(t.Context(), c, protocol.Result{Outcome: protocol.OK, ID: "busy"}); err != nil {
		t.Fatalf("the busy worker recording item %d: %v", c.Index, err)
	}
}

func (w *scaleWorker) close() {
	w.hb.Close()
	w.sess.Close()
}

// scaleHungWorker joins with a timer it never kicks, whose limit is the
// job's timer (its session timeout, as the timer says, is short).
func scaleHungWorker(t *testing.T, addr string, owner *job.Job) *fltWorker {
	t.Helper()
	conn := zktest.Connect(t, addr)
	wj := job.New(conn, owner.L)
	p, err := wj.CreateTimer(protocol.Timer{ID: "hung", Host: "node-hung", Pid: 1, SessionMillis: 200})
	if err != nil {
		t.Fatal(err)
	}
	return &fltWorker{id: "hung", conn: conn, j: wj, timer: path.Base(p)}
}

// scaleAwaitGone waits until node p is deleted.
func scaleAwaitGone(t *testing.T, conn *zk.Conn, p string, w *fltWaiting) {
	t.Helper()
	guard := time.NewTimer(fltGuard)
	defer guard.Stop()
	for {
		ok, _, ch, err := conn.ExistsW(p)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		select {
		case <-ch:
		case <-w.done:
			t.Fatalf("Wait ended before %s was deleted: %s", p, w.describe())
		case <-guard.C:
			t.Fatalf("%s was not deleted within %v", p, fltGuard)
		}
	}
}
