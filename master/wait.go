package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// ErrSyncTimeout: no worker released the start barrier in time.
var ErrSyncTimeout = errors.New("master: sync timeout")

// WaitConfig configures Wait.
type WaitConfig struct {
	// SyncTimeout bounds the wait for the first worker when the job has a
	// barrier; zero waits for ever.
	SyncTimeout time.Duration
	// Poll is how often timers are read for expiry; zero picks a tenth of
	// the job's timer, between MinPoll and MaxPoll.
	Poll time.Duration
	Log  *slog.Logger
	// OnStatus, if set, is called after every change the master sees.
	OnStatus func(Status)
}

// Expiry is read by polling, since an absence of kicks fires no watch. A
// tenth of the limit bounds the lateness of a verdict to 10% of it;
// MinPoll bounds the reads a tiny test timer causes, MaxPoll the lateness
// of a long one.
const (
	MinPoll = 50 * time.Millisecond
	MaxPoll = 5 * time.Second
)

// retryBackoff is the pause before re-reading after a ZooKeeper error;
// the client reconnects on its own meanwhile.
const retryBackoff = 500 * time.Millisecond

// Status is the job as the master last saw it.
type Status struct {
	Items   int
	Done    int
	Failed  int
	Running int // items leased
	Timers  int
	Retried int
	Elapsed time.Duration
}

// Wait blocks until the job ends and says how. It is driven by watches on
// the result counter, the timers and the leases, and reads the timers
// every poll interval for expiry. The returned Report's Exit is the
// process exit code. The error is non-nil only when the master could not
// follow the job (ZooKeeper, or ctx cancelled).
func Wait(ctx context.Context, j *job.Job, cfg WaitConfig) (Report, error) {
	w := &waiter{j: j, cfg: cfg, start: time.Now(), leases: map[string]bool{},
		vanished: map[int]protocol.Turn{}, charges: map[int]int{}}
	if w.cfg.Log == nil {
		w.cfg.Log = slog.New(slog.DiscardHandler)
	}
	spec, _, err := j.Spec()
	if err != nil {
		return Report{}, err
	}
	w.spec = spec
	if spec.State != protocol.StateReady {
		return Report{}, fmt.Errorf("master: the job at %s is still %s (its master was interrupted while filling?); remove it with zkdog clear", j.L.Root, spec.State)
	}
	if cfg.Poll <= 0 {
		w.cfg.Poll = min(max(spec.Timer()/10, MinPoll), MaxPoll)
	}
	if spec.Sync {
		if err := w.waitBarrier(ctx); err != nil {
			if errors.Is(err, ErrSyncTimeout) {
				return w.report(ExitSyncTimeout, err.Error(), nil), nil
			}
			return Report{}, err
		}
	}
	return w.follow(ctx)
}

type waiter struct {
	j     *job.Job
	cfg   WaitConfig
	spec  protocol.Job
	start time.Time

	done, failed int
	timers       []string
	leases       map[string]bool
	seenTimer    bool
	retried      int
	// suspects are items the last sweep found unaccounted for, with the
	// attempt they were on.
	suspects map[int]int
	// vanished holds leases seen to disappear, until resolve has checked
	// them for a result.
	vanished map[int]protocol.Turn
	// lastRead is when the timers were last read, graceUntil when they may
	// next be judged; see checkTimers.
	lastRead, graceUntil time.Time
	// charges remembers the retries charged to the items this master
	// handed out again; few items are.
	charges map[int]int
}

func (w *waiter) waitBarrier(ctx context.Context) error {
	var deadline <-chan time.Time
	if w.cfg.SyncTimeout > 0 {
		t := time.NewTimer(w.cfg.SyncTimeout)
		defer t.Stop()
		deadline = t.C
	}
	w.cfg.Log.Info("waiting for the first worker to release the sync barrier", "timeout", w.cfg.SyncTimeout)
	for {
		ok, _, ch, err := w.j.Conn().ExistsW(w.j.L.Sync())
		var retry <-chan time.Time
		if err != nil {
			w.cfg.Log.Warn("reading the sync barrier; will retry", "err", err)
			ch, retry = nil, time.After(retryBackoff)
		}
		if err == nil && !ok {
			w.cfg.Log.Info("sync barrier released")
			return nil
		}
		select {
		case <-ch:
		case <-retry:
		case <-deadline:
			return fmt.Errorf("%w: no worker started within %v", ErrSyncTimeout, w.cfg.SyncTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// watch is one re-armable watch; arm reads the state and sets the watch.
// A watch with every > 0 is re-armed at most that often: the result
// counter and the leases change with every item, and with a thousand
// workers re-reading them on every change would cost the server thousands
// of reads a second. Whatever changed meanwhile is read at the next arm.
type watch struct {
	ch    <-chan zk.Event
	arm   func() (<-chan zk.Event, error)
	every time.Duration
	armed time.Time
}

// rearmEvery bounds how often the result counter and the leases are
// re-read. It adds at most this much to how late the master notices the
// last result; the end of a job is normally noticed through the timers,
// which are re-read at once.
const rearmEvery = 50 * time.Millisecond

func (w *waiter) follow(ctx context.Context) (Report, error) {
	done := &watch{arm: w.armDone, every: rearmEvery}
	watches := []*watch{done, {arm: w.armTimers}, {arm: w.armLeases, every: rearmEvery}}
	poll := time.NewTicker(w.cfg.Poll)
	defer poll.Stop()
	w.lastRead = time.Now()
	var retry, wake <-chan time.Time
	// armAll re-arms the watches that fired, those not rate-limited (or
	// all, with force) at once; it reports false once the job is gone.
	armAll := func(force bool) bool {
		failed := false
		var due time.Time
		for _, wt := range watches {
			if wt.ch != nil {
				continue
			}
			if next := wt.armed.Add(wt.every); !force && time.Now().Before(next) {
				if due.IsZero() || next.Before(due) {
					due = next
				}
				continue
			}
			ch, err := wt.arm()
			if errors.Is(err, zk.ErrNoNode) {
				return false
			}
			if err != nil {
				w.cfg.Log.Warn("reading the job; will retry", "err", err)
				failed = true
				continue
			}
			wt.ch, wt.armed = ch, time.Now()
		}
		if failed {
			retry = time.After(retryBackoff)
		}
		if !due.IsZero() {
			wake = time.After(time.Until(due))
		}
		return true
	}
	for {
		if !armAll(false) {
			return w.report(ExitZooKeeper, "the job was removed while the master waited", nil), fmt.Errorf("%w at %s (it was removed)", job.ErrNoJob, w.j.L.Root)
		}
		// The last worker has gone: make sure the count of results is
		// current rather than wait for its rate limit.
		if len(w.timers) == 0 && done.ch == nil && !armAll(true) {
			return w.report(ExitZooKeeper, "the job was removed while the master waited", nil), fmt.Errorf("%w at %s (it was removed)", job.ErrNoJob, w.j.L.Root)
		}
		if w.cfg.OnStatus != nil {
			w.cfg.OnStatus(w.status())
		}
		if w.finished() {
			return w.final()
		}
		select {
		case <-ctx.Done():
			return w.report(ExitOK, "interrupted", nil), ctx.Err()
		case <-retry:
		case <-wake:
		case <-poll.C:
			r, err := w.checkTimers()
			if err != nil {
				w.cfg.Log.Warn("reading timers; will retry", "err", err)
			}
			if r != nil {
				return *r, nil
			}
			if err := w.refreshLeases(); err != nil {
				w.cfg.Log.Warn("reading the leases; will retry", "err", err)
			}
			if err := w.resolve(); err != nil {
				w.cfg.Log.Warn("checking vanished workers' items; will retry", "err", err)
			}
			if err := w.sweep(); err != nil {
				w.cfg.Log.Warn("looking for unaccounted items; will retry", "err", err)
			}
		case <-watches[0].ch:
			watches[0].ch = nil
		case <-watches[1].ch:
			watches[1].ch = nil
		case <-watches[2].ch:
			watches[2].ch = nil
		}
	}
}

func (w *waiter) finished() bool {
	if len(w.timers) > 0 {
		return false
	}
	if w.spec.Items == 0 {
		// A timer-only job is over once its workers have come and gone.
		return w.seenTimer
	}
	return w.done >= w.spec.Items
}

func (w *waiter) armDone() (<-chan zk.Event, error) {
	var (
		ch     <-chan zk.Event
		done   *zk.Stat
		failed *zk.Stat
		ok     bool
	)
	err := parallelErr(
		func() (err error) { ok, done, ch, err = w.j.Conn().ExistsW(w.j.L.Done()); return },
		func() (err error) { _, failed, err = w.j.Conn().Exists(w.j.L.Failed()); return },
	)
	if err != nil {
		return nil, err
	}
	if !ok || failed == nil {
		return nil, zk.ErrNoNode
	}
	w.done, w.failed = int(done.Version), int(failed.Version)
	return ch, nil
}

func (w *waiter) armTimers() (<-chan zk.Event, error) {
	names, _, ch, err := w.j.Conn().ChildrenW(w.j.L.Timers())
	if err != nil {
		return nil, err
	}
	w.timers = names
	if len(names) > 0 {
		w.seenTimer = true
	}
	return ch, nil
}

// armLeases notices leases that vanish. The result transaction deletes a
// lease and creates the result at once, so a lease gone without a result
// means its worker's session ended mid-item. Checking for the result costs
// a bucket listing, so vanished leases are collected here and checked in
// batches, a listing per bucket, at the next poll (resolve).
func (w *waiter) armLeases() (<-chan zk.Event, error) {
	names, _, ch, err := w.j.Conn().ChildrenW(w.j.L.Leases())
	if err != nil {
		return nil, err
	}
	w.noteLeases(names)
	return ch, nil
}

// refreshLeases re-reads the leases without a watch, so that the poll's
// resolve and sweep see every lease gone by then, whatever the watch's
// rate limit: otherwise the sweep could find a vanished lease's item
// before resolve did, and hand it out free of charge.
func (w *waiter) refreshLeases() error {
	names, _, err := w.j.Conn().Children(w.j.L.Leases())
	if err != nil {
		return err
	}
	w.noteLeases(names)
	return nil
}

// noteLeases compares the leases now with those seen last time; the ones
// gone go to vanished.
func (w *waiter) noteLeases(names []string) {
	now := make(map[string]bool, len(names))
	for _, n := range names {
		now[n] = true
	}
	for n := range w.leases {
		if now[n] {
			continue
		}
		if t, err := protocol.ParseTurn(n); err == nil {
			w.vanished[t.Index] = t
		}
	}
	w.leases = now
}

// resolve checks the vanished leases for results and hands out again the
// items that have none.
func (w *waiter) resolve() error {
	if len(w.vanished) == 0 {
		return nil
	}
	// A worker stopped before it started on an item gives it back as a
	// retry entry of the same turn (job.Release): not a vanished worker.
	back, _, err := w.j.Conn().Children(w.j.L.Retry())
	if err != nil {
		return err
	}
	for _, n := range back {
		if t, err := protocol.ParseTurn(n); err == nil && w.vanished[t.Index] == t {
			delete(w.vanished, t.Index)
		}
	}
	buckets := map[int][]protocol.Turn{}
	for _, t := range w.vanished {
		b := protocol.Bucket(t.Index)
		buckets[b] = append(buckets[b], t)
	}
	for b, turns := range buckets {
		names, _, err := w.j.Conn().Children(w.j.L.ResultBucket(b))
		if err != nil {
			return err
		}
		done := make(map[int]bool, len(names))
		for _, n := range names {
			if i, _, err := protocol.ParseResultName(n); err == nil {
				done[i] = true
			}
		}
		for _, t := range turns {
			if !done[t.Index] {
				if err := w.handOut(t, t.Charged+1, "its worker vanished without a result"); err != nil {
					return err
				}
			}
			delete(w.vanished, t.Index)
		}
	}
	return nil
}

// handOut deals with an item whose turn ended without a result: it is
// handed out again while the charged attempts stay within the job's
// retries, and recorded lost after that.
//
// Callers have found no result for the item. One landing since is refused
// by the item's version: recording a result bumps it, and so does this.
func (w *waiter) handOut(t protocol.Turn, charged int, why string) error {
	var err error
	if charged <= w.spec.Retries {
		err = w.j.Requeue(t, charged)
		if err == nil {
			w.charges[t.Index] = charged
			if charged > t.Charged {
				w.retried++
			}
			w.cfg.Log.Warn(why+"; item handed out again", "item", t.Index, "attempt", t.Attempt+1, "retries_used", charged)
		}
	} else {
		err = w.j.RecordLost(t.Index, t.Attempt, fmt.Sprintf("%s, after %d of %d retries", why, charged-1, w.spec.Retries))
		if err == nil {
			w.cfg.Log.Error(why+"; item lost", "item", t.Index, "attempts", t.Attempt)
		}
	}
	if errors.Is(err, job.ErrStale) {
		return nil // another master (an earlier run of this one) dealt with it
	}
	return err
}

// sweep finds items that were handed out but have neither a lease nor a
// result nor a retry entry. Either a worker's ticket reply was lost (a
// connection dropped mid-request, as in a leader election) and nobody ever
// leased the item, or a lease vanished while no master was watching. An
// item is dealt with only when a second sweep finds it in the same state,
// which leaves a worker whose lease creation is in flight the time to
// finish; if it is slower still, the version check on its lease refuses
// it. An item this master never saw leased in its current turn is handed
// out again without a charge against the retries: as far as anyone can
// tell, it never ran.
func (w *waiter) sweep() error {
	c, err := w.j.Counts(w.spec)
	if err != nil {
		return err
	}
	if c.Issued-c.Done-c.Leased-c.Retry <= 0 {
		w.suspects = nil
		return nil
	}
	outcomes, err := w.j.Outcomes(w.spec)
	if err != nil {
		return err
	}
	accounted := make(map[int]bool, len(outcomes))
	for _, o := range outcomes {
		accounted[o.Index] = true
	}
	for _, dir := range []string{w.j.L.Leases(), w.j.L.Retry()} {
		names, _, err := w.j.Conn().Children(dir)
		if err != nil {
			return err
		}
		for _, n := range names {
			if t, err := protocol.ParseTurn(n); err == nil {
				accounted[t.Index] = true
			}
		}
	}
	next := map[int]int{}
	for i := range c.Issued {
		if accounted[i] {
			continue
		}
		attempt, err := w.j.Attempt(i)
		if err != nil {
			return err
		}
		if w.suspects[i] != attempt {
			next[i] = attempt
			continue
		}
		t := protocol.Turn{Index: i, Attempt: attempt}
		charged := 0
		if attempt > 1 {
			// A later attempt is always leased from a retry entry, so it
			// ran; its charge is known if this master requeued it, and
			// assumed the highest possible otherwise.
			c, ok := w.charges[i]
			if !ok {
				c = attempt - 1
			}
			t.Charged, charged = c, c+1
		}
		why := "its worker vanished while no master watched"
		if charged == t.Charged {
			// On a first attempt the two causes leave the same trace;
			// the benefit of the doubt goes to the item.
			why = "it has neither lease nor result: its ticket's reply was lost, or its worker vanished while no master watched; no retry charged"
		}
		if err := w.handOut(t, charged, why); err != nil {
			return err
		}
	}
	w.suspects = next
	return nil
}

// checkTimers reads the timers' ages against the server clock and, if one
// is over the limit, aborts the job and returns the report.
func (w *waiter) checkTimers() (*Report, error) {
	_, timers, err := w.j.Timers()
	if err != nil {
		return nil, err
	}
	limit := w.spec.Timer()
	// After the master could not read ZooKeeper for a while, the workers
	// probably could not write to it either: their timers are old because
	// of the outage, not because they hung. They get a whole limit to kick
	// again before any of them is judged.
	if blind := time.Since(w.lastRead); blind > 3*w.cfg.Poll {
		w.graceUntil = time.Now().Add(limit)
		w.cfg.Log.Warn("ZooKeeper was out of reach; timers get a whole limit to be kicked again before any is judged", "for", blind.Round(time.Millisecond))
	}
	w.lastRead = time.Now()
	if time.Now().Before(w.graceUntil) {
		return nil, nil
	}
	var expired []job.TimerState
	for _, t := range timers {
		if t.Expired(limit) {
			expired = append(expired, t)
		}
	}
	if len(expired) == 0 {
		return nil, nil
	}
	slices.SortFunc(expired, func(a, b job.TimerState) int { return int(b.Age - a.Age) })
	if err := w.j.AttachWork(expired); err != nil {
		w.cfg.Log.Warn("could not read what the hung workers were doing", "err", err)
	}
	t := expired[0]
	reason := fmt.Sprintf("timer %s (%s) un-kicked for %v, over the %v limit", t.Name, describe(t), t.Age.Round(time.Millisecond), limit)
	w.cfg.Log.Error("hung worker: aborting the job", "timer", t.Name, "id", t.ID, "host", t.Host, "pid", t.Pid, "item", t.Item, "age", t.Age)
	if err := w.j.Abort(reason); err != nil {
		w.cfg.Log.Warn("could not mark the job aborted", "err", err)
	}
	r := w.report(ExitExpired, reason, expired)
	return &r, nil
}

func describe(t job.TimerState) string {
	s := fmt.Sprintf("id %s, host %s, pid %d", t.ID, t.Host, t.Pid)
	if t.Item >= 0 {
		s += fmt.Sprintf(", item %d %q", t.Item, t.Label)
	}
	return s
}

func (w *waiter) status() Status {
	return Status{
		Items: w.spec.Items, Done: w.done, Failed: w.failed, Running: len(w.leases),
		Timers: len(w.timers), Retried: w.retried, Elapsed: time.Since(w.start),
	}
}

func parallelErr(fns ...func() error) error {
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		go func() { errs <- fn() }()
	}
	var first error
	for range fns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
