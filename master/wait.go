package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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

// rearmEvery bounds how often the result counters are re-read, and, once
// every item has a result, how often the live timers are counted. It adds
// at most this much to how late the master notices the last result or the
// last worker leaving; shorter would cost the server more small reads a
// second, whatever the number of workers.
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
// the result counter and the abort node, and by polls that read the
// counters, the leases and the timers that could have expired; none of
// its reads is made once per result or once per worker per change. The error is non-nil only
// when the master could not follow the job (ZooKeeper, the job removed,
// or ctx cancelled). When the job was removed (ErrRemoved) or ZooKeeper
// stayed out of reach too long (ErrUnreachable), the report says so too.
func Wait(ctx context.Context, j *job.Job, cfg WaitConfig) (Report, error) {
	w := &waiter{j: j, cfg: cfg, start: time.Now(), leases: map[protocol.Turn]time.Time{},
		vanished: map[int]protocol.Turn{}, charges: map[int]int{}, timers: map[string]*tracked{}}
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

	tally job.Tally
	// presence is the timers as listed by drain, after an abort only.
	presence job.Presence
	// came and live are the timers ever created and alive, as last read.
	came, live int
	// gauge is the job's accounting as read at the last poll.
	gauge job.Gauge
	// departed is the most timers seen gone, departedAt when it last grew.
	departed   int
	departedAt time.Time
	// leases are the leases listed at the last poll, with when each was
	// first listed; gone those that were in the listing before and not in
	// it; fresh whether the last poll's listing succeeded.
	leases map[protocol.Turn]time.Time
	gone   []protocol.Turn
	fresh  bool
	// timers are the timers this master follows for expiry, listedCame
	// what the workers counter said when they were last listed; see
	// checkTimers.
	timers     map[string]*tracked
	listedCame int
	listed     bool
	// lastSweep is when the sweep last listed the job; see sweep.
	lastSweep time.Time
	retried   int
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
		tally:    &rearm{arm: w.armTally, every: rearmEvery},
		presence: &rearm{arm: w.armPresence},
		abort:    &rearm{arm: w.armAbort},
		log:      w.cfg.Log,
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
			if w.lastLap() {
				// The last results are in: count the workers leaving.
				f.presence.fired()
			}
		case <-f.presence.w:
			f.presence.fired()
		case <-f.abort.w:
			f.abort.fired()
		}
	}
}

// noWorkers: the last worker has gone, so the count of results must be
// current rather than wait for its rate limit.
func (w *waiter) noWorkers() bool { return w.live == 0 }

// lastLap: every item has a result; the job ends once the workers leave.
func (w *waiter) lastLap() bool { return w.tally.Done >= w.spec.Items }

// onPoll does what no watch can tell: expired timers, vanished workers'
// items, items nobody accounts for. Its reads are a fixed few, a listing
// of the leases (one request), the timers that could have expired (about
// one read per timer per limit) and a listing of the timers only when
// workers joined; nothing here is read once per result or per worker.
func (w *waiter) onPoll() *Report {
	now, err := w.j.Clock()
	if err != nil {
		w.cfg.Log.Warn("reading the server clock; will retry", "err", err)
		return nil
	}
	// The leases before the gauge: a lease that vanished without a result
	// took its worker's timer with it, or went after it, so a lease found
	// gone here comes with a departure the gauge read next counts.
	if err := w.refreshLeases(); err != nil {
		w.cfg.Log.Warn("reading the leases; will retry", "err", err)
	}
	if err := w.readGauge(); err != nil {
		w.cfg.Log.Warn("reading the counters; will retry", "err", err)
	} else {
		w.judgeGone()
	}
	r, err := w.checkTimers(now)
	if err != nil {
		w.cfg.Log.Warn("checking the timers; will retry", "err", err)
	} else {
		w.heard = time.Now()
	}
	if r != nil {
		return r
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
	if w.live > 0 {
		return false
	}
	if w.spec.Items == 0 {
		// A job without items is over once its workers have come and gone.
		return w.came >= max(w.spec.ExpectWorkers, 1)
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

// armPresence counts the timers, created and alive: two small reads, where
// a watch on the timers' list would cost a listing of every worker at each
// join and leave. Until the last result is in, the count is read again at
// each poll; after it, every rearmEvery, to end soon after the last
// worker leaves.
func (w *waiter) armPresence() (job.Watch, error) {
	came, live, err := w.j.ReadPresence()
	if err != nil {
		return nil, err
	}
	w.notePresence(came, live)
	if w.lastLap() {
		return after(rearmEvery), nil
	}
	return after(w.cfg.Poll), nil
}

// after is a Watch that fires once d has passed.
func after(d time.Duration) job.Watch {
	ch := make(chan struct{})
	time.AfterFunc(d, func() { close(ch) })
	return ch
}

// notePresence keeps the counts and notes when more timers have gone than
// ever before: a worker left, or lost its timer.
func (w *waiter) notePresence(came, live int) {
	w.came, w.live = came, live
	if d := came - live; d > w.departed {
		w.departed, w.departedAt = d, time.Now()
	}
}

// readGauge reads the job's accounting, which sweep and status use.
func (w *waiter) readGauge() error {
	g, err := w.j.ReadGauge(w.spec)
	if err != nil {
		return err
	}
	w.gauge = g
	w.notePresence(g.Came, g.Live)
	return nil
}

// refreshLeases lists the leases, once a poll.
func (w *waiter) refreshLeases() error {
	turns, err := w.j.Leases()
	if err == nil {
		w.noteLeases(turns)
	}
	w.fresh = err == nil
	return err
}

// oldestLeases are the leases of the last listing, those listed first
// first.
func (w *waiter) oldestLeases() []protocol.Turn {
	out := slices.Collect(maps.Keys(w.leases))
	slices.SortFunc(out, func(a, b protocol.Turn) int { return w.leases[a].Compare(w.leases[b]) })
	return out
}

// attachWork finds what the expired timers' workers hold: among this
// poll's leases, oldest first, when they were listed; else by listing
// them all.
func (w *waiter) attachWork(expired []job.TimerState) error {
	if w.fresh {
		return w.j.AttachWorkOf(expired, w.oldestLeases())
	}
	return w.j.AttachWork(expired)
}

// noteLeases compares the leases now with those seen last time. A lease
// gone ended with a result, a give-back, or without either because its
// worker's session ended or it lost its timer: the last two only with or
// after the disappearance of that worker's timer. So the leases gone are
// looked at (resolve, a read each) only while a departure is recent;
// otherwise they all ended properly, and looking would cost a read per
// result. A lease that vanished unseen (created and gone between two
// polls, or while no departure was counted) is left to the sweep. A
// lease name is used once only (leasing moves the item's version), so a
// name seen again is the same lease.
func (w *waiter) noteLeases(turns []protocol.Turn) {
	now := make(map[protocol.Turn]time.Time, len(turns))
	at := time.Now()
	for _, t := range turns {
		now[t] = at
		if first, ok := w.leases[t]; ok {
			now[t] = first
		}
	}
	w.gone = w.gone[:0]
	for t := range w.leases {
		if _, ok := now[t]; !ok {
			w.gone = append(w.gone, t)
		}
	}
	w.leases = now
}

// judgeGone hands the leases gone at the last listing to resolve if a
// departure is recent, by a count read after that listing.
func (w *waiter) judgeGone() {
	if w.departedRecently() {
		for _, t := range w.gone {
			w.vanished[t.Index] = t
		}
	}
	w.gone = w.gone[:0]
}

// departedRecently: a timer went within the last timer limit (at least two
// polls), the time a worker that lost its timer takes to stop its command
// and drop its lease. A later drop is found by the sweep. The departure is
// counted after the leases are listed (onPoll), so a lease gone in this
// listing is judged by a count that includes its worker.
func (w *waiter) departedRecently() bool {
	window := max(w.spec.Timer(), 2*w.cfg.Poll)
	return !w.departedAt.IsZero() && time.Since(w.departedAt) <= window
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
//
// The counters come from the gauge, which lists nothing. With many
// workers they rarely add up (a take is always between its ticket and its
// lease somewhere), so the sweep's listings, which grow with the items
// and the workers, run at most every sweepEvery, unless a worker left
// recently or none is left: the items of vanished workers are then dealt
// with within two polls, and a lost ticket's item within two sweepEvery.
func (w *waiter) sweep() error {
	c := w.gauge
	if c.Unaccounted() <= 0 {
		w.suspects = nil
		return nil
	}
	if !w.sweepDue() {
		return nil
	}
	w.lastSweep = time.Now()
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

// sweepEvery is how many polls may pass between two sweeps while workers
// are busy and none left: ten polls are the job's timer by default. A
// sweep lists every result, lease and retry entry; the cases it alone
// finds (a ticket's lost reply, a lease that vanished while no departure
// was seen) are rare, and wait this much longer to be dealt with.
const sweepEvery = 10

func (w *waiter) sweepDue() bool {
	return w.live == 0 || w.departedRecently() || time.Since(w.lastSweep) >= sweepEvery*w.cfg.Poll
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

// checkTimers reads the ages of the timers that could be over their limit
// against the server clock's now, written before (see job.Timers: the
// reads see every kick that landed before it), and, if one is over its
// limit, aborts the job and returns the report; under --on-hang stall it
// stops only the hung workers (stall) and the job goes on.
func (w *waiter) checkTimers(now time.Time) (*Report, error) {
	if err := w.learnTimers(); err != nil {
		return nil, err
	}
	timers, err := w.readDue(now)
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
	attachErr := w.attachWork(expired)
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

// tracked is a timer the master follows, as last read. due is the server
// time at which it could first be over its limit: its last kick known
// plus its limit. Kicks only move the mtime on, so a timer whose due is
// after now cannot be expired now, and is not read: each timer costs about
// a read per limit, not one per poll.
type tracked struct {
	state job.TimerState
	due   time.Time
}

// learnTimers lists the timers when workers came since they were last
// listed: a newcomer is read at once. Timers that went are dropped when
// their read finds them gone. Leaves alone never cost a listing.
func (w *waiter) learnTimers() error {
	if w.listed && w.came <= w.listedCame {
		return nil
	}
	names, came, err := w.j.TimerNames()
	if err != nil {
		return err
	}
	now := make(map[string]bool, len(names))
	for _, n := range names {
		now[n] = true
		if w.timers[n] == nil {
			w.timers[n] = &tracked{}
		}
	}
	for n := range w.timers {
		if !now[n] {
			delete(w.timers, n)
		}
	}
	w.listed, w.listedCame = true, came
	return nil
}

// readDue reads the timers due by now and returns them; a timer gone is
// forgotten.
func (w *waiter) readDue(now time.Time) ([]job.TimerState, error) {
	var names []string
	for n, t := range w.timers {
		if !t.due.After(now) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	states, err := w.j.ReadTimers(now, names)
	if err != nil {
		return nil, err
	}
	limit := w.spec.Timer()
	out := make([]job.TimerState, 0, len(states))
	for i, s := range states {
		if s == nil {
			delete(w.timers, names[i])
			continue
		}
		w.timers[names[i]] = &tracked{state: *s, due: s.Kicked.Add(s.Limit(limit))}
		out = append(out, *s)
	}
	return out, nil
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
	timers := w.live
	return Status{
		Items: w.spec.Items, Done: w.tally.Done, Failed: w.tally.Failed, Running: len(w.leases),
		Working: min(timers, max(w.spec.Items-w.tally.Done, 0)),
		Timers:  timers, Retried: w.retried, Elapsed: time.Since(w.start),
	}
}
