package master

import (
	"errors"
	"log/slog"
	"time"

	"github.com/zkdog/zkdog/internal/job"
)

// rearm is one re-armable watch; arm reads the state and sets the watch
// (or, for what no cheap watch can follow, a timer). A watch with
// every > 0 is re-armed at most that often: the result counter changes
// with every item, and with thousands of workers re-reading it on every
// change would cost the server thousands of reads a second. Whatever
// changed meanwhile is read at the next arm.
type rearm struct {
	w     job.Watch // nil while it needs arming
	arm   func() (job.Watch, error)
	every time.Duration
	armed time.Time
}

func (r *rearm) fired() { r.w = nil }

// due is when the watch may be armed again; zero if it is armed.
func (r *rearm) due() time.Time {
	if r.w != nil {
		return time.Time{}
	}
	return r.armed.Add(r.every)
}

// follower holds the master's watches and the timers that bring the loop
// back when a watch could not be armed or is held back by its rate limit.
type follower struct {
	tally, presence, abort *rearm
	retry, wake            <-chan time.Time
	log                    *slog.Logger
	// answered: the last armAll read something from ZooKeeper.
	answered bool
}

// armAll re-arms the watches that fired and are due (or all that fired,
// with force). An error that is not transient, such as the job removed,
// ends the wait; transient ones bring the loop back after a pause.
func (f *follower) armAll(force bool) error {
	failed := false
	f.answered = false
	var next time.Time
	for _, r := range []*rearm{f.tally, f.presence, f.abort} {
		if r.w != nil {
			continue
		}
		if due := r.due(); !force && time.Now().Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		w, err := r.arm()
		if err != nil && (errors.Is(err, job.ErrNoJob) || errors.Is(err, job.ErrIncomplete)) {
			return err
		}
		if err != nil {
			f.log.Warn("reading the job; will retry", "err", err)
			failed = true
			continue
		}
		r.w, r.armed = w, time.Now()
		f.answered = true
	}
	f.retry, f.wake = nil, nil
	if failed {
		f.retry = time.After(job.RetryPause)
	}
	if !next.IsZero() {
		f.wake = time.After(time.Until(next))
	}
	return nil
}
