package master

import (
	"errors"
	"fmt"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// stall is --on-hang stall: each hung worker's item ends stalled (handed
// out again if --retry-on names stalled and retries remain), and then its
// timer is deleted, which tells that worker alone to stop its command and
// take nothing more. The other workers go on. The item is dealt with
// first, so that the timer, once gone, is never judged again with its
// item still leased; a failure leaves the timer for the next poll to
// judge again, which finds the item moved on (ErrStale, ignored).
//
// A worker whose wrapper is frozen never gets here: its timer's limit is
// at least twice its session timeout, so its session expires first and it
// is a worker that vanished.
func (w *waiter) stall(expired []job.TimerState, limit time.Duration) error {
	// The leases attachWork matched the timers against, which name each
	// turn's charge; the version checks of endAttempt refuse a turn that
	// moved on since.
	leases := w.oldestLeases()
	if !w.fresh {
		var err error
		if leases, err = w.j.Leases(); err != nil {
			return err
		}
	}
	var errs []error
	for _, t := range expired {
		if err := w.stallOne(t, leases, limit); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *waiter) stallOne(t job.TimerState, leases []protocol.Turn, limit time.Duration) error {
	reason := hungReason(t, limit)
	w.cfg.Log.Error("hung worker: stopping its command (--on-hang stall); the job goes on",
		"timer", t.Name, "id", t.ID, "host", t.Host, "pid", t.Pid, "item", Number(t.Item), "age", t.Age)
	if turn, ok := leaseOf(t, leases); ok {
		r := protocol.Result{Outcome: protocol.Stalled, Exit: -1, ID: t.ID, Host: t.Host, Timer: t.Name,
			Reason: "its worker hung: " + reason}
		if err := w.endAttempt(turn, r); err != nil {
			return fmt.Errorf("stalling item %d of hung worker %s: %w", Number(t.Item), t.ID, err)
		}
	}
	if err := w.j.DeleteTimer(t.Name); err != nil {
		return err
	}
	// The master's own deletion is no departure: it dealt with the
	// timer's lease above, and counting it would make the next timer
	// limit's polls look at every lease gone and sweep.
	w.departed++
	return nil
}

// leaseOf finds the lease of the item timer t's worker holds, with its
// charge, which only the lease's name carries.
func leaseOf(t job.TimerState, leases []protocol.Turn) (protocol.Turn, bool) {
	if t.Item < 0 {
		return protocol.Turn{}, false
	}
	for _, l := range leases {
		if l.Index == t.Item && l.Attempt == t.Attempt {
			return l, true
		}
	}
	return protocol.Turn{}, false
}
