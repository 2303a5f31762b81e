package job_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zktest"
)

func newJob(t *testing.T, conn *zk.Conn, root string) *job.Job {
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

func TestJobLifecycle(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	j := newJob(t, conn, "/batch/lifecycle")

	const n = 2*protocol.BucketSize + 500
	if err := j.Create(spec(), items(n)); err != nil {
		t.Fatal(err)
	}
	s, _, err := j.Spec()
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := wj.Take(s, protocol.Lease{ID: fmt.Sprint(w)})
				if errors.Is(err, job.ErrEmpty) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				if want := fmt.Sprintf("item-%d", c.Index); string(c.Data) != want || c.Attempt != 1 {
					t.Errorf("took %q attempt %d at index %d, want %q attempt 1", c.Data, c.Attempt, c.Index, want)
				}
				out := protocol.OK
				if c.Index%100 == 7 {
					out = protocol.Failed
				}
				if err := wj.Record(c, protocol.Result{Outcome: out, Exit: map[bool]int{true: 0, false: 3}[out == protocol.OK]}); err != nil {
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

	// No znode of the job has more children than a bucket.
	for _, p := range []string{j.L.Items(), j.L.ItemBucket(0), j.L.ResultBucket(1), j.L.Root} {
		_, st, err := conn.Exists(p)
		if err != nil || st.NumChildren > protocol.BucketSize {
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
	if s, _, _ := j.Spec(); s.Items != 3 {
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
	j := newJob(t, zktest.Connect(t, srv.Addr()), "/lease")
	if err := j.Create(spec(), items(2)); err != nil {
		t.Fatal(err)
	}
	s, _, _ := j.Spec()

	// A worker takes an item, then its session ends (ephemeral lease gone).
	wconn, _, err := zk.Connect([]string{srv.Addr()}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	wj := newJob(t, wconn, "/lease")
	c := takeWhenConnected(t, wj, s)
	wconn.Close()

	if err := j.Record(c, protocol.Result{Outcome: protocol.OK}); !errors.Is(err, job.ErrLeaseLost) {
		t.Fatalf("Record after the lease vanished: %v, want ErrLeaseLost", err)
	}
	if has, _ := j.HasResult(c.Index); has {
		t.Fatal("a result was recorded without the lease")
	}

	// Requeued, the item comes back as attempt 2 once the cursor is spent.
	if err := j.Requeue(c.Turn, 1); err != nil {
		t.Fatal(err)
	}
	other, err := j.Take(s, protocol.Lease{})
	if err != nil || other.Index == c.Index {
		t.Fatalf("Take = %+v, %v; want the untouched item first", other, err)
	}
	again, err := j.Take(s, protocol.Lease{})
	if err != nil || again.Index != c.Index || again.Attempt != 2 || again.Charged != 1 {
		t.Fatalf("Take = %+v, %v; want item %d attempt 2", again, err, c.Index)
	}
	if _, err := j.Take(s, protocol.Lease{}); !errors.Is(err, job.ErrEmpty) {
		t.Fatalf("Take on a drained queue: %v, want ErrEmpty", err)
	}
	if err := j.Record(again, protocol.Result{Outcome: protocol.OK}); err != nil {
		t.Fatal(err)
	}
	// A stale attempt cannot record over the new one.
	if err := j.Record(c, protocol.Result{Outcome: protocol.OK}); err == nil {
		t.Fatal("the stale attempt recorded a second result")
	}
}

func takeWhenConnected(t *testing.T, j *job.Job, s protocol.Job) job.Claim {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := j.Take(s, protocol.Lease{})
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the client is still connecting
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
