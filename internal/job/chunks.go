package job

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// An item's bytes live in its bucket's chunks, which never change once
// the job is ready, so a handle reads each bucket record and chunk once
// and keeps the few it used last: a worker takes items in ticket order, a
// report reads them in index order, and either way one chunk serves a
// thousand items. A worker of a million-item job keeps kilobytes, not the
// job.

// chunkCacheSize is how many chunks a handle keeps. A few: concurrent
// readers (a report's 32) work on neighbouring items, and a worker's
// ticket and retry items may sit in different chunks.
const chunkCacheSize = 8

type chunkCache struct {
	mu    sync.Mutex
	order []string // oldest first
	items map[string][][]byte
}

func (c *chunkCache) get(p string) ([][]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	items, ok := c.items[p]
	return items, ok
}

func (c *chunkCache) put(p string, items [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items = make(map[string][][]byte)
	}
	if _, ok := c.items[p]; ok {
		return
	}
	if len(c.order) == chunkCacheSize {
		delete(c.items, c.order[0])
		c.order = c.order[1:]
	}
	c.order = append(c.order, p)
	c.items[p] = items
}

// itemBucket reads item bucket b's record, once per handle.
func (j *Job) itemBucket(ctx context.Context, b int) (protocol.ItemBucket, error) {
	p := j.L.ItemBucket(b)
	if got, ok := j.buckets.Load(p); ok {
		return got.(protocol.ItemBucket), nil
	}
	var data []byte
	if err := retry(ctx, func() (err error) { data, _, err = j.conn.Get(p); return }); err != nil {
		return protocol.ItemBucket{}, fmt.Errorf("reading %s: %w", p, err)
	}
	ib, err := protocol.DecodeItemBucket(data, b)
	if err != nil {
		j.unreadable(p, err)
		return ib, fmt.Errorf("reading %s: %w", p, err)
	}
	j.buckets.Store(p, ib)
	return ib, nil
}

// item reads item index's bytes from its chunk. zk.ErrNoNode (wrapped)
// when its bucket or chunk is gone: the job was removed, or sealed with
// the item's result.
func (j *Job) item(ctx context.Context, index int) ([]byte, error) {
	ib, err := j.itemBucket(ctx, protocol.Bucket(index))
	if err != nil {
		return nil, err
	}
	first := ib.ChunkOf(index)
	items, err := j.chunk(ctx, first)
	if err != nil {
		return nil, err
	}
	if k := index - first; k < len(items) {
		return items[k], nil
	}
	err = fmt.Errorf("chunk %s holds %d items, not item %d", j.L.Chunk(first), len(items), index)
	j.unreadable(j.L.Chunk(first), err)
	return nil, err
}

func (j *Job) chunk(ctx context.Context, first int) ([][]byte, error) {
	p := j.L.Chunk(first)
	if items, ok := j.chunks.get(p); ok {
		return items, nil
	}
	var data []byte
	if err := retry(ctx, func() (err error) { data, _, err = j.conn.Get(p); return }); err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	items, err := protocol.DecodeChunk(data)
	if err != nil {
		j.unreadable(p, err)
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	j.chunks.put(p, items)
	return items, nil
}

// ItemText reads item index's bytes; nil, without an error, when they are
// gone (a sealed job keeps a finished item's bytes in its result, if at
// all).
func (j *Job) ItemText(ctx context.Context, index int) ([]byte, error) {
	b, err := j.item(ctx, index)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	return b, err
}

// turnCount reads item index's turn count (protocol.TurnCount).
func (j *Job) turnCount(ctx context.Context, index int) (int32, error) {
	var st *zk.Stat
	if err := retry(ctx, func() (err error) { st, err = j.stat(j.L.Item(index)); return }); err != nil {
		return 0, fmt.Errorf("reading item %d: %w", index, err)
	}
	if st == nil {
		return protocol.TurnCount(false, 0), nil
	}
	return protocol.TurnCount(true, st.Version), nil
}

// advanceTurn is the operation that moves item index's turn count from n
// to n+1, and fails unless it is n: the first step creates the turn node,
// which fails if it exists.
func (j *Job) advanceTurn(index int, n int32) any {
	if n == 0 {
		return &zk.CreateRequest{Path: j.L.Item(index), Acl: j.acl}
	}
	return &zk.SetDataRequest{Path: j.L.Item(index), Version: protocol.NodeVersion(n)}
}

// checkTurn is the operations that fail unless item index's turn count is
// n. ZooKeeper has no check for absence, so for 0 the turn node is
// created and deleted again within the transaction.
func (j *Job) checkTurn(index int, n int32) []any {
	if n == 0 {
		return []any{
			&zk.CreateRequest{Path: j.L.Item(index), Acl: j.acl},
			&zk.DeleteRequest{Path: j.L.Item(index), Version: 0},
		}
	}
	return []any{&zk.CheckVersionRequest{Path: j.L.Item(index), Version: protocol.NodeVersion(n)}}
}
