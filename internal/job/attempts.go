package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// retryEntry is the data of a retry entry the job's --retry-delay holds
// back: due its creation time plus the delay. Entries of turns that were
// not charged (a lost ticket, a task the scheduler ended) have none.
type retryEntry struct {
	V       int  `json:"v"`
	Delayed bool `json:"delayed,omitempty"`
}

// Retry ends the worker's attempt at claim c without a result and hands
// the item out again as the next turn, in one transaction: the attempt's
// record r (outcome, exit, host, duration, reason) is kept under
// attempts, and the next turn is charged against the job's retries when
// charge (an attempt that failed in a way --retry-on names) and not (the
// scheduler ended the task: the item was not at fault). A charged turn
// waits out the job's --retry-delay.
func (j *Job) Retry(ctx context.Context, c Claim, r protocol.Result, charge bool) error {
	r.V, r.Attempt, r.Timer = protocol.Version, c.Attempt, c.Timer
	next := protocol.Turn{Index: c.Index, Attempt: c.Attempt + 1, Charged: c.Charged}
	if charge {
		next.Charged++
	}
	entry := protocol.Encode(retryEntry{V: protocol.Version, Delayed: charge})
	return j.endTurn(ctx, c,
		&zk.CreateRequest{Path: j.L.RetryEntry(next), Data: entry, Acl: j.acl},
		&zk.CreateRequest{Path: j.L.Attempt(c.Index, c.Attempt), Data: protocol.Encode(r), Acl: j.acl},
	)
}

// RequeueAttempt is Requeue with the ended attempt's record r: the master
// hands out again the item of a worker that vanished (r's outcome
// vanished) or that it stopped for hanging (stalled), charged.
func (j *Job) RequeueAttempt(t protocol.Turn, charged int, r protocol.Result) error {
	r.V, r.Attempt = protocol.Version, t.Attempt
	next := protocol.Turn{Index: t.Index, Attempt: t.Attempt + 1, Charged: charged}
	return j.moveOn(t.Index, protocol.LeasedVersion(t.Attempt),
		&zk.CreateRequest{Path: j.L.RetryEntry(next), Data: protocol.Encode(retryEntry{V: protocol.Version, Delayed: true}), Acl: j.acl},
		&zk.CreateRequest{Path: j.L.Attempt(t.Index, t.Attempt), Data: protocol.Encode(r), Acl: j.acl},
	)
}

// RecordFor gives item t.Index its final result r, written by the master
// (lost, or stalled for a worker it stopped), with the counters, moving
// the item past turn t so that its worker can never record after all.
// ErrStale when the item moved on already.
func (j *Job) RecordFor(t protocol.Turn, leased bool, r protocol.Result) error {
	version := protocol.OpenVersion(t.Attempt)
	if leased {
		version = protocol.LeasedVersion(t.Attempt)
	}
	r.V, r.Attempt = protocol.Version, t.Attempt
	return j.moveOnWith(t.Index, version, func(item []byte) []any {
		r.Item = item // a sealed job keeps this result, not the item
		return []any{
			&zk.CreateRequest{Path: j.L.Result(t.Index, r.Outcome), Data: protocol.Encode(r), Acl: j.acl},
			&zk.SetDataRequest{Path: j.L.Done(), Version: -1},
			&zk.SetDataRequest{Path: j.L.Failed(), Version: -1},
		}
	})
}

// Earlier reads the records of the attempts before attempt at item
// index, oldest first. A turn that never ran (given back unstarted, a
// lost ticket) has none.
func (j *Job) Earlier(index, attempt int) ([]protocol.Result, error) {
	recs := make([][]byte, attempt)
	fns := make([]func() error, 0, attempt)
	for a := 1; a < attempt; a++ {
		fns = append(fns, func() error {
			b, _, err := j.conn.Get(j.L.Attempt(index, a))
			if errors.Is(err, zk.ErrNoNode) {
				return nil
			}
			recs[a] = b
			return err
		})
	}
	if err := parallel(8, fns...); err != nil {
		return nil, fmt.Errorf("reading the attempts at item %d: %w", index, err)
	}
	var out []protocol.Result
	for a, b := range recs {
		if b == nil {
			continue
		}
		r, err := protocol.DecodeAttempt(b)
		if err != nil {
			j.unreadable(j.L.Attempt(index, a), err)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// PublishStats writes what the successful items took, for the workers.
func (j *Job) PublishStats(s protocol.Stats) error {
	s.V = protocol.Version
	_, err := j.conn.Set(j.L.Stats(), protocol.Encode(s), -1)
	if errors.Is(err, zk.ErrNoNode) {
		return j.gone(err)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", j.L.Stats(), err)
	}
	return nil
}

// Stats reads what the master last published; nothing yet is a zero
// sample.
func (j *Job) Stats() (protocol.Stats, error) {
	b, _, err := j.conn.Get(j.L.Stats())
	if errors.Is(err, zk.ErrNoNode) {
		return protocol.Stats{V: protocol.Version}, j.gone(err)
	}
	if err != nil {
		return protocol.Stats{}, fmt.Errorf("reading %s: %w", j.L.Stats(), err)
	}
	s, err := protocol.DecodeStats(b)
	if err != nil {
		j.unreadable(j.L.Stats(), err)
		return protocol.Stats{V: protocol.Version}, nil
	}
	return s, nil
}

// EmptyError is ErrEmpty with the time the first item held back by the
// job's --retry-delay comes due (zero if none is).
type EmptyError struct{ Due time.Time }

func (e *EmptyError) Error() string {
	if e.Due.IsZero() {
		return ErrEmpty.Error()
	}
	return fmt.Sprintf("%v until %s (an item waits out --retry-delay)", ErrEmpty, e.Due.Format(time.RFC3339))
}

// Is makes an EmptyError match ErrEmpty.
func (e *EmptyError) Is(target error) bool { return target == ErrEmpty }

// heldBack reports when retry entry t comes due, if the job's retry delay
// holds it back still. The delay runs from the entry's creation by the
// server's clock, compared with this host's: clocks a few seconds apart
// move a delay of minutes by as much.
func (j *Job) heldBack(spec protocol.Job, t protocol.Turn) (time.Time, bool) {
	if spec.RetryDelayMillis <= 0 {
		return time.Time{}, false
	}
	b, st, err := j.conn.Get(j.L.RetryEntry(t))
	if err != nil {
		return time.Time{}, false // gone, or unreadable: claim finds out
	}
	var e retryEntry
	if json.Unmarshal(b, &e) != nil || !e.Delayed {
		return time.Time{}, false
	}
	due := time.UnixMilli(st.Ctime).Add(spec.RetryDelay())
	return due, time.Now().Before(due)
}
