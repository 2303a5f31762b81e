package worker

import (
	"context"
	"errors"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// prefetchBelow is the median duration, over this worker's latest
// prefetchWindow items, under which it leases its next item while the
// current command runs and records a result while the next one runs. For
// such items the ZooKeeper round trips of a take and a record are a
// sizeable share of each item, and hiding them behind the command is
// what lets a looping worker keep up with a plain fork loop.
//
// The trade-off is the item held meanwhile: nobody else can run it until
// the current command ends, which at the tail of a job keeps it from an
// idle worker for up to one item's time, and a worker killed outright
// (SIGKILL, a lost node) has it charged as vanished, an attempt spent on
// an item that never ran. Below a tenth of a second both are small: the
// wait is one short item, and a killed worker costs one retry more than
// it would have anyway. Above it the round trips are a few percent of an
// item at most, not worth either.
const prefetchBelow = 100 * time.Millisecond

// prefetchWindow is how many of its latest items a worker judges its
// items' length by, and the fewest it must have run before it prefetches:
// a job's first items say nothing yet. Small, so that once items turn
// long the prefetching stops after three of them (the median moves when
// half the window has); the first long one is covered by holdLimit.
const prefetchWindow = 5

// mayPrefetch reports whether the next item may be leased while the
// current one runs. Never for a job with a failure budget: a worker must
// not start an item once the budget is spent, and an item leased before
// the current one's failure is recorded would be started on a budget
// checked too early; so such a worker takes and records strictly in turn.
func (w *Worker) mayPrefetch() bool {
	if !w.cfg.Loop || w.spec.MaxFailures > 0 || len(w.recent) < prefetchWindow {
		return false
	}
	return median(w.recent) < prefetchBelow
}

// noteRecent keeps the duration of the latest items, for mayPrefetch.
func (w *Worker) noteRecent(d time.Duration) {
	if len(w.recent) == prefetchWindow {
		w.recent = append(w.recent[:0], w.recent[1:]...)
	}
	w.recent = append(w.recent, d)
}

// prefetchHoldLimit is how long an item leased ahead is held behind a
// command that turned out long, for all its predecessors were short:
// past it the item is given back (uncharged, a new turn) for an idle
// worker to take, and this worker takes its next item in turn. Ten times
// prefetchBelow: a command this long is not one of the short items the
// lease ahead was for, and the give-back costs two requests, which an
// item this long can afford.
const prefetchHoldLimit = 10 * prefetchBelow

// holdLimit is prefetchHoldLimit, which tests lengthen to hold an item
// ahead for as long as they need.
var holdLimit = prefetchHoldLimit

// errHeldTooLong: the item leased ahead was given back, the command
// before it running too long.
var errHeldTooLong = errors.New("the item taken ahead was given back: the command before it ran long")

// prefetch is an item being leased ahead.
type prefetch struct {
	done chan struct{}
	c    job.Claim
	err  error
}

// prefetch leases the next item in the background, once the result
// settling behind (after, nil for none) is settled: so the worker holds
// at most one lease it is not working on, the one taken ahead, and
// never a second while a result is still on its way.
//
// The item is held until the running command has ended (ended closed),
// or given back once it has run for prefetchHoldLimit.
func (w *Worker) prefetch(ctx context.Context, lease protocol.Lease, after chan struct{}, ended <-chan struct{}) *prefetch {
	p := &prefetch{done: make(chan struct{})}
	began := time.Now()
	go func() {
		defer close(p.done)
		awaitSettled(after)
		p.c, p.err = w.take(ctx, lease)
		if p.err != nil {
			// Empty, finished, or failing: the next take, made in turn,
			// says what to do about it.
			w.log.Debug("no item taken ahead", "err", p.err)
			return
		}
		p.holdUntil(w, ended, holdLimit-time.Since(began))
	}()
	return p
}

// holdUntil holds the item leased ahead until the command before it has
// ended, or gives it back when that takes longer than limit.
func (p *prefetch) holdUntil(w *Worker, ended <-chan struct{}, limit time.Duration) {
	t := time.NewTimer(max(limit, 0))
	defer t.Stop()
	select {
	case <-ended:
	case <-t.C:
		w.log.Info("giving back the item taken ahead: the command before it runs long", "item", p.c.Index+1)
		w.giveBack(p.c)
		p.err = errHeldTooLong
	}
}

// claim waits for the item leased ahead; false when none was (p nil, or
// its take failed).
func (p *prefetch) claim() (job.Claim, bool) {
	if p == nil {
		return job.Claim{}, false
	}
	<-p.done
	return p.c, p.err == nil
}

// giveBackAhead gives back an item leased ahead that will not be
// started: it did not run, so it costs no attempt.
func (w *Worker) giveBackAhead(p *prefetch) {
	if c, ok := p.claim(); ok {
		w.log.Info("giving back the item taken ahead", "item", c.Index+1)
		w.giveBack(c)
	}
}

// settleBehind settles a result: in the background when overlapping,
// after the one before it (so results are written in the order their
// commands ended), else at once. The returned channel is closed once it
// is settled.
func (w *Worker) settleBehind(settle func(), overlap bool, before chan struct{}) chan struct{} {
	done := make(chan struct{})
	if !overlap {
		awaitSettled(before)
		settle()
		close(done)
		return done
	}
	go func() {
		defer close(done)
		awaitSettled(before)
		settle()
	}()
	return done
}

func awaitSettled(settled chan struct{}) {
	if settled != nil {
		<-settled
	}
}
