package job

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// Batching of the fill. The server refuses a request near 1 MiB
// (jute.maxbuffer), so a batch stops well short of it; many creates per
// request are what make a fill fast (one Multi of 100 creates runs at
// 30,000-45,000 znodes/s here against about 2,500 single creates). A
// server also keeps its last 500 transactions in memory for followers
// that fall behind (commitLogCount), so the batch size, times 500, is
// heap a fill holds on every server until later writes push it out:
// 128 KiB keeps that near 64 MiB, where 512 KiB batches of chunks held
// 250 MiB.
const (
	batchBytes    = 128 << 10
	batchOps      = 1000
	fillPipelined = 8 // Multis in flight at once
	perOpOverhead = 64
)

// CheckItems validates items before anything is written, so that bad input
// leaves no trace in ZooKeeper.
func CheckItems(items [][]byte) error {
	if len(items) > protocol.MaxItems {
		return fmt.Errorf("%w: %d items is more than the %d a job may hold; split the job", ErrTooLarge, len(items), protocol.MaxItems)
	}
	for i, it := range items {
		if err := CheckItem(it); err != nil {
			return fmt.Errorf("item %d: %w", i+1, err)
		}
	}
	return nil
}

// CheckItem validates one item.
func CheckItem(item []byte) error {
	if len(item) > protocol.MaxItemBytes {
		return fmt.Errorf("%w: %d bytes, over the %d-byte limit; pass a file name or a key instead of the data", ErrTooLarge, len(item), protocol.MaxItemBytes)
	}
	return nil
}

// Create makes the job: the root (and its missing parents), the fixed
// nodes, every item, and the sync barrier when spec.Sync. The root is
// written first in state filling and switched to ready last, so workers
// never see half a queue. If anything fails the job is removed again, and
// nothing is left but parents that did not exist before.
func (j *Job) Create(spec protocol.Job, items [][]byte) error {
	return j.Fill(context.Background(), spec, items, nil)
}

// Progress reports how many of a fill's items are written.
type Progress func(written, total int)

// Fill is Create, stopped when ctx is done, and reporting its progress to
// progress (if non-nil) after every batch. A fill stopped or failed
// removes what it wrote, the parents it created included, and returns
// ctx's cause or the error.
func (j *Job) Fill(ctx context.Context, spec protocol.Job, items [][]byte, progress Progress) error {
	return j.FillFrom(ctx, spec, items, nil, progress)
}

// FillFrom is Fill for a job re-running another's items: origins[i] is
// item i's index in the job it first came from (nil: its own).
func (j *Job) FillFrom(ctx context.Context, spec protocol.Job, items [][]byte, origins []int, progress Progress) error {
	if err := CheckItems(items); err != nil {
		return err
	}
	if origins != nil && len(origins) != len(items) {
		return fmt.Errorf("%d origins for %d items", len(origins), len(items))
	}
	spec.Protocol = protocol.Version
	spec.Items = len(items)
	spec.State = protocol.StateFilling
	created, err := j.createParents()
	if err == nil {
		err = j.createRoot(spec)
		if errors.Is(err, ErrExists) {
			return err
		}
	}
	if err == nil {
		if err = j.fill(ctx, spec, items, origins, progress); err == nil {
			return nil
		}
		if rerr := j.Remove(); rerr != nil {
			return fmt.Errorf("%w (and removing the partial job failed: %v; run zkdog clear --force)", err, rerr)
		}
	}
	j.removeParents(created)
	return err
}

// createRoot creates the root in state filling, with the ephemeral filler
// and the fixed nodes, in one transaction: a worker that sees the job at
// all sees its filler, and so can tell a job being filled from one whose
// master died.
func (j *Job) createRoot(spec protocol.Job) error {
	ops := []any{
		&zk.CreateRequest{Path: j.L.Root, Data: protocol.Encode(spec), Acl: j.acl},
		&zk.CreateRequest{Path: j.L.Filler(), Acl: j.acl, Flags: zk.FlagEphemeral},
	}
	for _, p := range []string{j.L.Items(), j.L.Results(), j.L.Leases(), j.L.Retry(), j.L.Timers(),
		j.L.Cursor(), j.L.Done(), j.L.Failed(), j.L.Clock(), j.L.Workers(), j.L.Attempts(), j.L.Stats()} {
		ops = append(ops, &zk.CreateRequest{Path: p, Acl: j.acl})
	}
	ctx, cancel := context.WithTimeout(context.Background(), createPatience)
	defer cancel()
	for {
		at, err := j.multi(ops...)
		switch {
		case err == nil:
			return nil
		case at == 0 && errors.Is(err, zk.ErrNodeExists):
			// Ours, if an earlier try whose reply was lost was applied:
			// the filler, ephemeral to this session, says so.
			if mine, _ := j.ownsFiller(ctx); mine {
				return nil
			}
			return j.describeExisting()
		case !Transient(err):
			return j.createErr(path.Dir(j.L.Root), err)
		}
		if perr := pause(ctx); perr != nil {
			return fmt.Errorf("creating %s: %w (gave up: %w)", j.L.Root, err, perr)
		}
	}
}

// createErr explains a failed create under parent: refused, it names
// whose parent it is.
func (j *Job) createErr(parent string, err error) error {
	if !errors.Is(err, zk.ErrNoAuth) {
		return fmt.Errorf("creating %s: %w", j.L.Root, err)
	}
	owners := "another identity"
	if acl, _, aerr := j.conn.GetACL(parent); aerr == nil {
		owners = Owners(acl)
	}
	return fmt.Errorf("%w: %s belongs to %s, and %s may not create %s under it; choose a --root of your own (the recipes use /zkdog/$(id -un)/...)",
		ErrNoAccess, parent, owners, j.access.Identity(), j.L.Root)
}

// createPatience bounds how long creating a job rides out a connection
// that drops: a leader election takes under a second.
const createPatience = time.Minute

// ownsFiller reports whether the filler exists and belongs to this
// handle's session.
func (j *Job) ownsFiller(ctx context.Context) (bool, error) {
	var st *zk.Stat
	err := retry(ctx, func() (err error) { st, err = j.stat(j.L.Filler()); return })
	return err == nil && st != nil && st.EphemeralOwner == j.session(), err
}

func (j *Job) describeExisting() error {
	b, _, err := j.conn.Get(j.L.Root)
	if err != nil {
		return fmt.Errorf("%w at %s", ErrExists, j.L.Root)
	}
	spec, err := protocol.DecodeJob(b)
	if err != nil {
		return fmt.Errorf("%w: %s exists and is not a zkdog job; choose another --root", ErrExists, j.L.Root)
	}
	return fmt.Errorf("%w at %s (state %s, %d items); wait for it, or remove it with zkdog clear", ErrExists, j.L.Root, spec.State, spec.Items)
}

// createParents creates the missing parents of the root and returns the
// ones it created, deepest last.
func (j *Job) createParents() ([]string, error) {
	dir := path.Dir(j.L.Root)
	if dir == "/" {
		return nil, nil
	}
	var created []string
	p := ""
	for _, part := range strings.Split(strings.TrimPrefix(dir, "/"), "/") {
		p += "/" + part
		_, err := j.conn.Create(p, nil, 0, j.acl)
		if err == nil {
			created = append(created, p)
		}
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			j.removeParents(created)
			return nil, j.createErr(path.Dir(p), err)
		}
		if err != nil {
			if err := j.notAJob(p); err != nil {
				return nil, err
			}
		}
	}
	return created, nil
}

// notAJob refuses a parent that is a job: a job inside another's tree
// would hang that job's master (its leases or timers gain a child it
// cannot read) and be deleted with it.
func (j *Job) notAJob(p string) error {
	b, _, err := j.conn.Get(p)
	if err == nil && protocol.LooksLikeJob(b) {
		return fmt.Errorf("%w: %s is inside the job at %s; choose a --root outside every job, such as %s-2", ErrNested, j.L.Root, p, p)
	}
	return nil
}

// removeParents deletes the parents a failed creation made, deepest
// first; one another job has come to use meanwhile stays.
func (j *Job) removeParents(created []string) {
	for i := len(created) - 1; i >= 0; i-- {
		if err := j.conn.Delete(created[i], -1); err != nil {
			return
		}
	}
}

func (j *Job) fill(ctx context.Context, spec protocol.Job, items [][]byte, origins []int, progress Progress) error {
	// Buckets first, and waited for: concurrent requests from several
	// goroutines reach the server in no particular order.
	dirs := &batcher{job: j, ctx: ctx}
	starts := make([][]int, protocol.Buckets(len(items)))
	for b := range starts {
		lo := b * protocol.BucketSize
		starts[b] = protocol.ChunkStarts(items, lo, lo+protocol.BucketLen(len(items), b))
		dirs.create(j.L.ItemBucket(b), protocol.EncodeItemBucket(starts[b], bucketOrigins(origins, b)), 0)
		dirs.create(j.L.ResultBucket(b), encodeOrigins(bucketOrigins(origins, b)), 0)
		dirs.create(j.L.AttemptBucket(b), nil, 0)
	}
	if err := dirs.wait(); err != nil {
		return fmt.Errorf("creating buckets: %w", err)
	}
	bt := &batcher{job: j, ctx: ctx, total: len(items), progress: progress}
	for b, cs := range starts {
		end := protocol.BucketLen(len(items), b) + b*protocol.BucketSize
		for k, first := range cs {
			next := end
			if k+1 < len(cs) {
				next = cs[k+1]
			}
			bt.create(j.L.Chunk(first), protocol.EncodeChunk(items[first:next]), next-first)
		}
	}
	if spec.Sync {
		bt.create(j.L.Sync(), []byte("sync"), 0)
	}
	if err := bt.wait(); err != nil {
		return fmt.Errorf("writing items: %w", err)
	}
	if err := context.Cause(ctx); ctx.Err() != nil {
		return err
	}
	return j.markReady(spec)
}

// bucketOrigins is the origins of bucket b's items, nil for a job that is
// not a re-run. Both the item and the result bucket carry them, since a
// sealed job keeps only one of them for an item.
func bucketOrigins(origins []int, b int) []int {
	if origins == nil {
		return nil
	}
	lo := b * protocol.BucketSize
	return origins[lo:min(lo+protocol.BucketSize, len(origins))]
}

func encodeOrigins(origins []int) []byte {
	if origins == nil {
		return nil
	}
	return protocol.EncodeOrigins(origins)
}

// markReady switches the job to ready and deletes the filler in one
// transaction. A try whose reply was lost may have been applied: the
// state then says so, and the job is not removed for it.
func (j *Job) markReady(spec protocol.Job) error {
	spec.State = protocol.StateReady
	ctx, cancel := context.WithTimeout(context.Background(), createPatience)
	defer cancel()
	ops := []any{
		&zk.SetDataRequest{Path: j.L.Root, Data: protocol.Encode(spec), Version: -1},
		&zk.DeleteRequest{Path: j.L.Filler(), Version: -1},
	}
	repeated := false
	err := retry(ctx, func() error {
		_, err := j.multi(ops...)
		repeated = repeated || Transient(err)
		return err
	})
	if err != nil && repeated && errors.Is(err, zk.ErrNoNode) {
		if now, serr := j.Spec(); serr == nil && now.State == protocol.StateReady {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("marking %s ready: %w", j.L.Root, err)
	}
	return nil
}

// batcher groups creates into Multis and keeps a few in flight. The
// batches may reach the server in any order, so a batch must not depend on
// another of the same wait. Once ctx is done no more batches are sent, so
// a fill stops within the few batches in flight.
type batcher struct {
	job      *Job
	ctx      context.Context
	ops      []any
	bytes    int
	sem      chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	err      error
	total    int
	written  int
	progress Progress
	// items counts the items the ops not yet sent carry, for progress.
	items int
}

// create adds a create of p to the next batch; items is how many items
// it writes, for progress.
func (b *batcher) create(p string, data []byte, items int) {
	size := len(p) + len(data) + perOpOverhead
	if len(b.ops) >= batchOps || b.bytes+size > batchBytes {
		b.flush()
	}
	b.ops = append(b.ops, &zk.CreateRequest{Path: p, Data: data, Acl: b.job.acl})
	b.bytes += size
	b.items += items
}

func (b *batcher) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil && b.ctx.Err() != nil {
		b.err = context.Cause(b.ctx)
	}
	return b.err
}

func (b *batcher) flush() {
	if len(b.ops) == 0 || b.failed() != nil {
		b.ops, b.bytes, b.items = nil, 0, 0
		return
	}
	if b.sem == nil {
		b.sem = make(chan struct{}, fillPipelined)
	}
	ops, items := b.ops, b.items
	b.ops, b.bytes, b.items = nil, 0, 0
	b.sem <- struct{}{}
	b.wg.Add(1)
	go func() {
		defer func() { <-b.sem; b.wg.Done() }()
		_, err := b.job.multi(ops...)
		b.done(items, err)
	}()
}

// done accounts for a batch sent.
func (b *batcher) done(n int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil && b.err == nil {
		b.err = err
	}
	if err == nil {
		b.written += n
		if b.progress != nil {
			b.progress(min(b.written, b.total), b.total)
		}
	}
}

func (b *batcher) wait() error {
	b.flush()
	b.wg.Wait()
	return b.failed()
}
