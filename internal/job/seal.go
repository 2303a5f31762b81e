package job

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// Seal ends the job and keeps its record for the morning after: the root
// stays, in state finished, with sum (its Outcomes and EndedMillis filled
// in here), and so do the results of the items that did not succeed (they
// carry the item's text) and the items that have no result at all. The
// rest goes: the results that are ok, the items that have a result, the
// leases, timers, retry entries and counters. With keep, nothing goes;
// only the state changes.
//
// The job is frozen first, in one transaction that marks it finished and
// deletes the cursor and the done and failed counters: every take and
// every result is a transaction on one of those, so nothing changes
// between the count below and the pruning, and a worker still running
// learns the job is finished (FinishedError) when it tries. Deleting the
// timers stops the commands of workers still running, as removing the
// job did.
//
// Sealing a sealed job again only rewrites its summary.
func (j *Job) Seal(ctx context.Context, sum protocol.Summary, keep bool) (protocol.Summary, error) {
	spec, err := j.Spec()
	if err != nil {
		return sum, err
	}
	if sum.Reason == "" {
		if reason, aborted, err := j.AbortReason(); err == nil && aborted {
			sum.Reason = reason
		}
	}
	sum.Kept = keep
	sum.EndedMillis = time.Now().UnixMilli()
	if err := j.freeze(ctx, spec, sum, keep); err != nil {
		return sum, err
	}
	outcomes, err := j.sealedOutcomes(ctx)
	if err != nil {
		return sum, err
	}
	sum.Outcomes = countByOutcome(outcomes, spec.Items)
	if st, err := j.stat(j.L.Workers()); err == nil && st != nil {
		sum.Workers = int(st.Version)
	}
	if !keep {
		if err := j.prune(ctx, spec, outcomes); err != nil {
			return sum, err
		}
	}
	return sum, j.writeSummary(ctx, spec, sum)
}

// freeze marks the job finished and, unless keep, deletes the nodes that
// every take and result changes, in one transaction.
func (j *Job) freeze(ctx context.Context, spec protocol.Job, sum protocol.Summary, keep bool) error {
	spec.State, spec.Summary = protocol.StateFinished, &sum
	ops := []any{&zk.SetDataRequest{Path: j.L.Root, Data: protocol.Encode(spec), Version: -1}}
	if !keep {
		for _, p := range []string{j.L.Cursor(), j.L.Done(), j.L.Failed()} {
			ops = append(ops, &zk.DeleteRequest{Path: p, Version: -1})
		}
	}
	err := retry(ctx, func() error { _, err := j.multi(ops...); return err })
	if errors.Is(err, zk.ErrNoNode) {
		// Sealed before (a repeat whose reply was lost, a second try), or
		// partly removed: each node on its own, whichever are left.
		err = j.deleteAll(pathsOf(ops[1:]))
		if err == nil {
			err = retry(ctx, func() error { _, err := j.conn.Set(j.L.Root, ops[0].(*zk.SetDataRequest).Data, -1); return err })
		}
	}
	if errors.Is(err, zk.ErrNoNode) {
		return j.gone(err)
	}
	if err != nil {
		return fmt.Errorf("sealing %s: %w", j.L.Root, err)
	}
	return nil
}

func pathsOf(ops []any) []string {
	var out []string
	for _, op := range ops {
		out = append(out, op.(*zk.DeleteRequest).Path)
	}
	return out
}

// countByOutcome counts items by final outcome; those without a result
// are Unfinished.
func countByOutcome(outcomes []Outcome, items int) map[protocol.Outcome]int {
	n := map[protocol.Outcome]int{}
	for _, o := range outcomes {
		n[o.Outcome]++
	}
	if left := items - len(outcomes); left > 0 {
		n[protocol.Unfinished] = left
	}
	return n
}

// prune deletes what a sealed job does not keep. The workers' timers go
// first, so that commands still running stop as soon as they can.
func (j *Job) prune(ctx context.Context, spec protocol.Job, outcomes []Outcome) error {
	for _, dir := range []string{j.L.Timers(), j.L.Leases(), j.L.Retry()} {
		if err := j.removeTree(dir); err != nil {
			return fmt.Errorf("sealing %s: %w", j.L.Root, err)
		}
	}
	if err := j.noteUnfinished(ctx, spec, outcomes); err != nil {
		return fmt.Errorf("sealing %s: %w", j.L.Root, err)
	}
	var gone []string
	kept := make(map[int]bool) // result buckets with a result kept
	resulted := make(map[int]int)
	for _, o := range outcomes {
		gone = append(gone, j.L.Item(o.Index))
		resulted[protocol.Bucket(o.Index)]++
		if o.Outcome == protocol.OK {
			gone = append(gone, j.L.Result(o.Index, o.Outcome))
		} else {
			kept[protocol.Bucket(o.Index)] = true
		}
	}
	gone = append(gone, j.L.Workers(), j.L.Sync(), j.L.Clock(), j.L.Abort(), j.L.Filler())
	if err := j.deleteAll(gone); err != nil {
		return fmt.Errorf("sealing %s: %w", j.L.Root, err)
	}
	var buckets, chunks []string
	for b := range protocol.Buckets(spec.Items) {
		if !kept[b] {
			buckets = append(buckets, j.L.ResultBucket(b))
		}
		if resulted[b] == protocol.BucketLen(spec.Items, b) {
			gone, err := j.chunksOf(ctx, b)
			if err != nil {
				return fmt.Errorf("sealing %s: %w", j.L.Root, err)
			}
			chunks = append(chunks, gone...)
			buckets = append(buckets, j.L.ItemBucket(b))
		}
	}
	if err := j.deleteAll(chunks); err != nil {
		return fmt.Errorf("sealing %s: %w", j.L.Root, err)
	}
	if err := j.pruneAttempts(ctx, outcomes); err != nil {
		return err
	}
	j.deleteIfEmpty(append(buckets, j.L.Stats()))
	return nil
}

// noteUnfinished writes into each item bucket that keeps items without a
// result which those are: the chunks keep every item's bytes, and once
// the ok results and the turn nodes are pruned nothing else would say.
// A bucket noted already (a seal repeated) is left as it was, since its
// ok results may be gone by now.
func (j *Job) noteUnfinished(ctx context.Context, spec protocol.Job, outcomes []Outcome) error {
	resulted := make(map[int]bool, len(outcomes))
	for _, o := range outcomes {
		resulted[o.Index] = true
	}
	var fns []func() error
	for b := range protocol.Buckets(spec.Items) {
		lo := b * protocol.BucketSize
		var open []int
		for i := lo; i < lo+protocol.BucketLen(spec.Items, b); i++ {
			if !resulted[i] {
				open = append(open, i)
			}
		}
		if len(open) > 0 {
			fns = append(fns, func() error { return j.markUnfinished(ctx, b, open) })
		}
	}
	return parallel(fillPipelined, fns...)
}

func (j *Job) markUnfinished(ctx context.Context, b int, open []int) error {
	ib, err := j.itemBucket(ctx, b)
	if errors.Is(err, zk.ErrNoNode) || (err == nil && len(ib.Unfinished) > 0) {
		return nil
	}
	if err != nil {
		return err
	}
	ib.Unfinished = open
	data := protocol.Encode(ib)
	err = retry(ctx, func() error { _, err := j.conn.Set(j.L.ItemBucket(b), data, -1); return err })
	if errors.Is(err, zk.ErrNoNode) {
		return nil // pruned by an earlier seal: every item had a result
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", j.L.ItemBucket(b), err)
	}
	j.buckets.Store(j.L.ItemBucket(b), ib)
	return nil
}

// chunksOf lists the chunks of item bucket b, from its record: none for
// a bucket already gone (a seal repeated).
func (j *Job) chunksOf(ctx context.Context, b int) ([]string, error) {
	ib, err := j.itemBucket(ctx, b)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range ib.Chunks {
		out = append(out, j.L.Chunk(c))
	}
	return out, nil
}

// pruneAttempts deletes the attempt records of the items that ended ok,
// and the attempt buckets left empty.
func (j *Job) pruneAttempts(ctx context.Context, outcomes []Outcome) error {
	ok := make(map[int]bool)
	for _, o := range outcomes {
		if o.Outcome == protocol.OK {
			ok[o.Index] = true
		}
	}
	buckets, err := j.presentBuckets(ctx, j.L.Attempts())
	if err != nil {
		return err
	}
	var gone, dirs []string
	for _, b := range buckets {
		names, _, err := j.conn.Children(j.L.AttemptBucket(b))
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return j.listErr(j.L.AttemptBucket(b), err)
		}
		for _, n := range names {
			if i, _, err := protocol.ParseAttemptName(n); err == nil && ok[i] {
				gone = append(gone, j.L.AttemptBucket(b)+"/"+n)
			}
		}
		dirs = append(dirs, j.L.AttemptBucket(b))
	}
	if err := j.deleteAll(gone); err != nil {
		return fmt.Errorf("sealing %s: %w", j.L.Root, err)
	}
	j.deleteIfEmpty(dirs)
	j.deleteIfEmpty([]string{j.L.Attempts()}) // after its buckets
	return nil
}

// deleteIfEmpty deletes each of paths that has no children, in order; a
// node with children, or gone, stays as it is.
func (j *Job) deleteIfEmpty(paths []string) {
	fns := make([]func() error, len(paths))
	for i, p := range paths {
		fns[i] = func() error { _ = j.conn.Delete(p, -1); return nil }
	}
	_ = parallel(fillPipelined, fns...)
}

// writeSummary puts the final summary in the sealed job's record.
func (j *Job) writeSummary(ctx context.Context, spec protocol.Job, sum protocol.Summary) error {
	spec.State, spec.Summary = protocol.StateFinished, &sum
	err := retry(ctx, func() error { _, err := j.conn.Set(j.L.Root, protocol.Encode(spec), -1); return err })
	if err != nil {
		return fmt.Errorf("sealing %s: %w", j.L.Root, err)
	}
	return nil
}

// sealedOutcomes lists the results of a job that may be sealed: only the
// buckets still there. A live job has all of its buckets.
func (j *Job) sealedOutcomes(ctx context.Context) ([]Outcome, error) {
	buckets, err := j.presentBuckets(ctx, j.L.Results())
	if err != nil {
		return nil, err
	}
	var out []Outcome
	for _, b := range buckets {
		got, err := j.BucketOutcomes(b)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}
