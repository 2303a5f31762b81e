package master

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// stopAllowance is how long a worker told to stop may take to end its
// command and its timer: zkdog run's default --kill-timeout (10s) between
// TERM and KILL, and a few round trips to record and delete its timer.
const stopAllowance = 15 * time.Second

// budgetSpent: --max-failures items have a final result other than ok
// while some item has none; a job whose every item has a result just ends.
func (w *waiter) budgetSpent() bool {
	return w.spec.MaxFailures > 0 && w.tally.Failed >= w.spec.MaxFailures && w.tally.Done < w.spec.Items
}

// budgetReason says why a job whose budget is spent ended.
func (w *waiter) budgetReason() string {
	return fmt.Sprintf("the failure budget was spent: %d items ended other than ok, --max-failures allows %d",
		w.tally.Failed, w.spec.MaxFailures)
}

// spendBudget ends a job whose failure budget is spent: it notes which
// items are in flight, aborts the job (running workers stop their
// commands and take nothing more), and waits for the workers' timers to
// go, so that the report, and the seal after it, see the results of the
// items that were stopped. Workers go on taking items until they see the
// abort, so the leases are listed (one read) and the job aborted before
// anything else is read.
func (w *waiter) spendBudget(ctx context.Context) (Report, error) {
	reason := w.budgetReason()
	var leases []protocol.Turn
	if err := w.reach(ctx, func() (err error) { leases, err = w.j.Leases(); return }); err != nil {
		return w.budgetFailed(err)
	}
	if err := w.reach(ctx, func() error { return w.j.Abort(reason) }); err != nil {
		return w.budgetFailed(err)
	}
	w.cfg.Log.Error("aborted the job: "+reason, "in_flight", len(leases))
	var timers []job.TimerState
	if err := w.reach(ctx, func() (err error) { _, timers, err = w.j.Timers(); return }); err != nil {
		return w.budgetFailed(err)
	}
	if err := w.drain(ctx, drainLimit(timers)); err != nil {
		return w.budgetFailed(err)
	}
	r := w.report(EndBudget, reason, nil)
	r.InFlight = w.inFlight(leases)
	return r, nil
}

// inFlight describes the items of leases as they ended: their text, the
// worker that held them, and their outcome now; a read or two each.
func (w *waiter) inFlight(leases []protocol.Turn) []ItemReport {
	outcomes, err := w.j.Outcomes(w.spec)
	if err != nil {
		w.cfg.Log.Warn("could not read the results of the items in flight", "err", err)
	}
	got := make(map[int]protocol.Outcome, len(outcomes))
	for _, o := range outcomes {
		got[o.Index] = o.Outcome
	}
	slices.SortFunc(leases, func(a, b protocol.Turn) int { return a.Index - b.Index })
	out := make([]ItemReport, 0, len(leases))
	for _, t := range leases {
		o := job.Outcome{Index: t.Index, Outcome: protocol.Unfinished}
		if g, ok := got[t.Index]; ok {
			o.Outcome = g
		}
		p := ItemReport{Index: Number(t.Index), Outcome: o.Outcome, Exit: -1, Attempt: t.Attempt}
		if row, err := w.j.Row(o); err == nil {
			p.Item, p.ItemBase64 = string(row.Item), itemBase64(string(row.Item))
			if o.Outcome != protocol.Unfinished && row.Result.Attempt == t.Attempt {
				p.Exit, p.Signal, p.ID, p.Host, p.Reason = row.Result.Exit, row.Result.Signal, row.Result.ID, row.Result.Host, row.Result.Reason
			}
		}
		out = append(out, p)
	}
	return out
}

// budgetFailed is spendBudget's end when it could not finish.
func (w *waiter) budgetFailed(err error) (Report, error) {
	switch {
	case errors.Is(err, ErrUnreachable):
		return w.unreachable(), err
	case errors.Is(err, job.ErrNoJob) || errors.Is(err, job.ErrIncomplete):
		return w.removed(), fmt.Errorf("%w: %w", ErrRemoved, err)
	}
	return Report{}, err
}

// drainLimit bounds the wait for the workers to stop: stopAllowance for
// one that stops its command, twice its session timeout for one whose
// wrapper is frozen (its timer goes with its session). A worker with a
// longer --kill-timeout is not waited for: its result, if late, is
// refused by the sealed job.
func drainLimit(timers []job.TimerState) time.Duration {
	d := stopAllowance
	for _, t := range timers {
		d = max(d, 2*time.Duration(t.SessionMillis)*time.Millisecond)
	}
	return d
}

// drain waits until no worker's timer is left, or for limit, and then
// reads the counters once more for the report.
func (w *waiter) drain(ctx context.Context, limit time.Duration) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		changed, err := w.armTimers()
		var retry <-chan time.Time
		switch {
		case err == nil && len(w.presence.Timers) == 0:
			return w.reach(ctx, func() error { _, err := w.armTally(); return err })
		case err != nil && !job.Transient(err):
			return err
		case err != nil:
			retry = time.After(job.RetryPause)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			w.cfg.Log.Warn("workers still running after the abort; reporting without them", "workers", len(w.presence.Timers), "waited", limit)
			return w.reach(ctx, func() error { _, err := w.armTally(); return err })
		case <-changed:
		case <-retry:
		}
	}
}
