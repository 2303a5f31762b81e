package job

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// Row is one item as zkdog results and the joblog report it, from a live
// or a sealed job.
type Row struct {
	// Index is the item's index in this job; Origin, in the job it first
	// came from (the same unless made with zkdog init --from).
	Index, Origin int
	Item          []byte
	// Outcome is protocol.Unfinished for an item without a result.
	Outcome protocol.Outcome
	// Result is the recorded result; zero for an unfinished item.
	Result protocol.Result
	// Started is when the attempt that recorded began, by the server's
	// clock: the result's creation less its duration. Zero if unfinished.
	Started time.Time
	// Attempts counts the turns the item was handed out for.
	Attempts int
	// Earlier are the records of the attempts before the last that ran
	// and ended without the item's result, oldest first.
	Earlier []protocol.Result
}

// BucketOutcomes lists the results in result bucket b, one listing of
// short names; a bucket a sealed job dropped is empty.
func (j *Job) BucketOutcomes(b int) ([]Outcome, error) {
	names, _, err := j.conn.Children(j.L.ResultBucket(b))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, j.listErr(j.L.ResultBucket(b), err)
	}
	out := make([]Outcome, 0, len(names))
	for _, n := range names {
		i, o, err := protocol.ParseResultName(n)
		if err != nil {
			j.unreadable(j.L.ResultBucket(b)+"/"+n, err)
			continue
		}
		out = append(out, Outcome{Index: i, Outcome: o})
	}
	return out, nil
}

// presentBuckets lists the buckets under dir (items or results) that
// exist, in order.
func (j *Job) presentBuckets(ctx context.Context, dir string) ([]int, error) {
	var names []string
	err := retry(ctx, func() (err error) { names, _, err = j.conn.Children(dir); return })
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, j.listErr(dir, err)
	}
	var out []int
	for _, n := range names {
		b, err := protocol.ParseBucketName(n)
		if err != nil {
			j.unreadable(dir+"/"+n, err)
			continue
		}
		out = append(out, b)
	}
	slices.Sort(out)
	return out, nil
}

// Rows reads every item whose outcome want accepts, in the job's order:
// one listing per bucket, and one or two reads per row. Items without a
// result are listed (as Unfinished) only when want accepts that, which
// costs two reads per item bucket (its record and last chunk).
func (j *Job) Rows(ctx context.Context, want func(protocol.Outcome) bool) ([]Row, error) {
	outcomes, err := j.sealedOutcomes(ctx)
	if err != nil {
		return nil, err
	}
	var picked []Outcome
	for _, o := range outcomes {
		if want(o.Outcome) {
			picked = append(picked, o)
		}
	}
	if want(protocol.Unfinished) {
		open, err := j.unfinished(ctx, outcomes)
		if err != nil {
			return nil, err
		}
		picked = append(picked, open...)
	}
	return j.RowsOf(picked)
}

// RowsOf reads the rows of outcomes, pipelined, in the job's order.
func (j *Job) RowsOf(outcomes []Outcome) ([]Row, error) {
	rows := make([]Row, len(outcomes))
	fns := make([]func() error, len(outcomes))
	for k, o := range outcomes {
		fns[k] = func() (err error) { rows[k], err = j.Row(o); return }
	}
	if err := parallel(32, fns...); err != nil {
		return nil, err
	}
	slices.SortFunc(rows, func(a, b Row) int { return a.Index - b.Index })
	return rows, nil
}

// unfinished lists the items that have no result: those still in the
// item buckets (a sealed job keeps only those) and not among outcomes.
func (j *Job) unfinished(ctx context.Context, outcomes []Outcome) ([]Outcome, error) {
	done := make(map[int]bool, len(outcomes))
	for _, o := range outcomes {
		done[o.Index] = true
	}
	buckets, err := j.presentBuckets(ctx, j.L.Items())
	if err != nil {
		return nil, err
	}
	var out []Outcome
	for _, b := range buckets {
		open, err := j.openIn(ctx, b, done)
		if err != nil {
			return nil, err
		}
		for _, i := range open {
			out = append(out, Outcome{Index: i, Outcome: protocol.Unfinished})
		}
	}
	return out, nil
}

// openIn lists the items of item bucket b without a result: as its
// record says, once the job is sealed; else those not done.
func (j *Job) openIn(ctx context.Context, b int, done map[int]bool) ([]int, error) {
	ib, err := j.itemBucket(ctx, b)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(ib.Unfinished) > 0 {
		return ib.Unfinished, nil
	}
	n, err := j.bucketLen(ctx, b)
	var open []int
	for i := b * protocol.BucketSize; i < b*protocol.BucketSize+n; i++ {
		if !done[i] {
			open = append(open, i)
		}
	}
	return open, err
}

// bucketLen counts the items of item bucket b from its chunks: a sealed
// job's record says how many items it had, but a bucket read here may be
// one a seal is about to delete. Zero for a bucket already gone.
func (j *Job) bucketLen(ctx context.Context, b int) (int, error) {
	ib, err := j.itemBucket(ctx, b)
	if errors.Is(err, zk.ErrNoNode) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	last := ib.Chunks[len(ib.Chunks)-1]
	items, err := j.chunk(ctx, last)
	if errors.Is(err, zk.ErrNoNode) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return last - b*protocol.BucketSize + len(items), nil
}

// Row reads one item's row: its result (if o has one) and its text.
func (j *Job) Row(o Outcome) (Row, error) {
	if o.Outcome == protocol.Unfinished {
		return j.unfinishedRow(o.Index)
	}
	p := j.L.Result(o.Index, o.Outcome)
	b, st, err := j.conn.Get(p)
	if err != nil {
		return Row{}, fmt.Errorf("reading the result of item %d: %w", o.Index, err)
	}
	r, err := protocol.DecodeResult(b)
	if err != nil {
		j.unreadable(p, err)
		r = protocol.Result{Outcome: o.Outcome, Exit: -1, Reason: fmt.Sprintf("its result record %s is unreadable: %v", p, err)}
	}
	row := Row{Index: o.Index, Outcome: o.Outcome, Result: r, Attempts: r.Attempt, Item: r.Item,
		Started: time.UnixMilli(st.Ctime - r.DurationMillis)}
	if row.Item == nil {
		// Results of ok items leave the text to the item.
		if row.Item, err = j.ItemText(context.Background(), o.Index); err != nil {
			return Row{}, err
		}
	}
	row.Origin, err = j.originOf(o.Index, j.L.ResultBucket(protocol.Bucket(o.Index)))
	if err == nil && r.Attempt > 1 {
		row.Earlier, err = j.Earlier(o.Index, r.Attempt)
	}
	return row, err
}

func (j *Job) unfinishedRow(index int) (Row, error) {
	ctx := context.Background()
	data, err := j.item(ctx, index)
	if err != nil {
		return Row{}, fmt.Errorf("reading item %d: %w", index, err)
	}
	n, err := j.turnCount(ctx, index)
	if err != nil {
		return Row{}, err
	}
	attempt, leased := protocol.TurnOf(n)
	if !leased {
		attempt-- // the open turn has not run
	}
	row := Row{Index: index, Outcome: protocol.Unfinished, Item: data, Attempts: attempt}
	row.Origin, err = j.originOf(index, j.L.ItemBucket(protocol.Bucket(index)))
	if err == nil {
		row.Earlier, err = j.Earlier(index, attempt+1)
	}
	return row, err
}

// originOf is item index's origin, from the data of bucket (its item or
// result bucket: both carry the origins). A bucket's data never changes,
// so the handle reads each once.
func (j *Job) originOf(index int, bucket string) (int, error) {
	if got, ok := j.origins.Load(bucket); ok {
		return protocol.OriginIn(got.([]int), index), nil
	}
	b, _, err := j.conn.Get(bucket)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return 0, fmt.Errorf("reading %s: %w", bucket, err)
	}
	origins, err := protocol.DecodeOrigins(b)
	if err != nil {
		j.unreadable(bucket, err)
	}
	j.origins.Store(bucket, origins)
	return protocol.OriginIn(origins, index), nil
}

// Durations reads how long the attempts that recorded outcomes took: one
// read per result, pipelined, and nothing else (not the item).
func (j *Job) Durations(outcomes []Outcome) ([]time.Duration, error) {
	out := make([]time.Duration, len(outcomes))
	fns := make([]func() error, len(outcomes))
	for k, o := range outcomes {
		fns[k] = func() error {
			b, _, err := j.conn.Get(j.L.Result(o.Index, o.Outcome))
			if errors.Is(err, zk.ErrNoNode) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading the result of item %d: %w", o.Index, err)
			}
			if r, err := protocol.DecodeResult(b); err == nil {
				out[k] = time.Duration(r.DurationMillis) * time.Millisecond
			}
			return nil
		}
	}
	return out, parallel(32, fns...)
}
