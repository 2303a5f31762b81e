package job_test

import (
	"errors"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zktest"
)

// TestRetryKeepsEveryAttempt: an attempt that failed in a retried way is
// handed out again, charged, after the job's retry delay; one the
// scheduler ended comes back at once, uncharged; the master's requeue of
// a vanished worker's turn is an attempt too; the final row lists them
// all.
func TestRetryKeepsEveryAttempt(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	j := newJob(t, conn, "/attempts/job")
	sp := spec()
	sp.RetryDelayMillis = 60_000
	if err := j.Create(sp, items(1)); err != nil {
		t.Fatal(err)
	}
	s, _ := j.Spec()
	lease := workerLease(t, j, "w")

	c, err := j.Take(t.Context(), s, lease)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Retry(t.Context(), c, protocol.Result{Outcome: protocol.Terminated, Exit: 143, Signal: 15, Host: "h1"}, false); err != nil {
		t.Fatal(err)
	}
	c, err = j.Take(t.Context(), s, lease) // uncharged: not held back
	if err != nil || c.Attempt != 2 || c.Charged != 0 {
		t.Fatalf("after a TERM the item came back as %+v, %v; want attempt 2, uncharged", c.Turn, err)
	}
	if err := j.Retry(t.Context(), c, protocol.Result{Outcome: protocol.Failed, Exit: 75, Host: "h2"}, true); err != nil {
		t.Fatal(err)
	}
	_, err = j.Take(t.Context(), s, lease)
	var empty *job.EmptyError
	if !errors.As(err, &empty) || empty.Due.Before(time.Now().Add(50*time.Second)) {
		t.Fatalf("a charged retry under a 60s delay: Take = %v, want empty until about a minute from now", err)
	}

	// Without the delay (another job's settings), the turn is there.
	s.RetryDelayMillis = 0
	c, err = j.Take(t.Context(), s, lease)
	if err != nil || c.Attempt != 3 || c.Charged != 1 {
		t.Fatalf("the retried turn: %+v, %v; want attempt 3, charged once", c.Turn, err)
	}
	if err := j.Abandon(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if err := j.Requeue(c.Turn, 2); err != nil {
		t.Fatal(err)
	}
	c, err = j.Take(t.Context(), s, lease)
	if err != nil || c.Attempt != 4 {
		t.Fatalf("after the master's requeue: %+v, %v", c.Turn, err)
	}
	if err := j.Record(t.Context(), c, protocol.Result{Outcome: protocol.OK}); err != nil {
		t.Fatal(err)
	}
	rows, err := j.Rows(t.Context(), func(protocol.Outcome) bool { return true })
	if err != nil || len(rows) != 1 {
		t.Fatalf("rows: %+v, %v", rows, err)
	}
	var got []protocol.Outcome
	for _, r := range rows[0].Earlier {
		got = append(got, r.Outcome)
	}
	want := []protocol.Outcome{protocol.Terminated, protocol.Failed, protocol.Vanished}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || rows[0].Earlier[1].Exit != 75 || rows[0].Earlier[1].Host != "h2" {
		t.Errorf("earlier attempts %+v, want %v", rows[0].Earlier, want)
	}
	if rows[0].Attempts != 4 {
		t.Errorf("attempts = %d, want 4", rows[0].Attempts)
	}

	// Sealed, an item that ended ok keeps no attempts.
	if _, err := j.Seal(t.Context(), protocol.Summary{End: "ok"}, false); err != nil {
		t.Fatal(err)
	}
	if n, _ := countTree(t, conn, "/attempts/job"); n != 3 {
		t.Errorf("the sealed job has %d znodes, want 3", n)
	}
}

func TestStats(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	j := newJob(t, conn, "/attempts/stats")
	if err := j.Create(spec(), items(1)); err != nil {
		t.Fatal(err)
	}
	if s, err := j.Stats(); err != nil || s.OK != 0 {
		t.Fatalf("fresh stats = %+v, %v", s, err)
	}
	if err := j.PublishStats(protocol.Stats{OK: 12, MedianMillis: 900}); err != nil {
		t.Fatal(err)
	}
	if s, err := j.Stats(); err != nil || s.OK != 12 || s.Median() != 900*time.Millisecond {
		t.Fatalf("stats = %+v, %v", s, err)
	}
}
