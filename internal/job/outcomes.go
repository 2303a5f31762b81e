package job

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// Finished lists which items of result bucket b have a result: one
// listing of at most protocol.BucketSize short names, since the outcome is
// part of a result's name.
func (j *Job) Finished(b int) (map[int]bool, error) {
	names, _, err := j.conn.Children(j.L.ResultBucket(b))
	if err != nil {
		return nil, j.listErr(j.L.ResultBucket(b), err)
	}
	done := make(map[int]bool, len(names))
	for _, n := range names {
		i, _, err := protocol.ParseResultName(n)
		if err != nil {
			j.unreadable(j.L.ResultBucket(b)+"/"+n, err)
			continue
		}
		done[i] = true
	}
	return done, nil
}

// Requeue hands an item out again after its leased turn t ended without a
// result because its worker vanished: it moves the item past the turn (so
// the old turn can never record), keeps a record of the attempt and puts
// the next turn, with charged attempts charged, on the retry list, in one
// transaction. ErrStale when the item has moved on already (a result
// landed, or another master requeued it), which callers may ignore.
func (j *Job) Requeue(t protocol.Turn, charged int) error {
	return j.RequeueAttempt(t, charged, protocol.Result{Outcome: protocol.Vanished, Exit: -1,
		Reason: "its worker vanished without a result"})
}

// Reoffer puts turn t, which was never leased (its ticket's reply was
// lost), on the retry list as it is: it never ran, so it costs no retry
// and keeps its number. A late lease by the ticket's holder makes the
// entry stale, and the worker who finds it so deletes it.
func (j *Job) Reoffer(t protocol.Turn) error {
	ops := append(j.checkTurn(t.Index, protocol.OpenVersion(t.Attempt)),
		&zk.CreateRequest{Path: j.L.RetryEntry(t), Acl: j.acl})
	_, err := j.multi(ops...)
	return j.staleOr(t.Index, t.Attempt, "handing out again", err)
}

// RecordLost gives item index its final result, lost, with the counters,
// and moves the item past turn t so that it can never record after all;
// one transaction. ErrStale when the item moved on already.
func (j *Job) RecordLost(t protocol.Turn, leased bool, reason string) error {
	return j.RecordFor(t, leased, protocol.Result{Outcome: protocol.Lost, Exit: -1, Reason: reason})
}

// moveOn moves item index's turn count on from version, with more
// operations in the same transaction.
func (j *Job) moveOn(index int, version int32, more ...any) error {
	return j.moveOnWith(index, version, func([]byte) []any { return more })
}

// moveOnWith is moveOn with operations that need the item's text.
func (j *Job) moveOnWith(index int, version int32, more func(item []byte) []any) error {
	data, err := j.item(context.Background(), index)
	if err != nil {
		return fmt.Errorf("reading item %d: %w", index, err)
	}
	ops := append([]any{j.advanceTurn(index, version)}, more(data)...)
	attempt, _ := protocol.TurnOf(version)
	_, err = j.multi(ops...)
	return j.staleOr(index, attempt, "moving on", err)
}

func (j *Job) staleOr(index, attempt int, doing string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists):
		return fmt.Errorf("%w: item %d is past attempt %d", ErrStale, index, attempt)
	}
	return fmt.Errorf("%s item %d: %w", doing, index, err)
}

// ItemTurn reads where item index is: the attempt of its current turn and
// whether that turn was leased.
func (j *Job) ItemTurn(index int) (attempt int, leased bool, err error) {
	st, err := j.stat(j.L.Item(index))
	if err != nil {
		return 0, false, fmt.Errorf("reading item %d: %w", index, err)
	}
	attempt, leased = protocol.TurnOf(protocol.TurnCount(st != nil, statVersion(st)))
	return attempt, leased, nil
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
		return nil, j.listErr(j.L.Results(), err)
	}
	var out []Outcome
	for b, names := range lists {
		for _, n := range names {
			i, o, err := protocol.ParseResultName(n)
			if err != nil {
				j.unreadable(j.L.ResultBucket(b)+"/"+n, err)
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
	p := j.L.Result(o.Index, o.Outcome)
	var decodeErr error
	err := parallel(2,
		func() error {
			b, _, err := j.conn.Get(p)
			if err == nil {
				r, decodeErr = protocol.DecodeResult(b)
			}
			return err
		},
		func() (err error) { item, err = j.ItemText(context.Background(), o.Index); return },
	)
	if err != nil {
		return r, nil, fmt.Errorf("reading the result of item %d: %w", o.Index, err)
	}
	if decodeErr != nil {
		// The outcome is in the name, so the item still counts; what the
		// record would have said is replaced by why it cannot.
		j.unreadable(p, decodeErr)
		r = protocol.Result{Outcome: o.Outcome, Exit: -1, Reason: fmt.Sprintf("its result record %s is unreadable: %v", p, decodeErr)}
	}
	return r, item, nil
}

func statVersion(st *zk.Stat) int32 {
	if st == nil {
		return 0
	}
	return st.Version
}
