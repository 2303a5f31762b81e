package integration

import (
	"errors"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

var scaleItems = flag.Int("scale-items", 100_000, "items of TestHundredThousandItems")

// A large job is filled, drained by a few looping workers, and reported;
// no znode of it ever has more than protocol.BucketSize children and a
// chunk (an item bucket's turn nodes and the one chunk of its short
// items), far below the 10,000 the protocol promises and the ~44,000 at
// which Java clients can no longer list a node.
func TestHundredThousandItems(t *testing.T) {
	if testing.Short() {
		t.Skip("a large job takes minutes")
	}
	n := *scaleItems
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	o := opts{bin: zkdogFast}
	m := start(t, o, "master", "--root", root, "--items", writeFile(t, "items", lines(n, "input/%07d.dat")),
		"--timer", "60s", "--json", "--log-level", "warn")
	waitJob(t, conn, root)
	t.Logf("filled %d items", n)
	began := time.Now()
	var workers []*proc
	for range 4 {
		workers = append(workers, start(t, o, "run", "--root", root, "--loop", "--log-level", "warn", "--", "true"))
	}
	// The fullest node is checked while the job runs: leases and timers
	// grow with the workers, results with the items done.
	largest := largestChildCount(t, conn, root)
	waitDoneUpTo(t, 15*time.Minute, conn, root, n/2)
	largest = max(largest, largestChildCount(t, conn, root))
	for _, w := range workers {
		if code := w.waitUpTo(15 * time.Minute); code != 0 {
			t.Fatalf("a worker exited %d:\n%s", code, w.stderr.String())
		}
	}
	finished := time.Now()
	expectExit(t, m, exitOK)
	t.Logf("the master reported and sealed the job %v after the last worker", time.Since(finished).Round(time.Millisecond))
	t.Logf("4 workers drained %d items in %v", n, time.Since(began).Round(time.Millisecond))
	r := readReport(t, m)
	if r.Items != n || r.OK != n || r.Unfinished != 0 {
		t.Fatalf("report = %+v, want %d items ok", r, n)
	}
	if largest > protocol.BucketSize+1 {
		t.Fatalf("a znode of the job has %d children, over %d", largest, protocol.BucketSize+1)
	}
	t.Logf("largest child list: %d", largest)
	expectSealed(t, conn, root, 3)
}

// largestChildCount is the longest child list in the job's tree, read
// from each node's stat.
func largestChildCount(t *testing.T, conn *zk.Conn, root string) int {
	t.Helper()
	most := 0
	var walk func(p string, depth int)
	walk = func(p string, depth int) {
		kids, st, err := conn.Children(p)
		if errors.Is(err, zk.ErrNoNode) {
			return // a lease or timer that ended meanwhile
		}
		if err != nil {
			t.Fatalf("listing %s: %v", p, err)
		}
		most = max(most, int(st.NumChildren))
		if depth == 0 {
			return
		}
		for _, k := range kids {
			walk(fmt.Sprintf("%s/%s", p, k), depth-1)
		}
	}
	walk(root, 2) // root, its directories, their buckets; items are leaves
	return most
}
