package job

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// Claim is an item a worker holds a lease on.
type Claim struct {
	protocol.Turn
	Data []byte
}

// Take leases the next item for the worker described by lease. It costs
// two round trips whatever the queue's length: a ticket from the cursor
// (a write whose new version is the ticket, so concurrent workers never
// collide or retry), then, sent together, a read of the item and the
// creation of its ephemeral lease. Items given back for another attempt are taken from the retry
// list once the cursor has run past the end. ErrEmpty when nothing is left.
//
// An item's data version counts the times it was handed out again, so it
// is the attempt number less one. Every lease is created, and every result
// recorded, in a transaction that checks it: a worker that lags behind a
// requeue (its ticket taken just before the master gave the item to
// someone else) is refused instead of working on it twice.
func (j *Job) Take(spec protocol.Job, lease protocol.Lease) (Claim, error) {
	lease.V = protocol.Version
	for spec.Items > 0 {
		st, err := j.conn.Set(j.L.Cursor(), nil, -1)
		if err != nil {
			return Claim{}, fmt.Errorf("job: taking a ticket: %w", err)
		}
		ticket := int(st.Version) - 1
		if ticket >= spec.Items {
			break
		}
		c, err := j.leaseFresh(ticket, lease)
		for try := 0; Transient(err) && try < leaseRetries; try++ {
			// The lease may have been created and only the reply lost:
			// try the same ticket again (finding the lease ours is
			// success), or the lease would be held by this live session
			// for ever with nobody working on its item.
			time.Sleep(leaseRetryPause)
			c, err = j.leaseFresh(ticket, lease)
		}
		if errors.Is(err, errRequeued) {
			continue
		}
		return c, err
	}
	return j.takeRetry(lease)
}

// A lease whose reply was lost is retried every leaseRetryPause for up to
// leaseRetries times: the client reconnects within a second or two after
// a server dies; a session that does not is lost anyway, and its lease
// with it.
const (
	leaseRetries    = 150
	leaseRetryPause = 200 * time.Millisecond
)

// errRequeued: the item of a ticket was handed out again before its lease
// was created; the worker takes another ticket.
var errRequeued = errors.New("job: item requeued meanwhile")

func (j *Job) leaseFresh(index int, lease protocol.Lease) (Claim, error) {
	turn := protocol.Turn{Index: index, Attempt: 1}
	// The read and the lease do not depend on each other, so they go out
	// together and cost one round trip.
	var (
		data  []byte
		multi error
	)
	err := parallel(2,
		func() (err error) { data, _, err = j.conn.Get(j.L.Item(index)); return },
		func() error {
			multi = multiErr(j.conn.Multi(
				&zk.CheckVersionRequest{Path: j.L.Item(index), Version: 0},
				&zk.CreateRequest{Path: j.L.Lease(turn), Data: protocol.Encode(lease), Acl: openACL, Flags: zk.FlagEphemeral},
			))
			return nil
		},
	)
	switch {
	case errors.Is(multi, zk.ErrBadVersion):
		return Claim{}, errRequeued
	case errors.Is(multi, zk.ErrNodeExists) && j.ownLease(turn):
		multi = nil // a repeat after a lost reply
	}
	if multi != nil {
		return Claim{}, fmt.Errorf("job: leasing item %d: %w", index, multi)
	}
	if err != nil {
		return Claim{}, fmt.Errorf("job: reading item %d: %w", index, err)
	}
	return Claim{Turn: turn, Data: data}, nil
}

// ownLease reports whether the lease exists and belongs to this session.
func (j *Job) ownLease(t protocol.Turn) bool {
	_, st, err := j.conn.Exists(j.L.Lease(t))
	return err == nil && st != nil && st.EphemeralOwner == j.conn.SessionID()
}

// takeRetry takes an item from the retry list. The list holds only items
// whose workers vanished, so it is short, and a worker lists it only after
// the cursor has run out. Moving the entry to a lease is one Multi, so of
// two workers racing for it exactly one wins.
func (j *Job) takeRetry(lease protocol.Lease) (Claim, error) {
	names, err := j.sortedChildren(j.L.Retry())
	if err != nil {
		return Claim{}, fmt.Errorf("job: listing %s: %w", j.L.Retry(), err)
	}
	for _, name := range names {
		t, err := protocol.ParseTurn(name)
		if err != nil {
			continue
		}
		err = j.leaseRetry(t, lease)
		if errors.Is(err, zk.ErrBadVersion) {
			// The item has moved past this turn (it has a result, or was
			// handed out again): the entry is stale, and left alone it
			// would keep --until-done workers from ever seeing an empty
			// list.
			if derr := j.conn.Delete(j.L.RetryEntry(t), -1); derr != nil && !errors.Is(derr, zk.ErrNoNode) {
				return Claim{}, fmt.Errorf("job: removing stale retry entry %s: %w", name, derr)
			}
			continue
		}
		if errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrNodeExists) {
			continue // another worker won it
		}
		if err != nil {
			return Claim{}, fmt.Errorf("job: taking item %d for another attempt: %w", t.Index, err)
		}
		data, _, err := j.conn.Get(j.L.Item(t.Index))
		if err != nil {
			return Claim{}, fmt.Errorf("job: reading item %d: %w", t.Index, err)
		}
		return Claim{Turn: t, Data: data}, nil
	}
	return Claim{}, ErrEmpty
}

// leaseRetry moves a retry entry to a lease in one transaction. If the
// reply is lost it tries again; an entry gone with the lease ours means
// the first try was applied.
func (j *Job) leaseRetry(t protocol.Turn, lease protocol.Lease) error {
	ops := []any{
		&zk.DeleteRequest{Path: j.L.RetryEntry(t), Version: -1},
		&zk.CheckVersionRequest{Path: j.L.Item(t.Index), Version: int32(t.Attempt - 1)},
		&zk.CreateRequest{Path: j.L.Lease(t), Data: protocol.Encode(lease), Acl: openACL, Flags: zk.FlagEphemeral},
	}
	err := multiErr(j.conn.Multi(ops...))
	for try := 0; Transient(err) && try < leaseRetries; try++ {
		time.Sleep(leaseRetryPause)
		err = multiErr(j.conn.Multi(ops...))
		if errors.Is(err, zk.ErrNoNode) && j.ownLease(t) {
			return nil
		}
	}
	return err
}

// Record writes the result of a claim and releases its lease, in one
// transaction that also bumps the done (and, for a failure, the failed)
// counter the master watches. It succeeds only while the lease still
// exists: a worker whose session died has lost its lease, and another
// worker may hold the item, so its result must not count. ErrLeaseLost then.
func (j *Job) Record(c Claim, r protocol.Result) error {
	r.V = protocol.Version
	r.Attempt = c.Attempt
	ops := []any{
		// Bumping the item's version, rather than only checking it, makes
		// any later requeue of this turn fail: a master that decided the
		// item was orphaned just before this result landed cannot hand it
		// out a second time.
		&zk.SetDataRequest{Path: j.L.Item(c.Index), Data: c.Data, Version: int32(c.Attempt - 1)},
		&zk.DeleteRequest{Path: j.L.Lease(c.Turn), Version: 0},
		&zk.CreateRequest{Path: j.L.Result(c.Index, r.Outcome), Data: protocol.Encode(r), Acl: openACL},
		&zk.SetDataRequest{Path: j.L.Done(), Version: -1},
	}
	if r.Outcome.IsFailure() {
		ops = append(ops, &zk.SetDataRequest{Path: j.L.Failed(), Version: -1})
	}
	err := multiErr(j.conn.Multi(ops...))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion):
		return fmt.Errorf("%w: item %d attempt %d; its result was not recorded", ErrLeaseLost, c.Index, c.Attempt)
	case errors.Is(err, zk.ErrNodeExists):
		return fmt.Errorf("job: item %d already has a result; this one was not recorded", c.Index)
	}
	return fmt.Errorf("job: recording the result of item %d: %w", c.Index, err)
}

// Release gives a claim back untouched, for a worker that stops before it
// started the command: the item goes on the retry list with the same
// attempt number, since no attempt was made.
func (j *Job) Release(c Claim) error {
	err := multiErr(j.conn.Multi(
		&zk.DeleteRequest{Path: j.L.Lease(c.Turn), Version: 0},
		&zk.CreateRequest{Path: j.L.RetryEntry(c.Turn), Acl: openACL},
	))
	if errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("%w: item %d", ErrLeaseLost, c.Index)
	}
	if err != nil {
		return fmt.Errorf("job: giving item %d back: %w", c.Index, err)
	}
	return nil
}

// ReleaseBarrier deletes the sync node, if any: the first worker to start
// lets the master go on.
func (j *Job) ReleaseBarrier() error {
	err := j.conn.Delete(j.L.Sync(), -1)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("job: releasing the sync barrier: %w", err)
	}
	return nil
}
