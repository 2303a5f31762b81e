package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/zkdog/zkdog/internal/duration"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// Sentinel errors.
var (
	// ErrNotReady: the job is still being filled, or was left so.
	ErrNotReady = errors.New("the job is not ready")
	// ErrRemoved: the job was removed, wholly or in part, while the
	// master waited.
	ErrRemoved = errors.New("the job was removed while the master waited")
	// ErrUnreachable: ZooKeeper could not be read for longer than the
	// outage limit.
	ErrUnreachable = errors.New("ZooKeeper out of reach")
)

// OutageLimit is how long the master goes on without a single answer from
// ZooKeeper before it gives up (exit 6). A leader election takes seconds,
// and is ridden out; an outage longer than this is a broken ensemble.
// Longer would keep a master waiting on nothing; shorter would give up on
// a slow election. Giving up leaves the job and its workers running (they
// ride out the outage on their own sessions); zkdog wait takes over once
// ZooKeeper is back. OutageLimitEnv overrides it, for tests and for sites
// whose ensemble is known to take longer.
const (
	OutageLimit    = 2 * time.Minute
	OutageLimitEnv = "ZKDOG_OUTAGE_LIMIT"
)

// outageLimit is OutageLimit, or what OutageLimitEnv says.
func outageLimit(log *slog.Logger) time.Duration {
	v := os.Getenv(OutageLimitEnv)
	if v == "" {
		return OutageLimit
	}
	d, err := duration.Parse(v)
	if err != nil || d <= 0 {
		log.Warn("ignoring "+OutageLimitEnv+": not a duration", "value", v, "using", OutageLimit)
		return OutageLimit
	}
	return d
}

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
	// OutageLimit bounds how long ZooKeeper may be out of reach; zero
	// takes OutageLimit (or OutageLimitEnv).
	OutageLimit time.Duration
	// StatsEvery bounds how often the median duration of the ok items is
	// published for the workers; zero takes StatsEvery.
	StatsEvery time.Duration
}

// Expiry is read by polling, since an absence of kicks fires no watch. A
// tenth of the limit bounds the lateness of a verdict to 10% of it;
// MinPoll bounds the reads a tiny test timer causes, MaxPoll the lateness
// of a long one.
const (
	MinPoll = 50 * time.Millisecond
	MaxPoll = 5 * time.Second
)

// rearmEvery bounds how often the result counter and the leases are
// re-read. It adds at most this much to how late the master notices the
// last result; the end of a job is normally noticed through the timers,
// which are re-read at once.
const rearmEvery = 50 * time.Millisecond

// Status is the job as the master last saw it.
type Status struct {
	Items   int
	Done    int
	Failed  int
	Running int // items leased
	// Working is how many items are being worked on as a user counts
	// them: workers present, at most the items without a result. Unlike
	// the leases it does not dip while a worker moves to its next item.
	Working int
	Timers  int
	Retried int
	Elapsed time.Duration
}

// Wait blocks until the job ends and says how. It is driven by watches on
// the result counter, the timers, the leases and the abort node, and reads
// the timers every poll interval for expiry. The error is non-nil only
// when the master could not follow the job (ZooKeeper, the job removed,
// or ctx cancelled). When the job was removed (ErrRemoved) or ZooKeeper
// stayed out of reach too long (ErrUnreachable), the report says so too.
func Wait(ctx context.Context, j *job.Job, cfg WaitConfig) (Report, error) {
	w := &waiter{j: j, cfg: cfg, start: time.Now(), leases: map[protocol.Turn]bool{},
		vanished: map[int]protocol.Turn{}, charges: map[int]int{}}
	if w.cfg.Log == nil {
		w.cfg.Log = slog.New(slog.DiscardHandler)
	}
	if w.cfg.OutageLimit <= 0 {
		w.cfg.OutageLimit = outageLimit(w.cfg.Log)
	}
	w.heard = time.Now()
	var spec protocol.Job
	if err := w.reach(ctx, func() (err error) { spec, err = j.Spec(); return }); err != nil {
		return w.failedStart(err)
	}
	w.spec = spec
	if spec.State != protocol.StateReady {
		return Report{}, fmt.Errorf("%w: the job at %s is still %s (its master was interrupted while filling?); remove it with zkdog clear", ErrNotReady, j.L.Root, spec.State)
	}
	if cfg.Poll <= 0 {
		w.cfg.Poll = min(max(spec.Timer()/10, MinPoll), MaxPoll)
	}
	var (
		r       Report
		aborted bool
	)
	if err := w.reach(ctx, func() (err error) { r, aborted, err = w.checkAborted(); return }); err != nil {
		return w.failedStart(err)
	}
	if aborted {
		return r, nil
	}
	if spec.Sync {
		if err := w.waitBarrier(ctx); err != nil {
			if errors.Is(err, ErrSyncTimeout) {
				return w.report(EndSyncTimeout, err.Error(), nil), nil
			}
			if errors.Is(err, ErrUnreachable) {
				return w.unreachable(), err
			}
			return Report{}, err
		}
	}
	if spec.Items > 0 {
		defer w.publishStats(ctx)()
	}
	return w.follow(ctx)
}

// reach runs read until it succeeds or fails for good: errors of a
// dropped connection are retried until ZooKeeper has been silent for the
// outage limit.
func (w *waiter) reach(ctx context.Context, read func() error) error {
	for {
		err := read()
		if err == nil {
			w.heard = time.Now()
			return nil
		}
		if !job.Transient(err) {
			return err
		}
		if w.outage() {
			return fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(job.RetryPause):
		}
	}
}

// failedStart is what Wait returns when it could not begin to follow.
func (w *waiter) failedStart(err error) (Report, error) {
	if errors.Is(err, ErrUnreachable) {
		return w.unreachable(), err
	}
	return Report{}, err
}

// ErrSyncTimeout: no worker released the start barrier in time.
var ErrSyncTimeout = errors.New("sync timeout")

type waiter struct {
	j     *job.Job
	cfg   WaitConfig
	spec  protocol.Job
	start time.Time

	tally    job.Tally
	presence job.Presence
	leases   map[protocol.Turn]bool
	retried  int
	// suspects are items the last sweep found unaccounted for, with the
	// state (protocol.TurnOf) they were in.
	suspects map[int]itemState
	// vanished holds leases seen to disappear, until resolve has looked
	// at their items.
	vanished map[int]protocol.Turn
	// lastRead is when the timers were last read, graceUntil when they may
	// next be judged; see checkTimers.
	lastRead, graceUntil time.Time
	// charges remembers the retries charged to the items this master
	// handed out again; few items are.
	charges map[int]int
	// abortedBy is the reason of an abort seen by the abort watch.
	abortedBy string
	// heard is when ZooKeeper last answered a read.
	heard time.Time
}

type itemState struct {
	attempt int
	leased  bool
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
		released, changed, err := w.j.WatchBarrier()
		var retry <-chan time.Time
		if err != nil {
			if w.outage() {
				return ErrUnreachable
			}
			w.cfg.Log.Warn("reading the sync barrier; will retry", "err", err)
			retry = time.After(job.RetryPause)
		} else {
			w.heard = time.Now()
		}
		if err == nil && released {
			w.cfg.Log.Info("sync barrier released")
			return nil
		}
		select {
		case <-changed:
		case <-retry:
		case <-deadline:
			return fmt.Errorf("%w: no worker started within %v", ErrSyncTimeout, w.cfg.SyncTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// checkAborted reports an aborted job as ended: its workers stop, so
// waiting for them would wait for ever.
func (w *waiter) checkAborted() (Report, bool, error) {
	reason, aborted, err := w.j.AbortReason()
	if err != nil || !aborted {
		return Report{}, false, err
	}
	if _, err := w.armTally(); err != nil {
		return Report{}, false, err
	}
	return w.report(w.abortEnd(), "the job was aborted: "+reason, nil), true, nil
}

// abortEnd is how an aborted job ended: its failure budget was spent (a
// master taking over from the one that aborted it says so too), or
// someone gave up on it.
func (w *waiter) abortEnd() End {
	if w.spec.MaxFailures > 0 && w.tally.Failed >= w.spec.MaxFailures {
		return EndBudget
	}
	return EndHung
}

// follow is the master's loop: re-read what changed, decide, wait for the
// next change or poll.
func (w *waiter) follow(ctx context.Context) (Report, error) {
	f := &follower{
		tally:  &rearm{arm: w.armTally, every: rearmEvery},
		timers: &rearm{arm: w.armTimers},
		leases: &rearm{arm: w.armLeases, every: rearmEvery},
		abort:  &rearm{arm: w.armAbort},
		log:    w.cfg.Log,
	}
	poll := time.NewTicker(w.cfg.Poll)
	defer poll.Stop()
	w.lastRead = time.Now()
	for {
		if err := f.armAll(w.noWorkers()); err != nil {
			return w.removed(), fmt.Errorf("%w: %w", ErrRemoved, err)
		}
		if f.answered {
			w.heard = time.Now()
		}
		if w.outage() {
			return w.unreachable(), ErrUnreachable
		}
		if w.cfg.OnStatus != nil {
			w.cfg.OnStatus(w.status())
		}
		if w.abortedBy != "" {
			return w.report(w.abortEnd(), "the job was aborted: "+w.abortedBy, nil), nil
		}
		if w.finished() {
			return w.final(), nil
		}
		if w.budgetSpent() {
			return w.spendBudget(ctx)
		}
		select {
		case <-ctx.Done():
			return Report{}, ctx.Err()
		case <-f.retry:
		case <-f.wake:
		case <-poll.C:
			if r := w.onPoll(); r != nil {
				return *r, nil
			}
		case <-f.tally.w:
			f.tally.fired()
		case <-f.timers.w:
			f.timers.fired()
		case <-f.leases.w:
			f.leases.fired()
		case <-f.abort.w:
			f.abort.fired()
		}
	}
}

// noWorkers: the last worker has gone, so the count of results must be
// current rather than wait for its rate limit.
func (w *waiter) noWorkers() bool { return len(w.presence.Timers) == 0 }

// onPoll does what no watch can tell: expired timers, vanished workers'
// items, items nobody accounts for.
func (w *waiter) onPoll() *Report {
	r, err := w.checkTimers()
	if err != nil {
		w.cfg.Log.Warn("checking the timers; will retry", "err", err)
	} else {
		w.heard = time.Now()
	}
	if r != nil {
		return r
	}
	// Listed once without a watch, so that resolve and the sweep never
	// run on an older view of the leases than each other.
	if err := w.refreshLeases(); err != nil {
		w.cfg.Log.Warn("reading the leases; will retry", "err", err)
	}
	if err := w.resolve(); err != nil {
		w.cfg.Log.Warn("checking vanished workers' items; will retry", "err", err)
	}
	if err := w.sweep(); err != nil {
		w.cfg.Log.Warn("looking for unaccounted items; will retry", "err", err)
	}
	return nil
}

func (w *waiter) finished() bool {
	if len(w.presence.Timers) > 0 {
		return false
	}
	if w.spec.Items == 0 {
		// A job without items is over once its workers have come and gone.
		return w.presence.Came >= max(w.spec.ExpectWorkers, 1)
	}
	return w.tally.Done >= w.spec.Items
}

func (w *waiter) armTally() (job.Watch, error) {
	t, changed, err := w.j.WatchTally()
	if err == nil {
		w.tally = t
	}
	return changed, err
}

func (w *waiter) armTimers() (job.Watch, error) {
	p, changed, err := w.j.WatchTimers()
	if err == nil {
		w.presence = p
	}
	return changed, err
}

func (w *waiter) armAbort() (job.Watch, error) {
	reason, aborted, changed, err := w.j.WatchAbort()
	if aborted {
		w.abortedBy = reason
	}
	return changed, err
}

// armLeases notices leases that vanish. The result transaction deletes a
// lease and moves its item on at once, so a lease gone with its item
// still on the leased turn means its worker's session ended mid-item.
func (w *waiter) armLeases() (job.Watch, error) {
	turns, changed, err := w.j.WatchLeases()
	if err == nil {
		w.noteLeases(turns)
	}
	return changed, err
}

func (w *waiter) refreshLeases() error {
	turns, err := w.j.Leases()
	if err == nil {
		w.noteLeases(turns)
	}
	return err
}

// noteLeases compares the leases now with those seen last time; the ones
// gone go to vanished. A lease name is used once only (leasing moves the
// item's version), so a name seen again is the same lease.
func (w *waiter) noteLeases(turns []protocol.Turn) {
	now := make(map[protocol.Turn]bool, len(turns))
	for _, t := range turns {
		now[t] = true
	}
	for t := range w.leases {
		if !now[t] {
			w.vanished[t.Index] = t
		}
	}
	w.leases = now
}

// resolve looks at the items of vanished leases: one still on the leased
// turn ended without a result or a give-back, and is handed out again or
// recorded lost.
func (w *waiter) resolve() error {
	for i, t := range w.vanished {
		attempt, leased, err := w.j.ItemTurn(i)
		if err != nil {
			return err
		}
		if attempt == t.Attempt && leased {
			if err := w.charge(t, "its worker vanished without a result"); err != nil {
				return err
			}
		}
		delete(w.vanished, i)
	}
	return nil
}

// charge deals with a leased turn whose worker vanished without a result.
func (w *waiter) charge(t protocol.Turn, why string) error {
	return w.endAttempt(t, protocol.Result{Outcome: protocol.Vanished, Exit: -1, Reason: why})
}

// endAttempt ends leased turn t, which the master found over (its worker
// vanished, or hung under --on-hang stall), as r: the item is handed out
// again while --retry-on names how it ended and the charged attempts stay
// within the job's retries, and gets its final result after that (lost
// for a vanished worker). The version checks of RequeueAttempt and
// RecordFor refuse it if a result landed meanwhile.
func (w *waiter) endAttempt(t protocol.Turn, r protocol.Result) error {
	charged := t.Charged + 1
	retryable := w.retryable(r)
	var err error
	if retryable && charged <= w.spec.Retries {
		err = w.j.RequeueAttempt(t, charged, r)
		if err == nil {
			w.charges[t.Index] = charged
			w.retried++
			w.cfg.Log.Warn(r.Reason+"; item handed out again", "item", Number(t.Index), "attempt", t.Attempt+1, "retries_used", charged)
		}
	} else {
		final := r
		if final.Outcome == protocol.Vanished {
			final.Outcome = protocol.Lost
		}
		if retryable {
			final.Reason = fmt.Sprintf("%s, after %d of %d retries", r.Reason, charged-1, w.spec.Retries)
		} else {
			final.Reason = fmt.Sprintf("%s; not retried: --retry-on does not name %s", r.Reason, r.Outcome)
		}
		err = w.j.RecordFor(t, true, final)
		if err == nil {
			w.cfg.Log.Error(r.Reason+"; item "+string(final.Outcome), "item", Number(t.Index), "attempts", t.Attempt)
		}
	}
	if errors.Is(err, job.ErrStale) {
		return nil // a result landed, or another master dealt with it
	}
	return err
}

// retryable reports whether --retry-on names how attempt r ended; a
// vanished worker is its own class, which Policy.Retryable leaves out.
func (w *waiter) retryable(r protocol.Result) bool {
	if r.Outcome == protocol.Vanished {
		return w.spec.RetriesVanished()
	}
	return w.spec.Retryable(r)
}

// sweep finds items that were handed out but have neither a lease nor a
// result nor a retry entry. Either a worker's ticket reply was lost (a
// connection dropped mid-request, as in a leader election) and nobody ever
// leased the item, or a lease vanished while no master was watching; the
// item's version tells which. An item is dealt with only when a second
// sweep finds it in the same state, which leaves a worker whose lease
// creation is in flight the time to finish; if it is slower still, the
// version check on its lease refuses it.
func (w *waiter) sweep() error {
	c, err := w.j.Counts(w.spec)
	if err != nil {
		return err
	}
	if c.Issued-c.Done-c.Leased-c.Retry <= 0 {
		w.suspects = nil
		return nil
	}
	// What is decided below must not rest on a lagging server's view.
	if err := w.j.Sync(); err != nil {
		return err
	}
	accounted, err := w.accounted()
	if err != nil {
		return err
	}
	next := map[int]itemState{}
	for i := range c.Issued {
		if accounted[i] {
			continue
		}
		attempt, leased, err := w.j.ItemTurn(i)
		if err != nil {
			return err
		}
		s := itemState{attempt, leased}
		if w.suspects[i] != s {
			next[i] = s
			continue
		}
		if err := w.handOutUnaccounted(i, s); err != nil {
			return err
		}
	}
	w.suspects = next
	return nil
}

// accounted is every item that has a result, a lease or a retry entry.
func (w *waiter) accounted() (map[int]bool, error) {
	outcomes, err := w.j.Outcomes(w.spec)
	if err != nil {
		return nil, err
	}
	leases, err := w.j.Leases()
	if err != nil {
		return nil, err
	}
	retries, err := w.j.Retries()
	if err != nil {
		return nil, err
	}
	accounted := make(map[int]bool, len(outcomes)+len(leases)+len(retries))
	for _, o := range outcomes {
		accounted[o.Index] = true
	}
	for _, t := range slices.Concat(leases, retries) {
		accounted[t.Index] = true
	}
	return accounted, nil
}

// handOutUnaccounted deals with an item the sweep found twice in state s.
// A turn that was leased ran, and is charged; its charge so far is known if
// this master handed it out, and assumed the highest possible otherwise.
// A turn never leased did not run, and is offered again free.
func (w *waiter) handOutUnaccounted(i int, s itemState) error {
	t := protocol.Turn{Index: i, Attempt: s.attempt}
	if c, ok := w.charges[i]; ok {
		t.Charged = c
	} else {
		t.Charged = s.attempt - 1
	}
	if s.leased {
		return w.charge(t, "its worker vanished while no master watched")
	}
	err := w.j.Reoffer(t)
	if err == nil {
		w.cfg.Log.Warn("an item was handed out but never leased (its ticket's reply was lost); offered again, no retry charged", "item", Number(i))
	}
	if errors.Is(err, job.ErrStale) {
		return nil
	}
	return err
}

// checkTimers reads the timers' ages against the server clock and, if one
// is over its limit, aborts the job and returns the report; under
// --on-hang stall it stops only the hung workers (stall) and the job goes
// on.
func (w *waiter) checkTimers() (*Report, error) {
	_, timers, err := w.j.Timers()
	if err != nil {
		return nil, err
	}
	if w.inGrace() {
		return nil, nil
	}
	limit := w.spec.Timer()
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
	attachErr := w.j.AttachWork(expired)
	if w.spec.Stalls() {
		if attachErr != nil {
			// Stopping a worker without knowing its item would leave the
			// item to its lease; the timers are judged again next poll.
			return nil, fmt.Errorf("reading what the hung workers hold: %w", attachErr)
		}
		return nil, w.stall(expired, limit)
	}
	if attachErr != nil {
		w.cfg.Log.Warn("could not read what the hung workers were doing", "err", attachErr)
	}
	t := expired[0]
	reason := hungReason(t, limit)
	w.cfg.Log.Error("hung worker: aborting the job", "timer", t.Name, "id", t.ID, "host", t.Host, "pid", t.Pid, "item", Number(t.Item), "age", t.Age)
	if err := w.j.Abort(reason); err != nil {
		w.cfg.Log.Warn("could not mark the job aborted", "err", err)
	}
	r := w.report(EndHung, reason, expired)
	return &r, nil
}

// hungReason says which timer went un-kicked, whose it is and for how long.
func hungReason(t job.TimerState, limit time.Duration) string {
	return fmt.Sprintf("timer %s (%s) un-kicked for %v, over the %v limit", t.Name, describe(t), t.Age.Round(time.Millisecond), t.Limit(limit))
}

// inGrace: after the master could not read ZooKeeper for a while, the
// workers probably could not write to it either: their timers are old
// because of the outage, not because they hung. They get a whole limit to
// kick again before any of them is judged.
func (w *waiter) inGrace() bool {
	if blind := time.Since(w.lastRead); blind > 3*w.cfg.Poll {
		w.graceUntil = time.Now().Add(w.spec.Timer())
		w.cfg.Log.Warn("ZooKeeper was out of reach; timers get a whole limit to be kicked again before any is judged", "for", blind.Round(time.Millisecond))
	}
	w.lastRead = time.Now()
	return time.Now().Before(w.graceUntil)
}

func describe(t job.TimerState) string {
	s := fmt.Sprintf("id %s, host %s, pid %d", t.ID, t.Host, t.Pid)
	if t.Item >= 0 {
		s += fmt.Sprintf(", item %d %q", Number(t.Item), t.Label)
	}
	return s
}

// Number is the number people know item index by: its line among the
// items, counted from 1. Znode names and ZKDOG_ITEM_INDEX count from 0.
func Number(index int) int { return index + 1 }

// outage reports whether ZooKeeper has not answered for longer than the
// outage limit.
func (w *waiter) outage() bool { return time.Since(w.heard) > w.cfg.OutageLimit }

func (w *waiter) status() Status {
	timers := len(w.presence.Timers)
	return Status{
		Items: w.spec.Items, Done: w.tally.Done, Failed: w.tally.Failed, Running: len(w.leases),
		Working: min(timers, max(w.spec.Items-w.tally.Done, 0)),
		Timers:  timers, Retried: w.retried, Elapsed: time.Since(w.start),
	}
}
