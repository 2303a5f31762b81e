package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/supervise"
)

// drain takes items, one or (with Loop) until none is left. While a
// short command runs, the next item may be leased and the previous result
// recorded meanwhile (see prefetchBelow); every item so held is given
// back, and every result settled, before drain returns.
func (w *Worker) drain(ctx context.Context) (Result, error) {
	lease := protocol.Lease{Timer: w.timer.Name(), ID: w.cfg.ID, Host: w.host, Pid: os.Getpid()}
	if w.cfg.Loop {
		// One subscription to the relayed signals for the whole loop.
		defer supervise.HoldSignals()()
	}
	var (
		res     Result
		ahead   *prefetch     // the next item, leased while the last command ran
		settled chan struct{} // closed once the last result is settled
	)
	defer func() {
		// Nothing held is left leased, and no result unsettled, on any
		// way out.
		w.giveBackAhead(ahead)
		awaitSettled(settled)
	}()
	for {
		c, err := w.nextOf(ctx, lease, ahead, settled)
		ahead = nil
		if err == nil && ctx.Err() != nil {
			// Stopped between taking the item and starting on it.
			w.giveBack(c)
			err = context.Cause(ctx)
		}
		if sig := interrupted(ctx); sig != 0 {
			w.log.Info("stopping on a signal; no more items taken", "signal", sig)
			return Result{Status: 128 + sig, Ran: res.Ran}, nil
		}
		if errors.Is(err, errNoLifetime) {
			return res, nil
		}
		if errors.Is(err, job.ErrEmpty) {
			if res.Ran == 0 {
				w.log.Info("the queue is empty; nothing to do", "root", w.j.L.Root)
			}
			return res, nil
		}
		if errors.Is(err, job.ErrBudgetSpent) {
			// The master is aborting the job: nothing more to take.
			w.log.Warn("no more items taken", "why", err)
			return res, nil
		}
		if errors.Is(err, job.ErrFinished) {
			// Nothing is left, as with an empty queue; the caller says how
			// the job ended.
			return res, err
		}
		if err != nil {
			if res.Ran == 0 {
				return res, err
			}
			w.log.Error("stopping: no more items taken", "err", err)
			return res, nil
		}
		w.timer.Progress() // taking an item is progress
		w.log.Info("took item", "item", c.Index+1, "attempt", c.Attempt, "label", protocol.Label(c.Data))
		overlap := w.mayPrefetch()
		before := settled
		code, why, settle := w.runItem(ctx, &c, func(ended <-chan struct{}) {
			if overlap {
				ahead = w.prefetch(ctx, lease, before, ended)
			}
		})
		if didNotStart(why) {
			// Every later item would fail the same way: stop, with the
			// item given back, rather than fail the whole queue.
			return res, why
		}
		settled = w.settleBehind(settle, overlap, before)
		res.Ran++
		if code != 0 {
			res.Status, res.Stopped = code, why
		}
		if !w.cfg.Loop {
			return res, nil
		}
	}
}

// nextOf is the next item to start: the one leased ahead if there is one,
// checked again as a fresh take would be; else one taken now, once the
// last result is settled, as a worker taking one item at a time does.
func (w *Worker) nextOf(ctx context.Context, lease protocol.Lease, ahead *prefetch, settled chan struct{}) (job.Claim, error) {
	if c, ok := ahead.claim(); ok {
		if err := w.checkLifetime(); err != nil {
			w.giveBack(c)
			return job.Claim{}, err
		}
		return c, nil
	}
	awaitSettled(settled)
	return w.next(ctx, lease)
}

// next takes the next item; with UntilDone, an empty queue is waited on
// until an item comes back or every item has a result. errNoLifetime when
// the worker has too little time left for one.
func (w *Worker) next(ctx context.Context, lease protocol.Lease) (job.Claim, error) {
	for {
		if err := w.checkLifetime(); err != nil {
			return job.Claim{}, err
		}
		c, err := w.take(ctx, lease)
		if !errors.Is(err, job.ErrEmpty) || !w.cfg.Loop || !w.cfg.UntilDone {
			return c, w.finishedOr(ctx, err)
		}
		var empty *job.EmptyError
		var due time.Time
		if errors.As(err, &empty) {
			due = empty.Due
		}
		more, err := w.awaitRetries(ctx, due)
		if err != nil {
			return job.Claim{}, w.finishedOr(ctx, err)
		}
		if !more {
			return job.Claim{}, job.ErrEmpty
		}
	}
}

// take takes an item, riding out a ZooKeeper outage (a leader election
// takes under a second) for as long as the session holds.
func (w *Worker) take(ctx context.Context, lease protocol.Lease) (job.Claim, error) {
	if ctx.Err() != nil {
		return job.Claim{}, context.Cause(ctx)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, recordPatience, errors.New("ZooKeeper kept failing"))
	defer cancel()
	for {
		c, err := w.j.Take(ctx, w.spec, lease)
		if err == nil || !job.Transient(err) {
			return c, err
		}
		w.log.Warn("taking an item failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return job.Claim{}, fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		case <-time.After(job.RetryPause):
		}
	}
}

// awaitRetries waits, with the queue empty, until an item comes back for
// another attempt (true) or every item has a result (false). An item held
// back by the job's --retry-delay is on the retry list already: it is
// waited for until due, the time Take gave, or until the list changes.
// Waiting is a sign of health, not a hang, so the timer is kept kicked
// meanwhile.
func (w *Worker) awaitRetries(ctx context.Context, due time.Time) (bool, error) {
	tick := time.NewTicker(max(w.spec.Timer()/8, 10*time.Millisecond))
	defer tick.Stop()
	var wake <-chan time.Time
	if !due.IsZero() {
		t := time.NewTimer(time.Until(due))
		defer t.Stop()
		wake = t.C
	}
	logged := false
	for looked := false; ; looked = true {
		retry, done, changed, err := w.j.WatchRetryOrDone()
		if err != nil {
			return false, err
		}
		if done >= w.spec.Items {
			return false, nil
		}
		// Entries seen at the first look are the held-back ones Take
		// skipped; any seen after a change may be takeable.
		if retry > 0 && (due.IsZero() || looked) {
			return true, nil
		}
		if !logged {
			w.log.Info("the queue is empty; waiting for the other workers' items to finish or come back", "left", w.spec.Items-done)
			logged = true
		}
		woke, err := w.waitKicking(ctx, changed, tick.C, wake)
		if err != nil || woke {
			return woke, err
		}
	}
}

// waitKicking waits for changed, kicking the timer on every tick; true
// when wake fired first.
func (w *Worker) waitKicking(ctx context.Context, changed job.Watch, tick, wake <-chan time.Time) (bool, error) {
	for {
		select {
		case <-changed:
			return false, nil
		case <-wake:
			return true, nil
		case <-tick:
			w.timer.Progress()
		case <-ctx.Done():
			return false, context.Cause(ctx)
		}
	}
}

// finishedOr explains a failure to take or wait for an item by the job
// being finished, when it is: sealing a job drops what is left of its
// queue, and the timers, under the workers still looking at it, whose
// requests then fail in other ways.
func (w *Worker) finishedOr(ctx context.Context, err error) error {
	if err == nil || interrupted(ctx) != 0 || errors.Is(err, job.ErrEmpty) || errors.Is(err, job.ErrFinished) {
		return err
	}
	spec, serr := w.j.Spec()
	if serr != nil {
		return err
	}
	if ferr := finished(w.j.L.Root, spec); ferr != nil {
		return ferr
	}
	return err
}

// finished is the error for a job whose record says it is finished, nil
// for any other.
func finished(root string, spec protocol.Job) error {
	if spec.State != protocol.StateFinished {
		return nil
	}
	fe := &job.FinishedError{Root: root}
	if spec.Summary != nil {
		fe.Summary = *spec.Summary
	}
	return fe
}
