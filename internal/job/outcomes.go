package job

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// HasResult reports whether item index has a recorded result. It lists the
// item's result bucket (at most protocol.BucketSize short names), since the
// outcome is part of a result's name.
func (j *Job) HasResult(index int) (bool, error) {
	names, _, err := j.conn.Children(j.L.ResultBucket(protocol.Bucket(index)))
	if err != nil {
		return false, fmt.Errorf("job: listing results of item %d: %w", index, err)
	}
	prefix := protocol.ResultName(index, "")
	return slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, prefix) }), nil
}

// Requeue hands an item out again after turn t ended without a result:
// it bumps the item's version (so the old turn can neither record nor, if
// its lease was still being created, start) and puts the next turn, with
// charged attempts charged, on the retry list, in one transaction.
// ErrStale when the item has moved on already (another master requeued
// it), which callers may ignore.
func (j *Job) Requeue(t protocol.Turn, charged int) error {
	data, _, err := j.conn.Get(j.L.Item(t.Index))
	if err != nil {
		return fmt.Errorf("job: requeueing item %d: %w", t.Index, err)
	}
	next := protocol.Turn{Index: t.Index, Attempt: t.Attempt + 1, Charged: charged}
	err = multiErr(j.conn.Multi(
		&zk.SetDataRequest{Path: j.L.Item(t.Index), Data: data, Version: int32(t.Attempt - 1)},
		&zk.CreateRequest{Path: j.L.RetryEntry(next), Acl: openACL},
	))
	if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("%w: item %d is past attempt %d", ErrStale, t.Index, t.Attempt)
	}
	if err != nil {
		return fmt.Errorf("job: requeueing item %d: %w", t.Index, err)
	}
	return nil
}

// RecordLost gives item index its final result, lost, with the counters,
// and bumps the item's version so that the lost attempt can never record
// after all; one transaction. ErrStale when the item moved on already.
func (j *Job) RecordLost(index, attempt int, reason string) error {
	data, _, err := j.conn.Get(j.L.Item(index))
	if err != nil {
		return fmt.Errorf("job: recording item %d as lost: %w", index, err)
	}
	r := protocol.Result{V: protocol.Version, Outcome: protocol.Lost, Exit: -1, Attempt: attempt, Reason: reason}
	err = multiErr(j.conn.Multi(
		&zk.SetDataRequest{Path: j.L.Item(index), Data: data, Version: int32(attempt - 1)},
		&zk.CreateRequest{Path: j.L.Result(index, protocol.Lost), Data: protocol.Encode(r), Acl: openACL},
		&zk.SetDataRequest{Path: j.L.Done(), Version: -1},
		&zk.SetDataRequest{Path: j.L.Failed(), Version: -1},
	))
	if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("%w: item %d is past attempt %d", ErrStale, index, attempt)
	}
	if err != nil {
		return fmt.Errorf("job: recording item %d as lost: %w", index, err)
	}
	return nil
}

// Attempt is the attempt item index is on: one more than the times it was
// handed out again.
func (j *Job) Attempt(index int) (int, error) {
	_, st, err := j.conn.Exists(j.L.Item(index))
	if err != nil {
		return 0, fmt.Errorf("job: reading item %d: %w", index, err)
	}
	if st == nil {
		return 0, fmt.Errorf("job: item %d: %w", index, zk.ErrNoNode)
	}
	return int(st.Version) + 1, nil
}

// Outcome is one item's recorded result.
type Outcome struct {
	Index   int
	Outcome protocol.Outcome
}

// Outcomes lists every recorded result, one bucket listing per thousand
// items, without reading the results themselves.
func (j *Job) Outcomes(spec protocol.Job) ([]Outcome, error) {
	buckets := protocol.Buckets(spec.Items)
	lists := make([][]string, buckets)
	fns := make([]func() error, buckets)
	for b := range buckets {
		fns[b] = func() (err error) {
			lists[b], _, err = j.conn.Children(j.L.ResultBucket(b))
			return err
		}
	}
	if err := parallel(32, fns...); err != nil {
		return nil, fmt.Errorf("job: listing results: %w", err)
	}
	var out []Outcome
	for _, names := range lists {
		for _, n := range names {
			i, o, err := protocol.ParseResultName(n)
			if err != nil {
				continue
			}
			out = append(out, Outcome{Index: i, Outcome: o})
		}
	}
	slices.SortFunc(out, func(a, b Outcome) int { return a.Index - b.Index })
	return out, nil
}

// ResultOf reads one recorded result and the item's text.
func (j *Job) ResultOf(o Outcome) (protocol.Result, []byte, error) {
	var (
		r    protocol.Result
		item []byte
	)
	err := parallel(2,
		func() error {
			b, _, err := j.conn.Get(j.L.Result(o.Index, o.Outcome))
			if err == nil {
				r, err = protocol.DecodeResult(b)
			}
			return err
		},
		func() (err error) { item, _, err = j.conn.Get(j.L.Item(o.Index)); return },
	)
	if err != nil {
		return r, nil, fmt.Errorf("job: reading the result of item %d: %w", o.Index, err)
	}
	return r, item, nil
}
