package job_test

import (
	"errors"
	"fmt"
	"path"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zktest"
)

func newJob(t testing.TB, conn *zk.Conn, root string) *job.Job {
	t.Helper()
	l, err := protocol.NewLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	return job.New(conn, l)
}

func items(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "item-%d", i)
	}
	return out
}

func spec() protocol.Job { return protocol.Job{TimerMillis: 5000} }

// workerLease creates a live timer for a worker on j's session, as every
// worker does before it takes items, and returns the lease naming it.
func workerLease(t testing.TB, j *job.Job, id string) protocol.Lease {
	t.Helper()
	p, err := j.CreateTimer(protocol.Timer{ID: id, Host: "h", Pid: 1})
	if err != nil {
		t.Fatal(err)
	}
	if dir := path.Dir(p); dir != j.L.Timers() {
		t.Fatalf("CreateTimer returned %s, want a path in %s", p, j.L.Timers())
	}
	return protocol.Lease{Timer: path.Base(p), ID: id, Host: "h", Pid: 1}
}

// itemVersion reads item index's data version directly.
// itemTurns reads an item's turn count (protocol.TurnCount).
func itemTurns(t *testing.T, conn *zk.Conn, j *job.Job, index int) int32 {
	t.Helper()
	ok, st, err := conn.Exists(j.L.Item(index))
	if err != nil {
		t.Fatalf("reading item %d: %v", index, err)
	}
	if !ok {
		return protocol.TurnCount(false, 0)
	}
	return protocol.TurnCount(true, st.Version)
}

func hasResult(t *testing.T, j *job.Job, index int) bool {
	t.Helper()
	done, err := j.Finished(protocol.Bucket(index))
	if err != nil {
		t.Fatal(err)
	}
	return done[index]
}

func TestJobLifecycle(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	j := newJob(t, conn, "/batch/lifecycle")

	const n = 2*protocol.BucketSize + 500
	if err := j.Create(spec(), items(n)); err != nil {
		t.Fatal(err)
	}
	s, err := j.Spec()
	if err != nil {
		t.Fatal(err)
	}
	if s.State != protocol.StateReady || s.Items != n || s.Protocol != protocol.Version {
		t.Fatalf("job spec = %+v, want ready with %d items", s, n)
	}
	if c, _ := j.Counts(s); c.Queued() != n || c.Done != 0 {
		t.Fatalf("counts after create = %+v, want %d queued", c, n)
	}

	// Four workers on their own connections drain the queue.
	var (
		mu   sync.Mutex
		seen = map[int]int{}
		wg   sync.WaitGroup
	)
	for w := range 4 {
		wj := newJob(t, zktest.Connect(t, srv.Addr()), "/batch/lifecycle")
		lease := workerLease(t, wj, fmt.Sprint(w))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := wj.Take(t.Context(), s, lease)
				if errors.Is(err, job.ErrEmpty) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				if want := fmt.Sprintf("item-%d", c.Index); string(c.Data) != want || c.Attempt != 1 || c.Timer != lease.Timer {
					t.Errorf("took %q attempt %d at index %d by timer %s, want %q attempt 1 by %s", c.Data, c.Attempt, c.Index, c.Timer, want, lease.Timer)
				}
				out := protocol.OK
				if c.Index%100 == 7 {
					out = protocol.Failed
				}
				if err := wj.Record(t.Context(), c, protocol.Result{Outcome: out, Exit: map[bool]int{true: 0, false: 3}[out == protocol.OK]}); err != nil {
					t.Error(err)
				}
				mu.Lock()
				seen[c.Index]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d distinct items taken, want %d", len(seen), n)
	}
	for i, k := range seen {
		if k != 1 {
			t.Errorf("item %d taken %d times", i, k)
		}
	}
	c, err := j.Counts(s)
	if err != nil {
		t.Fatal(err)
	}
	wantFailed := 25 // indices ≡ 7 mod 100 below 2500
	if c.Done != n || c.Failed != wantFailed || c.Queued() != 0 || c.Leased != 0 {
		t.Fatalf("counts = %+v, want done %d failed %d and nothing queued or leased", c, n, wantFailed)
	}
	if c.Timers != 4 || c.Workers != 4 {
		t.Fatalf("counts = %+v, want 4 live timers and 4 workers counted", c)
	}
	outs, err := j.Outcomes(s)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, o := range outs {
		if o.Outcome == protocol.Failed {
			failed++
		}
	}
	if len(outs) != n || failed != wantFailed {
		t.Fatalf("outcomes: %d results, %d failed; want %d and %d", len(outs), failed, n, wantFailed)
	}
	res, item, err := j.ResultOf(job.Outcome{Index: 7, Outcome: protocol.Failed})
	if err != nil || res.Exit != 3 || string(item) != "item-7" || res.Attempt != 1 {
		t.Fatalf("result of item 7 = %+v %q %v", res, item, err)
	}

	// No znode of the job has more children than a bucket: an item
	// bucket's turn nodes and its chunk.
	for _, p := range []string{j.L.Items(), j.L.ItemBucket(0), j.L.ResultBucket(1), j.L.Root} {
		_, st, err := conn.Exists(p)
		if err != nil || st.NumChildren > protocol.BucketSize+1 {
			t.Errorf("%s: %d children, err %v", p, st.NumChildren, err)
		}
	}

	if err := j.Remove(); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := conn.Exists(j.L.Root); ok {
		t.Fatal("job root still exists after Remove")
	}
	if ok, _, _ := conn.Exists("/batch"); !ok {
		t.Fatal("Remove deleted the root's parent")
	}
}

func TestCreateRefusesExistingJob(t *testing.T) {
	conn := zktest.Connect(t, zktest.Standalone(t).Addr())
	j := newJob(t, conn, "/dup")
	if err := j.Create(spec(), items(3)); err != nil {
		t.Fatal(err)
	}
	err := j.Create(spec(), items(5))
	if !errors.Is(err, job.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	if s, _ := j.Spec(); s.Items != 3 {
		t.Fatalf("the existing job changed: %+v", s)
	}
}

func TestCreateRejectsTooLargeItemAndLeavesNothing(t *testing.T) {
	conn := zktest.Connect(t, zktest.Standalone(t).Addr())
	j := newJob(t, conn, "/big/job")
	its := items(10)
	its[4] = make([]byte, protocol.MaxItemBytes+1)
	if err := j.Create(spec(), its); !errors.Is(err, job.ErrTooLarge) {
		t.Fatalf("Create: %v, want ErrTooLarge", err)
	}
	if ok, _, _ := conn.Exists("/big"); ok {
		t.Fatal("a refused job left znodes behind")
	}
}

func TestLeaseLostWithSession(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	j := newJob(t, conn, "/lease")
	if err := j.Create(spec(), items(2)); err != nil {
		t.Fatal(err)
	}
	s, _ := j.Spec()

	// A worker takes an item, then its session ends (ephemeral lease gone).
	wconn := zktest.Connect(t, srv.Addr())
	wj := newJob(t, wconn, "/lease")
	c, err := wj.Take(t.Context(), s, workerLease(t, wj, "w"))
	if err != nil {
		t.Fatal(err)
	}
	// Leasing moved the item's version from open to leased.
	if v := itemTurns(t, conn, j, c.Index); v != protocol.LeasedVersion(1) {
		t.Fatalf("item's turn count after the lease = %d, want %d", v, protocol.LeasedVersion(1))
	}
	wconn.Close()

	if err := j.Record(t.Context(), c, protocol.Result{Outcome: protocol.OK}); !errors.Is(err, job.ErrLeaseLost) {
		t.Fatalf("Record after the lease vanished: %v, want ErrLeaseLost", err)
	}
	if hasResult(t, j, c.Index) {
		t.Fatal("a result was recorded without the lease")
	}
	if a, leased, err := j.ItemTurn(c.Index); err != nil || a != 1 || !leased {
		t.Fatalf("ItemTurn = %d, %v, %v; want attempt 1, leased", a, leased, err)
	}

	// Requeued, the item comes back as attempt 2 once the cursor is spent.
	if err := j.Requeue(c.Turn, 1); err != nil {
		t.Fatal(err)
	}
	if a, leased, err := j.ItemTurn(c.Index); err != nil || a != 2 || leased {
		t.Fatalf("ItemTurn after Requeue = %d, %v, %v; want attempt 2, open", a, leased, err)
	}
	// The turn has moved on: requeueing it again is stale.
	if err := j.Requeue(c.Turn, 1); !errors.Is(err, job.ErrStale) {
		t.Fatalf("second Requeue of the same turn: %v, want ErrStale", err)
	}
	lease := workerLease(t, j, "m")
	other, err := j.Take(t.Context(), s, lease)
	if err != nil || other.Index == c.Index {
		t.Fatalf("Take = %+v, %v; want the untouched item first", other, err)
	}
	again, err := j.Take(t.Context(), s, lease)
	if err != nil || again.Index != c.Index || again.Attempt != 2 || again.Charged != 1 {
		t.Fatalf("Take = %+v, %v; want item %d attempt 2", again, err, c.Index)
	}
	if _, err := j.Take(t.Context(), s, lease); !errors.Is(err, job.ErrEmpty) {
		t.Fatalf("Take on a drained queue: %v, want ErrEmpty", err)
	}
	if err := j.Record(t.Context(), again, protocol.Result{Outcome: protocol.OK}); err != nil {
		t.Fatal(err)
	}
	if v := itemTurns(t, conn, j, c.Index); v != protocol.OpenVersion(3) {
		t.Fatalf("item's turn count after the result of attempt 2 = %d, want %d", v, protocol.OpenVersion(3))
	}
	// A stale attempt cannot record over the new one.
	if err := j.Record(t.Context(), c, protocol.Result{Outcome: protocol.OK}); err == nil {
		t.Fatal("the stale attempt recorded a second result")
	}
	res, _, err := j.ResultOf(job.Outcome{Index: c.Index, Outcome: protocol.OK})
	if err != nil || res.Attempt != 2 || res.Timer != lease.Timer {
		t.Fatalf("result = %+v, %v; want attempt 2 by timer %s", res, err, lease.Timer)
	}
	// Nor can a requeue or a lost verdict on the old turn.
	if err := j.Requeue(c.Turn, 1); !errors.Is(err, job.ErrStale) {
		t.Fatalf("Requeue after the result: %v, want ErrStale", err)
	}
	if err := j.RecordLost(again.Turn, true, "late"); !errors.Is(err, job.ErrStale) {
		t.Fatalf("RecordLost after the result: %v, want ErrStale", err)
	}
}

// TestTakeNeedsLiveTimer: a lease proves its worker's timer; a worker
// whose timer is gone (its session expired, the job removed) takes
// nothing, and the item it drew is left open for the master's sweep.
func TestTakeNeedsLiveTimer(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	j := newJob(t, conn, "/timerless")
	if err := j.Create(spec(), items(2)); err != nil {
		t.Fatal(err)
	}
	s, _ := j.Spec()
	_, err := j.Take(t.Context(), s, protocol.Lease{Timer: "t-9999999999", ID: "w"})
	if !errors.Is(err, job.ErrTimerLost) {
		t.Fatalf("Take without a timer: %v, want ErrTimerLost", err)
	}
	lease := workerLease(t, j, "w")
	if err := j.DeleteTimer(lease.Timer); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Take(t.Context(), s, lease); !errors.Is(err, job.ErrTimerLost) {
		t.Fatalf("Take after the timer was deleted: %v, want ErrTimerLost", err)
	}
	c, err := j.Counts(s)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leased != 0 || c.Issued != 2 {
		t.Fatalf("counts = %+v, want both tickets taken and no lease", c)
	}
	for i := range 2 {
		if a, leased, err := j.ItemTurn(i); err != nil || a != 1 || leased {
			t.Fatalf("ItemTurn(%d) = %d, %v, %v; want attempt 1, never leased", i, a, leased, err)
		}
	}

	// The master offers a never-leased turn again as it is, free.
	turn := protocol.Turn{Index: 1, Attempt: 1}
	if err := j.Reoffer(turn); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := conn.Exists(j.L.Item(1)); err != nil || ok {
		t.Fatalf("Reoffer left a turn node (%v): checking that the item was never leased must not create one", err)
	}
	if err := j.Reoffer(turn); !errors.Is(err, job.ErrStale) {
		t.Fatalf("second Reoffer: %v, want ErrStale", err)
	}
	lease = workerLease(t, j, "w2")
	got, err := j.Take(t.Context(), s, lease)
	if err != nil || got.Turn != turn || string(got.Data) != "item-1" {
		t.Fatalf("Take = %+v, %v; want turn %+v", got, err, turn)
	}
	// A master that still thinks the turn never ran is refused: it was
	// leased meanwhile.
	if err := j.Reoffer(turn); !errors.Is(err, job.ErrStale) {
		t.Fatalf("Reoffer of a leased turn: %v, want ErrStale", err)
	}
	if r, err := j.Retries(); err != nil || len(r) != 0 {
		t.Fatalf("retry list after the take = %v, %v; want it empty", r, err)
	}
	// The other one, never leased, is recorded lost without a charge.
	if err := j.RecordLost(protocol.Turn{Index: 0, Attempt: 1}, false, "test"); err != nil {
		t.Fatal(err)
	}
	if !hasResult(t, j, 0) {
		t.Fatal("RecordLost left no result")
	}
	res, _, err := j.ResultOf(job.Outcome{Index: 0, Outcome: protocol.Lost})
	if err != nil || res.Exit != -1 || res.Reason != "test" {
		t.Fatalf("lost result = %+v, %v", res, err)
	}
	if cnt, _ := j.Counts(s); cnt.Done != 1 || cnt.Failed != 1 {
		t.Fatalf("counts after RecordLost = %+v, want one result, failed", cnt)
	}
}

// TestReleaseGivesANewTurn: a worker that stops before it starts gives
// its item back as a new turn with the same charge; the old lease name is
// never used again.
func TestReleaseGivesANewTurn(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	j := newJob(t, conn, "/release")
	if err := j.Create(spec(), items(1)); err != nil {
		t.Fatal(err)
	}
	s, _ := j.Spec()
	lease := workerLease(t, j, "w")
	c, err := j.Take(t.Context(), s, lease)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Release(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	next := protocol.Turn{Index: c.Index, Attempt: c.Attempt + 1, Charged: c.Charged}
	if r, err := j.Retries(); err != nil || len(r) != 1 || r[0] != next {
		t.Fatalf("retry list = %v, %v; want [%+v]", r, err, next)
	}
	if l, err := j.Leases(); err != nil || len(l) != 0 {
		t.Fatalf("leases = %v, %v; want none", l, err)
	}
	if a, leased, err := j.ItemTurn(c.Index); err != nil || a != 2 || leased {
		t.Fatalf("ItemTurn = %d, %v, %v; want attempt 2, open", a, leased, err)
	}
	// Giving it back twice is refused: the lease is gone.
	if err := j.Release(t.Context(), c); !errors.Is(err, job.ErrLeaseLost) {
		t.Fatalf("second Release: %v, want ErrLeaseLost", err)
	}
	again, err := j.Take(t.Context(), s, lease)
	if err != nil || again.Turn != next {
		t.Fatalf("Take = %+v, %v; want turn %+v", again, err, next)
	}
	// Abandoning drops the lease only: the item stays on its leased
	// turn, for the master to charge as a vanished worker's.
	if err := j.Abandon(t.Context(), again); err != nil {
		t.Fatal(err)
	}
	if a, leased, err := j.ItemTurn(c.Index); err != nil || a != 2 || !leased {
		t.Fatalf("ItemTurn after Abandon = %d, %v, %v; want attempt 2, leased", a, leased, err)
	}
	if r, _ := j.Retries(); len(r) != 0 {
		t.Fatalf("retry list after Abandon = %v, want empty", r)
	}
	if l, _ := j.Leases(); len(l) != 0 {
		t.Fatalf("leases after Abandon = %v, want none", l)
	}
	if _, err := j.Take(t.Context(), s, lease); !errors.Is(err, job.ErrEmpty) {
		t.Fatalf("Take after Abandon: %v, want ErrEmpty", err)
	}
}

func TestTimerAgeUsesServerClock(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	j := newJob(t, conn, "/timers")
	if err := j.Create(spec(), nil); err != nil {
		t.Fatal(err)
	}
	p, err := j.CreateTimer(protocol.Timer{ID: "w1", Host: "h", Pid: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, st, err := conn.Get(p)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the server clock has moved past the timer's mtime.
	var timers []job.TimerState
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, ts, err := j.Timers()
		if err != nil {
			t.Fatal(err)
		}
		timers = ts
		if now.UnixMilli() > st.Mtime+50 || time.Now().After(deadline) {
			break
		}
	}
	if len(timers) != 1 || timers[0].ID != "w1" || timers[0].Age <= 0 || timers[0].Owner != conn.SessionID() {
		t.Fatalf("timers = %+v, want one timer w1 with a positive age owned by this session", timers)
	}
	if err := j.Kick(timers[0].Name); err != nil {
		t.Fatal(err)
	}
	_, after, _ := j.Timers()
	if after[0].Kicked.Before(timers[0].Kicked) || after[0].Kicked.UnixMilli() < st.Mtime {
		t.Fatalf("kick did not move the timer: before %v after %v", timers[0].Kicked, after[0].Kicked)
	}
	if err := j.Kick("t-9999999999"); err == nil {
		t.Fatal("kicking a missing timer succeeded")
	}
}
