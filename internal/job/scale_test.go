package job_test

import (
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zktest"
)

// The gauge counts what the listings would, from stats alone, and
// AttachWorkOf finds the items of the timers asked for among the leases
// given, as AttachWork does by listing them.
func TestGaugeAndAttachWorkOf(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	j := newJob(t, conn, "/gauge")
	if err := j.Create(spec(), items(5)); err != nil {
		t.Fatal(err)
	}
	s, _ := j.Spec()
	var claims []job.Claim
	for _, id := range []string{"a", "b", "c"} {
		wj := newJob(t, zktest.Connect(t, srv.Addr()), "/gauge")
		c, err := wj.Take(t.Context(), s, workerLease(t, wj, id))
		if err != nil {
			t.Fatal(err)
		}
		claims = append(claims, c)
	}
	if err := j.Record(t.Context(), claims[0], protocol.Result{Outcome: protocol.OK}); err != nil {
		t.Fatal(err)
	}
	if err := j.DeleteTimer(claims[0].Timer); err != nil {
		t.Fatal(err)
	}
	g, err := j.ReadGauge(s)
	if err != nil {
		t.Fatal(err)
	}
	want := job.Gauge{Issued: 3, Leased: 2, Done: 1, Came: 3, Live: 2}
	if g != want || g.Unaccounted() != 0 || g.Departed() != 1 {
		t.Fatalf("gauge = %+v, want %+v", g, want)
	}

	now, err := j.Clock()
	if err != nil {
		t.Fatal(err)
	}
	names := []string{claims[1].Timer, claims[2].Timer, claims[0].Timer}
	states, err := j.ReadTimers(now, names)
	if err != nil {
		t.Fatal(err)
	}
	if states[2] != nil || states[0] == nil || states[1] == nil || states[0].Age > time.Minute {
		t.Fatalf("timers read = %v, want the two live ones, the deleted one nil", states)
	}
	leases, err := j.Leases()
	if err != nil {
		t.Fatal(err)
	}
	timers := []job.TimerState{*states[1]}
	timers[0].Item = -1
	if err := j.AttachWorkOf(timers, leases); err != nil {
		t.Fatal(err)
	}
	if timers[0].Item != claims[2].Index || timers[0].Attempt != 1 || timers[0].Label == "" {
		t.Errorf("attached %+v, want item %d, attempt 1, with its label", timers[0], claims[2].Index)
	}
}
