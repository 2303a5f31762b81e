package job_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zktest"
)

// TestQueuedItemsCostNoZnodes: a queued item is bytes in its bucket's
// chunk, not a znode; its turn node appears with its first lease, and the
// worker gets the item's exact bytes, long ones split across chunks
// included.
func TestQueuedItemsCostNoZnodes(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	const root = "/chunks/job"
	j := newJob(t, conn, root)
	its := items(protocol.BucketSize + 10)
	// Bucket 1 gets items large enough to need several chunks.
	for i := protocol.BucketSize; i < len(its); i++ {
		its[i] = append(bytes.Repeat([]byte{byte(i), 0, '\n'}, protocol.MaxItemBytes/3), byte(i))
	}
	if err := j.Create(spec(), its); err != nil {
		t.Fatal(err)
	}
	for b, want := range map[int]int{0: 1, 1: 10} {
		kids, _, err := conn.Children(j.L.ItemBucket(b))
		if err != nil {
			t.Fatal(err)
		}
		if len(kids) != want {
			t.Errorf("bucket %d of a queued job has %d children %v, want %d chunks and no turn nodes", b, len(kids), kids, want)
		}
	}

	s, err := j.Spec()
	if err != nil {
		t.Fatal(err)
	}
	lease := workerLease(t, j, "w")
	var got []int
	for range len(its) {
		c, err := j.Take(t.Context(), s, lease)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.Data, its[c.Index]) {
			t.Fatalf("item %d came back as %d bytes, want its %d", c.Index, len(c.Data), len(its[c.Index]))
		}
		if ok, _, err := conn.Exists(j.L.Item(c.Index)); err != nil || !ok {
			t.Fatalf("item %d is leased but has no turn node (%v)", c.Index, err)
		}
		got = append(got, c.Index)
	}
	if !slices.IsSorted(got) || len(got) != len(its) {
		t.Errorf("took %v, want every item once in order", got)
	}
}
