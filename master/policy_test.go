package master_test

import (
	"bytes"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zktest"
	"github.com/zkdog/zkdog/master"
)

// awaitNode returns once node p exists, watching for it.
func awaitNode(t *testing.T, conn *zk.Conn, p string) {
	t.Helper()
	guard := time.After(hangGuard)
	for {
		ok, _, ch, err := conn.ExistsW(p)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		select {
		case <-ch:
		case <-guard:
			t.Fatalf("%s not created within %v", p, hangGuard)
		}
	}
}

// awaitGone returns once node p is gone, watching it.
func awaitGone(t *testing.T, conn *zk.Conn, p string) {
	t.Helper()
	guard := time.After(hangGuard)
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
		case <-guard:
			t.Fatalf("%s still there after %v", p, hangGuard)
		}
	}
}

func printed(r master.Report) string {
	var out bytes.Buffer
	r.Print(&out)
	return out.String()
}

// Issue 11: what the master does when attempts end badly, by the job's
// policy (--retry-on, --max-failures, --on-hang).
func TestWaitPolicy(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))

	t.Run("vanished worker not retried when --retry-on leaves it out", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, protocol.Job{TimerMillis: 60_000, Retries: 2, Policy: protocol.Policy{RetryOn: []string{protocol.RetryFailed}}}, "a", "b")
		w := startWait(t, j, master.WaitConfig{Poll: vanishPoll})
		w.following(t)
		doomed, doomedConn := workerOn(t, srv, j)
		c := take(t, doomed, "doomed")
		w.statuses.waitFor(t, "the lease", func(s master.Status) bool { return s.Running == 1 })
		doomedConn.Close()
		wj, _ := workerOn(t, srv, j)
		record(t, wj, take(t, wj, "w1"), protocol.OK, 0, "w1")
		wj.exit(t)
		r := w.result(t)
		if r.End != master.EndLost || r.Lost != 1 || r.OK != 1 || r.Retried != 0 {
			t.Fatalf("report = %+v; want end %s, item %d lost and not retried", r, master.EndLost, master.Number(c.Index))
		}
		if p := r.Problems[0]; p.Outcome != protocol.Lost || !strings.Contains(p.Reason, "--retry-on") {
			t.Errorf("problem = %+v; want lost, saying --retry-on does not name vanished", p)
		}
	})

	t.Run("failure budget spent", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, protocol.Job{TimerMillis: 60_000, Policy: protocol.Policy{MaxFailures: 2}}, "slow", "b", "c", "d", "e")
		w := startWait(t, j, master.WaitConfig{})
		w.following(t)
		busy, _ := workerOn(t, srv, j)
		inFlight := take(t, busy, "busy")
		w.statuses.waitFor(t, "the lease", func(s master.Status) bool { return s.Running == 1 })
		failing, _ := workerOn(t, srv, j)
		for range 2 {
			record(t, failing, take(t, failing, "failing"), protocol.Failed, 1, "failing")
		}
		awaitNode(t, zktest.Connect(t, srv.Addr()), j.L.Abort())
		reason, _, err := j.AbortReason()
		if err != nil || !strings.Contains(reason, "failure budget") {
			t.Errorf("abort reason %q, %v; want it to say the failure budget was spent", reason, err)
		}
		// The master waits for the workers to stop: the stopped item's
		// result is in the report.
		select {
		case res := <-w.res:
			t.Fatalf("Wait returned %+v, %v while workers were still stopping", res.r, res.err)
		default:
		}
		if err := busy.Record(t.Context(), inFlight, protocol.Result{Outcome: protocol.Failed, Exit: 143, Signal: 15,
			ID: "busy", Host: "node-busy", Reason: "the job was aborted: " + reason}); err != nil {
			t.Fatal(err)
		}
		busy.exit(t)
		failing.exit(t)
		r := w.result(t)
		if r.End != master.EndBudget || r.Failed != 3 || r.OK != 0 || r.Unfinished != 2 {
			t.Fatalf("report = %+v; want end %s, 3 failed (the stopped one too), 2 unfinished", r, master.EndBudget)
		}
		if len(r.InFlight) != 1 || r.InFlight[0].Index != 1 || r.InFlight[0].Item != "slow" || r.InFlight[0].ID != "busy" ||
			r.InFlight[0].Outcome != protocol.Failed || r.InFlight[0].Exit != 143 {
			t.Errorf("in flight = %+v; want item 1 \"slow\" of worker busy, failed with exit 143 once stopped", r.InFlight)
		}
		out := printed(r)
		for _, want := range []string{"failure budget was spent", "--max-failures allows 2",
			`in flight when the job was aborted: item 1 "slow", attempt 1, worker busy on node-busy; now failed`} {
			if !strings.Contains(out, want) {
				t.Errorf("printed report lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("failure budget not spent when every item has a result", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, protocol.Job{TimerMillis: 60_000, Policy: protocol.Policy{MaxFailures: 1}}, "a")
		w := startWait(t, j, master.WaitConfig{})
		w.following(t)
		wj, _ := workerOn(t, srv, j)
		record(t, wj, take(t, wj, "w1"), protocol.Failed, 1, "w1")
		wj.exit(t)
		if r := w.result(t); r.End != master.EndFailed || r.Failed != 1 {
			t.Errorf("report = %+v; want end %s: nothing was left to abort", r, master.EndFailed)
		}
		if _, aborted, _ := j.AbortReason(); aborted {
			t.Error("a job whose every item had a result was aborted")
		}
	})

	t.Run("a master taking over an aborted job whose budget was spent", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, protocol.Job{TimerMillis: 60_000, Policy: protocol.Policy{MaxFailures: 1}}, "a", "b")
		wj, _ := workerOn(t, srv, j)
		record(t, wj, take(t, wj, "w1"), protocol.Failed, 1, "w1")
		wj.exit(t)
		if err := j.Abort("the failure budget was spent"); err != nil {
			t.Fatal(err)
		}
		if r := startWait(t, j, master.WaitConfig{}).result(t); r.End != master.EndBudget {
			t.Errorf("report = %+v; want end %s", r, master.EndBudget)
		}
	})

	// A hung worker under --on-hang stall: its item is stalled, only its
	// timer goes, and the job goes on to its end.
	hung := func(t *testing.T, policy protocol.Policy, retries int) (*job.Job, *waiting, string) {
		t.Helper()
		policy.OnHang = protocol.OnHangStall
		j := newJob(t, srv, protocol.Job{TimerMillis: 300, Retries: retries, Policy: policy}, "hangs", "quick")
		stuck, _ := workerOn(t, srv, j)
		tp := stuck.startTimer(t, protocol.Timer{ID: "stuck", Host: "node-stuck", Pid: 7})
		take(t, stuck, "stuck")
		w := startWait(t, j, master.WaitConfig{})
		// Its timer deleted is what tells the worker to stop.
		awaitGone(t, zktest.Connect(t, srv.Addr()), tp)
		if _, aborted, _ := j.AbortReason(); aborted {
			t.Fatal("the job was aborted under --on-hang stall")
		}
		return j, w, path.Base(tp)
	}
	// The other worker never kicks either: a long session keeps its timer
	// from being judged within the test (Timer.Limit).
	healthy := func(t *testing.T, j *job.Job) *worker {
		wj, _ := workerOn(t, srv, j)
		wj.startTimer(t, protocol.Timer{ID: "w1", Host: "node-w1", SessionMillis: hangGuard.Milliseconds()})
		return wj
	}

	t.Run("on-hang stall", func(t *testing.T) {
		t.Parallel()
		j, w, timer := hung(t, protocol.Policy{}, 1)
		wj := healthy(t, j)
		c := take(t, wj, "w1")
		if c.Index != 1 {
			t.Fatalf("the other worker took item %d; want item 1 (the stalled one is not retried by default)", c.Index)
		}
		record(t, wj, c, protocol.OK, 0, "w1")
		wj.exit(t)
		r := w.result(t)
		if r.End != master.EndFailed || r.Stalled != 1 || r.OK != 1 || r.Retried != 0 {
			t.Fatalf("report = %+v; want end %s with 1 stalled, 1 ok", r, master.EndFailed)
		}
		p := r.Problems[0]
		if p.Index != 1 || p.Item != "hangs" || p.Outcome != protocol.Stalled || p.ID != "stuck" || p.Host != "node-stuck" ||
			!strings.Contains(p.Reason, timer) || !strings.Contains(p.Reason, "--retry-on") {
			t.Errorf("problem = %+v; want item 1 \"hangs\" stalled by worker stuck, naming its timer and --retry-on", p)
		}
		if out := printed(r); !strings.Contains(out, `stalled item 1 "hangs": exit -1`) {
			t.Errorf("printed report does not name the stalled item:\n%s", out)
		}
	})

	t.Run("on-hang stall, stalled retried", func(t *testing.T) {
		t.Parallel()
		j, w, _ := hung(t, protocol.Policy{RetryOn: []string{protocol.RetryStalled}}, 1)
		wj := healthy(t, j)
		for range 2 {
			record(t, wj, take(t, wj, "w1"), protocol.OK, 0, "w1")
		}
		wj.exit(t)
		r := w.result(t)
		if r.End != master.EndOK || r.OK != 2 || r.Retried != 1 {
			t.Fatalf("report = %+v; want end ok, the stalled item retried once", r)
		}
		earlier, err := j.Earlier(0, 2)
		if err != nil || len(earlier) != 1 || earlier[0].Outcome != protocol.Stalled || earlier[0].ID != "stuck" {
			t.Errorf("earlier attempts = %+v, %v; want attempt 1 stalled by worker stuck", earlier, err)
		}
	})

	t.Run("timeout counted", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, protocol.Job{TimerMillis: 60_000}, "a", "b")
		w := startWait(t, j, master.WaitConfig{})
		w.following(t)
		wj, _ := workerOn(t, srv, j)
		record(t, wj, take(t, wj, "w1"), protocol.Timeout, 143, "w1")
		record(t, wj, take(t, wj, "w1"), protocol.OK, 0, "w1")
		wj.exit(t)
		r := w.result(t)
		if r.End != master.EndFailed || r.Timeout != 1 || r.OK != 1 || r.Failed != 0 {
			t.Fatalf("report = %+v; want end %s with 1 timeout, 1 ok", r, master.EndFailed)
		}
		if out := printed(r); !strings.Contains(out, "timeout 1") || !strings.Contains(out, `timeout item 1 "a"`) {
			t.Errorf("printed report does not count or name the timeout:\n%s", out)
		}
	})
}

// The master publishes the median duration of the ok items for the
// workers; other outcomes do not count.
func TestWaitPublishesStats(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	items := make([]string, 13)
	for i := range items {
		items[i] = "item"
	}
	j := newJob(t, srv, protocol.Job{TimerMillis: 60_000}, items...)
	w := startWait(t, j, master.WaitConfig{StatsEvery: 20 * time.Millisecond})
	w.following(t)
	wj, _ := workerOn(t, srv, j)
	for i := range 12 {
		c := take(t, wj, "w1")
		if err := wj.Record(t.Context(), c, protocol.Result{Outcome: protocol.OK, DurationMillis: int64(i+1) * 1000}); err != nil {
			t.Fatal(err)
		}
	}
	c := take(t, wj, "w1")
	if err := wj.Record(t.Context(), c, protocol.Result{Outcome: protocol.Failed, Exit: 1, DurationMillis: 999_000}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(hangGuard)
	var s protocol.Stats
	for s.OK < 12 {
		var err error
		if s, err = j.Stats(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats = %+v after %v; want 12 ok", s, hangGuard)
		}
		time.Sleep(10 * time.Millisecond) // the stats node has no watch to wait on
	}
	if s.OK != 12 || s.MedianMillis != 6500 {
		t.Errorf("stats = %+v; want 12 ok with median 6.5s", s)
	}
	wj.exit(t)
	if r := w.result(t); r.End != master.EndFailed {
		t.Errorf("report = %+v; want end %s", r, master.EndFailed)
	}
}

// zkdog status on a finished job shows how it ended, not an error.
func TestReadStatusSealed(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	j := newJob(t, srv, protocol.Job{TimerMillis: 60_000}, "a", "b")
	w := startWait(t, j, master.WaitConfig{})
	w.following(t)
	wj, _ := workerOn(t, srv, j)
	record(t, wj, take(t, wj, "w1"), protocol.OK, 0, "w1")
	record(t, wj, take(t, wj, "w1"), protocol.Timeout, 143, "w1")
	wj.exit(t)
	r := w.result(t)
	r.Exit = 1
	if _, err := master.Seal(t.Context(), j, r, false); err != nil {
		t.Fatal(err)
	}
	s, err := master.ReadStatus(j)
	if err != nil {
		t.Fatalf("ReadStatus on a finished job: %v", err)
	}
	if s.State != protocol.StateFinished || s.Summary == nil || s.Summary.Exit != 1 || s.OK != 1 || s.Timeout != 1 || s.Done != 2 ||
		s.Timers == nil || len(s.Timers) != 0 {
		t.Errorf("status = %+v; want finished, exit 1, 1 ok and 1 timeout, no timers", s)
	}
	var out bytes.Buffer
	s.Print(&out)
	for _, want := range []string{"(finished)", "it ended failed (exit 1)", "ok 1, failed 0, stalled 0, timeout 1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed status lacks %q:\n%s", want, out.String())
		}
	}
}
