package main

import (
	"fmt"
	"strings"

	"github.com/zkdog/zkdog/internal/bench"
)

// heapItemBytes is the item size the heap goal is stated for: a path to
// an input file, as array jobs' items usually are.
const heapItemBytes = 60

// pathItems is n distinct items of exactly size bytes, shaped like input
// paths.
func pathItems(n, size int) [][]byte {
	items := make([][]byte, n)
	for i := range items {
		it := fmt.Sprintf("/scratch/run42/inputs/sample-%08d.fastq.gz", i)
		if pad := size - len(it); pad > 0 {
			it = "/scratch/" + strings.Repeat("p", pad) + it[len("/scratch"):]
		}
		items[i] = []byte(it[:min(len(it), size)])
	}
	return items
}

// heap measures what a queued item costs ZooKeeper's heap: the live heap
// (after a full collection) before and after filling a job of HeapItems
// items of 60 bytes, against the same for one znode per item (the layout
// of protocol 3 and earlier, written raw), both in the same server. It
// needs the JDK's jcmd.
func (e *env) heap() []bench.Row {
	n, raw := e.sz.HeapItems, e.sz.HeapRawItems
	metric := fmt.Sprintf("ZooKeeper live heap per queued item: a %s-item job of %d-byte items (zkdog) vs one znode per item (%s raw creates)",
		bench.Count(n), heapItemBytes, bench.Count(raw))
	items := pathItems(n, heapItemBytes)
	root := benchRoot + "/heap"
	before, err := e.settledHeap()
	if err != nil {
		return []bench.Row{bench.Failed(metric, fmt.Errorf("reading the server's heap (needs the JDK's jcmd): %w", err))}
	}
	if _, _, err := e.createJob(root, items, defaultTimer); err != nil {
		return []bench.Row{bench.Failed(metric, err)}
	}
	defer e.cleanup(root)
	filled, err := e.settledHeap()
	if err != nil {
		return []bench.Row{bench.Failed(metric, err)}
	}
	rawRoot := benchRoot + "/heap-raw"
	if _, err := rawFill(e.conn(), rawRoot, items[:raw], 100, 8); err != nil {
		return []bench.Row{bench.Failed(metric, err)}
	}
	defer e.cleanup(rawRoot)
	rawFilled, err := e.settledHeap()
	if err != nil {
		return []bench.Row{bench.Failed(metric, err)}
	}
	per := float64(used(filled)-used(before)) / float64(n)
	perRaw := float64(used(rawFilled)-used(filled)) / float64(raw)
	return []bench.Row{{
		Metric:   metric,
		Zkdog:    &bench.Figure{Value: per, Unit: "B/item"},
		Baseline: &bench.Figure{Value: perRaw, Unit: "B/item"},
		Ratio:    per / perRaw,
		Goal:     bench.AtMost(150, "B/item"),
		Notes: []string{
			fmt.Sprintf("live heap: %s before; %s with the job; %s with the raw znodes too", before, filled, rawFilled),
			"ratio = zkdog / one znode per item; each figure is the growth of the live heap over its items",
			fmt.Sprintf("before each reading, %d small writes push the fill's transactions out of the server's in-memory log of its last 500 (commitLogCount): a fixed cost of at most 500 requests, not of the items", commitLogFlush),
		},
	}}
}

func used(h heapUse) int64 { return h.YoungUsed + h.OldUsed }

// commitLogFlush is more writes than a server keeps in its log of recent
// transactions (commitLogCount, 500 by default).
const commitLogFlush = 600

// settledHeap is the server's live heap once the transactions of whatever
// came before have left its in-memory log, so that the figure is the data
// tree's.
func (e *env) settledHeap() (heapUse, error) {
	p := benchRoot + "/heap-flush"
	if err := e.ensure(p); err != nil {
		return heapUse{}, err
	}
	for range commitLogFlush {
		if _, err := e.conn().Set(p, nil, -1); err != nil {
			return heapUse{}, fmt.Errorf("flushing the commit log: %w", err)
		}
	}
	if err := e.conn().Delete(p, -1); err != nil {
		return heapUse{}, fmt.Errorf("flushing the commit log: %w", err)
	}
	return liveHeap(e.ctx, e.srv.Pid())
}
