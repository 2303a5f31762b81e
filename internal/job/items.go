package job

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// Claim is an item a worker holds a lease on.
type Claim struct {
	protocol.Turn
	// Origin is the item's index in the job it first came from (zkdog
	// init --from); its own index otherwise.
	Origin int
	Data   []byte
	// Timer is the child name of the timer of the worker holding it.
	Timer string
}

// Take leases the next item for the worker described by lease, whose
// Timer names the worker's live timer. A ticket from the cursor (a write
// whose new version is the ticket, so concurrent workers never collide)
// picks a fresh item; once the cursor has run past the end, items handed
// out again are taken from the retry list. ErrEmpty when nothing is left.
//
// Every lease is created in a transaction that checks the worker's timer:
// after a session expiry the client opens a new session and sends the
// requests it had queued on it, and a lease made there would belong to a
// session the worker does not know. The timer, ephemeral to the session
// the worker started with, is gone by then, so the lease is refused
// (ErrTimerLost). The transaction also moves the item's version from
// "open" to "leased" (protocol.TurnOf), so a turn is leased at most once
// and a vanished worker is always charged. A fresh item's first lease
// creates its turn node: a queued item has no znode of its own.
func (j *Job) Take(ctx context.Context, spec protocol.Job, lease protocol.Lease) (Claim, error) {
	lease.V = protocol.Version
	if err := j.withinBudget(spec); err != nil {
		return Claim{}, err
	}
	for spec.Items > 0 {
		st, err := j.conn.Set(j.L.Cursor(), nil, -1)
		if errors.Is(err, zk.ErrNoNode) {
			return Claim{}, j.gone(err)
		}
		if err != nil {
			// A lost reply leaves a ticket nobody leases; the master's
			// sweep finds its item.
			return Claim{}, fmt.Errorf("taking a ticket: %w", err)
		}
		ticket := int(st.Version) - 1
		if ticket >= spec.Items {
			break
		}
		c, err := j.claim(ctx, protocol.Turn{Index: ticket, Attempt: 1}, lease, false)
		if errors.Is(err, errTaken) {
			continue // handed out again before this ticket's lease
		}
		return j.withOrigin(spec, c, err)
	}
	c, err := j.takeRetry(ctx, spec, lease)
	return j.withOrigin(spec, c, err)
}

// withOrigin fills in the claim's origin: a bucket's data, read once per
// bucket, and only for a job that re-runs another's items.
func (j *Job) withOrigin(spec protocol.Job, c Claim, err error) (Claim, error) {
	c.Origin = c.Index
	if err != nil || spec.From == "" {
		return c, err
	}
	c.Origin, err = j.originOf(c.Index, j.L.ItemBucket(protocol.Bucket(c.Index)))
	return c, err
}

// withinBudget refuses to hand out an item once the job's failure budget
// is spent: the master aborts the job then, but a worker that took items
// until it saw the abort would run more than the budget allows. One read
// per take, only for a job with a budget.
func (j *Job) withinBudget(spec protocol.Job) error {
	if spec.MaxFailures <= 0 {
		return nil
	}
	st, err := j.stat(j.L.Failed())
	if err != nil {
		return fmt.Errorf("reading %s: %w", j.L.Failed(), err)
	}
	if st == nil {
		return j.gone(zk.ErrNoNode)
	}
	if int(st.Version) >= spec.MaxFailures {
		return fmt.Errorf("%w: %d items ended other than ok, --max-failures allows %d", ErrBudgetSpent, st.Version, spec.MaxFailures)
	}
	return nil
}

// errTaken: the turn went to someone else first, or moved on.
var errTaken = errors.New("job: turn taken meanwhile")

// takeRetry takes an item from the retry list. The list holds only items
// handed out again, so it is short, and a worker lists it only after the
// cursor has run out. Of two workers racing for an entry exactly one wins:
// both move the item's version.
func (j *Job) takeRetry(ctx context.Context, spec protocol.Job, lease protocol.Lease) (Claim, error) {
	names, err := j.sortedChildren(j.L.Retry())
	if errors.Is(err, zk.ErrNoNode) {
		return Claim{}, j.gone(err)
	}
	if err != nil {
		return Claim{}, j.listErr(j.L.Retry(), err)
	}
	var due time.Time
	for _, t := range j.turns(j.L.Retry(), names) {
		if at, held := j.heldBack(spec, t); held {
			if due.IsZero() || at.Before(due) {
				due = at
			}
			continue
		}
		c, err := j.claim(ctx, t, lease, true)
		if errors.Is(err, errTaken) {
			continue
		}
		return c, err
	}
	return Claim{}, &EmptyError{Due: due}
}

// claim leases turn t: one transaction that checks the worker's timer,
// moves the item's version from open to leased, creates the ephemeral
// lease and, for a turn from the retry list, deletes its entry. errTaken
// when the turn is no longer open.
//
// A transaction whose reply was lost may have been applied: it is
// repeated for the same turn until the answer is definite, and a lease
// found there and owned by this session is success. Abandoning the turn
// instead (for a new ticket, or the next entry) would leave this live
// session holding a lease nobody works on, and the job would never end.
func (j *Job) claim(ctx context.Context, t protocol.Turn, lease protocol.Lease, fromRetry bool) (Claim, error) {
	open := protocol.OpenVersion(t.Attempt)
	if fromRetry {
		// A fresh ticket's turn needs no look: creating the turn node
		// fails if another took it. A retry entry may be stale.
		n, err := j.turnCount(ctx, t.Index)
		if err != nil {
			return Claim{}, err
		}
		if n != open {
			return Claim{}, j.dropStale(t, fromRetry)
		}
	}
	data, err := j.item(ctx, t.Index)
	if errors.Is(err, zk.ErrNoNode) {
		return Claim{}, j.gone(err)
	}
	if err != nil {
		return Claim{}, err
	}
	ops := []any{
		&zk.CheckVersionRequest{Path: j.L.Timer(lease.Timer), Version: -1},
		j.advanceTurn(t.Index, open),
		&zk.CreateRequest{Path: j.L.Lease(t), Data: protocol.Encode(lease), Acl: j.acl, Flags: zk.FlagEphemeral},
	}
	if fromRetry {
		ops = append(ops, &zk.DeleteRequest{Path: j.L.RetryEntry(t), Version: -1})
	}
	c := Claim{Turn: t, Data: data, Timer: lease.Timer}
	repeated := false
	for {
		at, err := j.multi(ops...)
		switch {
		case err == nil:
			return c, nil
		case at == 0:
			return Claim{}, fmt.Errorf("%w: %s is gone; this worker may take no items", ErrTimerLost, j.L.Timer(lease.Timer))
		case Transient(err) || repeated:
			// Applied or not? Only the lease can say.
			owned, oerr := j.ownsLease(ctx, t)
			if oerr != nil {
				return Claim{}, oerr
			}
			if owned {
				return c, nil
			}
			if !Transient(err) {
				return Claim{}, errTaken
			}
			repeated = true
			if err := pause(ctx); err != nil {
				return j.lastLook(c, err)
			}
		case errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNodeExists), errors.Is(err, zk.ErrNoNode):
			return Claim{}, errTaken
		default:
			return Claim{}, fmt.Errorf("leasing item %d: %w", t.Index, err)
		}
	}
}

// lastLookPatience bounds the final ownership check of a lease whose
// transaction's fate is unknown when the caller gives up: long enough to
// ride out a leader election, short enough not to hold up a stop.
const lastLookPatience = 5 * time.Second

// lastLook is claim giving up (ctx done) on a lease whose transaction may
// have been applied: one more look, past ctx, so that a lease held is
// returned (the caller gives it back) rather than left with nobody to
// work on it.
func (j *Job) lastLook(c Claim, cause error) (Claim, error) {
	ctx, cancel := context.WithTimeout(context.Background(), lastLookPatience)
	defer cancel()
	if owned, err := j.ownsLease(ctx, c.Turn); err == nil && owned {
		return c, nil
	}
	return Claim{}, fmt.Errorf("leasing item %d: %w", c.Index, cause)
}

// dropStale deletes a retry entry whose turn the item has moved past (it
// has a result, or was handed out again): left alone, it would keep
// --until-done workers from ever seeing an empty list.
func (j *Job) dropStale(t protocol.Turn, fromRetry bool) error {
	if fromRetry {
		if err := j.conn.Delete(j.L.RetryEntry(t), -1); err != nil && !errors.Is(err, zk.ErrNoNode) && !Transient(err) {
			return fmt.Errorf("removing stale retry entry %s: %w", t.Name(), err)
		}
	}
	return errTaken
}

// ownsLease reports whether turn t's lease exists and belongs to this
// handle's session. It asks until the server answers: a guess either way
// is the double fault that strands an item.
func (j *Job) ownsLease(ctx context.Context, t protocol.Turn) (bool, error) {
	var st *zk.Stat
	err := retry(ctx, func() (err error) { st, err = j.stat(j.L.Lease(t)); return })
	if err != nil {
		return false, fmt.Errorf("reading the lease of item %d: %w", t.Index, err)
	}
	return st != nil && st.EphemeralOwner == j.session(), nil
}

// Record writes the result of a claim and releases its lease, in one
// transaction that also bumps the done (and, for a failure, the failed)
// counter the master watches, and moves the item past its turn. It
// succeeds only while the lease still exists: a worker whose session died
// has lost its lease, and another worker may hold the item, so its result
// must not count: ErrLeaseLost then.
//
// A transaction whose reply was lost is repeated until ctx is done; a
// repeat that finds this claim's own result recorded is success.
func (j *Job) Record(ctx context.Context, c Claim, r protocol.Result) error {
	r.V = protocol.Version
	r.Attempt = c.Attempt
	r.Timer = c.Timer
	ops := []any{
		// Bumping the item's version, rather than only checking it, makes
		// any later requeue of this turn fail: a master that decided the
		// item was orphaned just before this result landed cannot hand it
		// out a second time.
		j.advanceTurn(c.Index, protocol.LeasedVersion(c.Attempt)),
		&zk.DeleteRequest{Path: j.L.Lease(c.Turn), Version: 0},
		&zk.CreateRequest{Path: j.L.Result(c.Index, r.Outcome), Data: protocol.Encode(r), Acl: j.acl},
		&zk.SetDataRequest{Path: j.L.Done(), Version: -1},
	}
	if r.Outcome.IsFailure() {
		ops = append(ops, &zk.SetDataRequest{Path: j.L.Failed(), Version: -1})
	}
	repeated := false
	err := retry(ctx, func() error {
		_, err := j.multi(ops...)
		repeated = repeated || Transient(err)
		return err
	})
	if err != nil && repeated && !Transient(err) {
		if mine, merr := j.ownResult(ctx, c); merr == nil && mine {
			return nil
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion):
		if ferr := j.finished(); ferr != nil {
			return fmt.Errorf("%w; the result of item %d was not recorded", ferr, c.Index)
		}
		return fmt.Errorf("%w: item %d attempt %d; its result was not recorded", ErrLeaseLost, c.Index, c.Attempt)
	case errors.Is(err, zk.ErrNodeExists):
		return fmt.Errorf("item %d already has a result; this one was not recorded", c.Index)
	}
	return fmt.Errorf("recording the result of item %d: %w", c.Index, err)
}

// ownResult reports whether the item's recorded result is this claim's.
func (j *Job) ownResult(ctx context.Context, c Claim) (bool, error) {
	var names []string
	err := retry(ctx, func() (err error) {
		names, _, err = j.conn.Children(j.L.ResultBucket(protocol.Bucket(c.Index)))
		return err
	})
	if err != nil {
		return false, err
	}
	prefix := protocol.ResultName(c.Index, "")
	for _, n := range names {
		_, o, perr := protocol.ParseResultName(n)
		if perr != nil || !strings.HasPrefix(n, prefix) {
			continue
		}
		var b []byte
		if err := retry(ctx, func() (err error) { b, _, err = j.conn.Get(j.L.Result(c.Index, o)); return }); err != nil {
			return false, err
		}
		r, err := protocol.DecodeResult(b)
		return err == nil && r.Attempt == c.Attempt && r.Timer == c.Timer, nil
	}
	return false, nil
}

// Release gives a claim back untouched, for a worker that stops before it
// started the command. The item moves to a new turn with the same charge:
// no attempt was spent, but a name is never used twice, so a master that
// saw the old lease go cannot take the next worker's lease for it.
func (j *Job) Release(ctx context.Context, c Claim) error {
	next := protocol.Turn{Index: c.Index, Attempt: c.Attempt + 1, Charged: c.Charged}
	return j.endTurn(ctx, c, &zk.CreateRequest{Path: j.L.RetryEntry(next), Acl: j.acl})
}

// Abandon drops a claim without a result, for a worker whose timer was
// lost while its session lives: the master then sees the lease vanish as
// it would for a worker that died, and charges and hands out the item.
func (j *Job) Abandon(ctx context.Context, c Claim) error {
	return j.endTurn(ctx, c)
}

// endTurn deletes the claim's lease, with more operations in the same
// transaction. A repeat that finds the lease gone was applied before.
func (j *Job) endTurn(ctx context.Context, c Claim, more ...any) error {
	ops := []any{&zk.DeleteRequest{Path: j.L.Lease(c.Turn), Version: 0}}
	if len(more) > 0 {
		ops = append(ops, j.advanceTurn(c.Index, protocol.LeasedVersion(c.Attempt)))
		ops = append(ops, more...)
	}
	repeated := false
	err := retry(ctx, func() error {
		_, err := j.multi(ops...)
		repeated = repeated || Transient(err)
		return err
	})
	switch {
	case err == nil, repeated && errors.Is(err, zk.ErrNoNode):
		return nil
	case errors.Is(err, zk.ErrNoNode):
		if ferr := j.finished(); ferr != nil {
			return ferr
		}
		return fmt.Errorf("%w: item %d", ErrLeaseLost, c.Index)
	}
	return fmt.Errorf("giving item %d back: %w", c.Index, err)
}

// ReleaseBarrier deletes the sync node, if any: the first worker to start
// lets the master go on.
func (j *Job) ReleaseBarrier() error {
	err := j.conn.Delete(j.L.Sync(), -1)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("releasing the sync barrier: %w", err)
	}
	return nil
}
