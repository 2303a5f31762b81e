package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// OnTerm says what becomes of an item whose command a TERM or INT from
// outside ended (the scheduler's time limit, preemption, scancel).
type OnTerm string

const (
	// OnTermRequeue hands the item out again, not charged against the
	// job's retries: the item was not at fault.
	OnTermRequeue OnTerm = "requeue"
	// OnTermFail records the item failed with the command's status.
	OnTermFail OnTerm = "fail"
)

// ParseOnTerm reads --on-term.
func ParseOnTerm(s string) (OnTerm, error) {
	switch o := OnTerm(s); o {
	case OnTermRequeue, OnTermFail:
		return o, nil
	}
	return "", fmt.Errorf("%w: %q is not requeue or fail", ErrSettings, s)
}

// errNoLifetime: too little of the worker's lifetime is left for an item.
var errNoLifetime = errors.New("too little lifetime left for another item")

// settle ends an attempt that ran: a result recorded, or the item handed
// out again (uncharged when the task was ended from outside, charged when
// the job's --retry-on names how it ended and retries are left).
func (w *Worker) settle(ctx context.Context, c *job.Claim, r protocol.Result, why error) {
	if c == nil {
		return
	}
	switch {
	case r.Outcome == protocol.OK:
	case why == nil && interrupted(ctx) != 0 && w.cfg.OnTerm != OnTermFail:
		sig := syscall.Signal(interrupted(ctx))
		r.Outcome = protocol.Terminated
		r.Reason = fmt.Sprintf("the task got %s (%s); the item goes back to the queue uncharged", sigName(sig), r.Reason)
		w.retry(c, r, false)
		return
	case errors.Is(why, ErrAborted):
		// The job is over: nothing is handed out any more.
	case w.spec.Policy.Retryable(r) && c.Charged < w.spec.Retries:
		w.retry(c, r, true)
		return
	}
	w.record(c, r)
}

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return s.String()
}

// retry hands the item out again, keeping this attempt's record.
func (w *Worker) retry(c *job.Claim, r protocol.Result, charge bool) {
	r.ID, r.Host, r.Item = w.cfg.ID, w.host, nil
	ctx, cancel := w.patient()
	defer cancel()
	err := w.j.Retry(ctx, *c, r, charge)
	switch {
	case err == nil && charge:
		w.log.Warn("the attempt failed; the item is handed out again", "item", c.Index+1, "attempt", c.Attempt,
			"outcome", r.Outcome, "exit", r.Exit, "retries_used", c.Charged+1, "retries", w.spec.Retries)
	case err == nil:
		w.log.Info("the item goes back to the queue, not charged against its retries", "item", c.Index+1, "attempt", c.Attempt)
	case errors.Is(err, job.ErrLeaseLost):
		w.log.Error("the item was not handed out again: this worker no longer holds it", "item", c.Index+1, "err", err)
	default:
		w.log.Error("the item was not handed out again; the master hands it out once this worker's session ends", "item", c.Index+1, "err", err)
	}
}

// itemTimeout is the job's --item-timeout in force now (0: none), and
// how it came about, for the reason of a stop.
func (w *Worker) itemTimeout() (time.Duration, string) {
	p := w.spec.Policy
	if p.ItemTimeoutMillis > 0 {
		d := p.TimeoutFor(protocol.Stats{})
		return d, fmt.Sprintf("the job's --item-timeout %v", d)
	}
	if p.ItemTimeoutPercent <= 0 {
		return 0, ""
	}
	stats, err := w.j.Stats()
	if err != nil {
		w.log.Warn("cannot read the job's statistics; no --item-timeout for this item", "err", err)
		return 0, ""
	}
	d := p.TimeoutFor(stats)
	return d, fmt.Sprintf("the job's --item-timeout %d%% of the %v median of %d items that succeeded", p.ItemTimeoutPercent, stats.Median(), stats.OK)
}

// checkLifetime refuses another item when less of the worker's lifetime
// is left than an item is expected to need, saying so once.
func (w *Worker) checkLifetime() error {
	if w.cfg.Deadline.IsZero() {
		return nil
	}
	need, from := w.expected()
	left := time.Until(w.cfg.Deadline)
	if need <= 0 || left >= need {
		return nil
	}
	w.log.Info("not taking another item: less lifetime is left than an item is expected to need; the queue's items are left for workers with time",
		"left", max(left, 0).Round(time.Second), "expected", need.Round(time.Millisecond), "from", from)
	return errNoLifetime
}

// expected is how long an item is expected to take: --item-time, else
// the median the master publishes of the items that succeeded, else that
// of this worker's own items; 0 when nothing says.
func (w *Worker) expected() (time.Duration, string) {
	if w.cfg.ItemTime > 0 {
		return w.cfg.ItemTime, "--item-time"
	}
	if s, err := w.j.Stats(); err == nil && s.OK > 0 && s.MedianMillis > 0 {
		return s.Median(), fmt.Sprintf("the median of the job's %d items that succeeded", s.OK)
	}
	if len(w.took) > 0 {
		return median(w.took), fmt.Sprintf("the median of the %d items this worker ran", len(w.took))
	}
	return 0, ""
}

// tookWindow is how many of its latest items a worker's own median is
// taken over: enough to say what an item takes, and a looping worker of a
// million items must not sort a million durations before each.
const tookWindow = 101

func (w *Worker) noteTook(d time.Duration) {
	if w.cfg.Deadline.IsZero() {
		return
	}
	if len(w.took) == tookWindow {
		w.took = append(w.took[:0], w.took[1:]...)
	}
	w.took = append(w.took, d)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
