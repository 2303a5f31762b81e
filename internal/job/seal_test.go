package job_test

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zktest"
)

// countTree counts the znodes at and below p, and the bytes of their data.
func countTree(t testing.TB, conn *zk.Conn, p string) (nodes, bytes int) {
	t.Helper()
	b, _, err := conn.Get(p)
	if err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	nodes, bytes = 1, len(b)
	kids, _, err := conn.Children(p)
	if err != nil {
		t.Fatalf("listing %s: %v", p, err)
	}
	for _, k := range kids {
		n, s := countTree(t, conn, path.Join(p, k))
		nodes, bytes = nodes+n, bytes+s
	}
	return nodes, bytes
}

// TestSealKeepsWhatDidNotSucceed: a job of three buckets where two items
// fail, one is lost and two never run; sealed, it keeps its root, the
// three results that are not ok (with their items' text and error output)
// and the two items without a result, and nothing else. A worker still
// holding an item learns the job is finished when it records, and a late
// one when it takes.
func TestSealKeepsWhatDidNotSucceed(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	const root, n = "/seal/job", 2*protocol.BucketSize + 10
	j := newJob(t, conn, root)
	if err := j.Create(spec(), items(n)); err != nil {
		t.Fatal(err)
	}
	s, err := j.Spec()
	if err != nil {
		t.Fatal(err)
	}
	lease := workerLease(t, j, "w")
	failed := map[int]bool{5: true, 2005: true}
	var inFlight job.Claim
	for k := range n - 2 {
		c, err := j.Take(t.Context(), s, lease)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case k == n-3:
			inFlight = c // still running when the job is sealed
		case c.Index == 7:
			if err := j.RecordLost(c.Turn, true, "its worker vanished"); err != nil {
				t.Fatal(err)
			}
		case failed[c.Index]:
			r := protocol.Result{Outcome: protocol.Failed, Exit: 3, Item: c.Data, Stderr: fmt.Sprintf("no such file: item-%d\n", c.Index)}
			if err := j.Record(t.Context(), c, r); err != nil {
				t.Fatal(err)
			}
		default:
			if err := j.Record(t.Context(), c, protocol.Result{Outcome: protocol.OK}); err != nil {
				t.Fatal(err)
			}
		}
	}

	sum, err := j.Seal(t.Context(), protocol.Summary{End: "failed", Exit: 1, Host: "h"}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[protocol.Outcome]int{protocol.OK: n - 6, protocol.Failed: 2, protocol.Lost: 1, protocol.Unfinished: 3}
	if !mapsEqual(sum.Outcomes, want) {
		t.Fatalf("sealed summary counts %v, want %v", sum.Outcomes, want)
	}
	got, err := j.Spec()
	if err != nil || got.State != protocol.StateFinished || got.Summary == nil || got.Summary.Exit != 1 || !mapsEqual(got.Summary.Outcomes, want) {
		t.Fatalf("sealed job record = %+v, %v; want finished with the summary", got, err)
	}

	// Root, items, results, two result buckets with a failure, their
	// three results, one item bucket with its chunk (the three unfinished
	// items' bytes) and the turn node of the item still in flight.
	nodes, bytes := countTree(t, conn, root)
	if nodes != 1+2+2+3+1+1+1 {
		t.Errorf("the sealed job has %d znodes (%d bytes of data), want 11", nodes, bytes)
	}

	if err := j.Record(t.Context(), inFlight, protocol.Result{Outcome: protocol.OK}); !errors.Is(err, job.ErrFinished) {
		t.Errorf("recording after the seal: %v, want ErrFinished", err)
	}
	late := newJob(t, zktest.Connect(t, srv.Addr()), root)
	_, err = late.AwaitReady(t.Context(), time.Second)
	var fe *job.FinishedError
	if !errors.As(err, &fe) || fe.Summary.Exit != 1 {
		t.Errorf("a late worker's AwaitReady: %v, want a FinishedError with exit 1", err)
	}
	if _, err := j.Take(t.Context(), s, lease); !errors.Is(err, job.ErrFinished) {
		t.Errorf("taking after the seal: %v, want ErrFinished", err)
	}

	rows, err := j.Rows(t.Context(), func(o protocol.Outcome) bool { return o != protocol.OK })
	if err != nil {
		t.Fatal(err)
	}
	var idx []int
	for _, r := range rows {
		idx = append(idx, r.Index)
		if want := fmt.Sprintf("item-%d", r.Index); string(r.Item) != want {
			t.Errorf("row %d has item %q, want %q", r.Index, r.Item, want)
		}
		if r.Origin != r.Index {
			t.Errorf("row %d has origin %d", r.Index, r.Origin)
		}
		if failed[r.Index] && (r.Result.Exit != 3 || r.Result.Stderr != fmt.Sprintf("no such file: item-%d\n", r.Index) || r.Started.IsZero()) {
			t.Errorf("failed row %+v lacks its exit, error output or start", r)
		}
	}
	wantIdx := []int{5, 7, 2005, inFlight.Index, n - 2, n - 1}
	slices.Sort(wantIdx)
	if !slices.Equal(idx, wantIdx) {
		t.Errorf("rows of the sealed job: %v, want %v", idx, wantIdx)
	}

	// Sealing again (a second master) leaves it as it is.
	if _, err := j.Seal(t.Context(), protocol.Summary{End: "failed", Exit: 1}, false); err != nil {
		t.Fatalf("sealing again: %v", err)
	}
	if again, _ := countTree(t, conn, root); again != nodes {
		t.Errorf("sealing again left %d znodes, want %d", again, nodes)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestSealKeep: with keep, the whole tree stays; only the state changes.
func TestSealKeep(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	j := newJob(t, conn, "/seal/keep")
	if err := j.Create(spec(), items(3)); err != nil {
		t.Fatal(err)
	}
	before, _ := countTree(t, conn, "/seal/keep")
	sum, err := j.Seal(t.Context(), protocol.Summary{End: "hung", Exit: 3}, true)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := countTree(t, conn, "/seal/keep"); after != before || !sum.Kept || sum.Outcomes[protocol.Unfinished] != 3 {
		t.Errorf("kept seal: %d znodes (was %d), summary %+v", after, before, sum)
	}
	if _, err := newJob(t, conn, "/seal/keep").AwaitReady(t.Context(), time.Second); !errors.Is(err, job.ErrFinished) {
		t.Errorf("AwaitReady on a kept sealed job: %v, want ErrFinished", err)
	}
}

// TestFillFromKeepsOrigins: a job made of another's items names each by
// its first index, in its results and its unfinished rows alike.
func TestFillFromKeepsOrigins(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	j := newJob(t, conn, "/seal/rerun")
	origins := []int{4, 17, 1500}
	if err := j.FillFrom(t.Context(), spec(), items(3), origins, nil); err != nil {
		t.Fatal(err)
	}
	s, _ := j.Spec()
	c, err := j.Take(t.Context(), s, workerLease(t, j, "w"))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Record(t.Context(), c, protocol.Result{Outcome: protocol.Failed, Exit: 1, Item: c.Data}); err != nil {
		t.Fatal(err)
	}
	rows, err := j.Rows(t.Context(), func(protocol.Outcome) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, r := range rows {
		got = append(got, r.Origin)
	}
	if !slices.Equal(got, origins) || rows[0].Outcome != protocol.Failed || rows[1].Outcome != protocol.Unfinished {
		t.Errorf("rows %+v: origins %v, want %v", rows, got, origins)
	}
	if err := j.FillFrom(t.Context(), spec(), items(2), []int{1}, nil); err == nil {
		t.Error("FillFrom with fewer origins than items succeeded")
	}
}

// TestNestedJobs: a job is never made inside another's tree, and removing
// a job never silently removes one someone made inside it by hand.
func TestNestedJobs(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	outer := newJob(t, conn, "/nest/j2")
	if err := outer.Create(spec(), items(2)); err != nil {
		t.Fatal(err)
	}
	inner := newJob(t, conn, "/nest/j2/leases/zz")
	if err := inner.Create(spec(), items(1)); !errors.Is(err, job.ErrNested) {
		t.Fatalf("creating a job inside another: %v, want ErrNested", err)
	}
	if ok, _, _ := conn.Exists("/nest/j2/leases/zz"); ok {
		t.Error("the refused job left its root")
	}
	// One made by hand (or by an older zkdog) under the job's leases.
	rec := protocol.Encode(protocol.Job{Protocol: protocol.Version, State: protocol.StateReady})
	if _, err := conn.Create("/nest/j2/leases/zz", rec, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if err := outer.Remove(); !errors.Is(err, job.ErrNested) {
		t.Fatalf("removing a job with a job inside: %v, want ErrNested", err)
	}
	if ok, _, _ := conn.Exists("/nest/j2/leases/zz"); !ok {
		t.Error("the nested job was removed")
	}
}

// TestListJobs: jobs are found at any depth under a prefix, with their
// state and counts, and nothing inside a job is taken for another.
func TestListJobs(t *testing.T) {
	srv := zktest.Standalone(t)
	conn := zktest.Connect(t, srv.Addr())
	for _, r := range []string{"/list/a", "/list/deep/b", "/other/c"} {
		if err := newJob(t, conn, r).Create(spec(), items(2)); err != nil {
			t.Fatal(err)
		}
	}
	b := newJob(t, conn, "/list/deep/b")
	s, _ := b.Spec()
	c, err := b.Take(t.Context(), s, workerLease(t, b, "w"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Record(t.Context(), c, protocol.Result{Outcome: protocol.Failed, Exit: 2, Item: c.Data}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Seal(t.Context(), protocol.Summary{End: "failed", Exit: 1}, false); err != nil {
		t.Fatal(err)
	}
	got, err := job.List(t.Context(), conn, "/list")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Root != "/list/a" || got[1].Root != "/list/deep/b" {
		t.Fatalf("List(/list) = %+v, want /list/a and /list/deep/b", got)
	}
	if got[0].Spec.State != protocol.StateReady || got[0].Done != 0 {
		t.Errorf("live job listed as %+v", got[0])
	}
	if !got[1].Sealed() || got[1].Done != 1 || got[1].Failed != 1 || got[1].Workers != 1 {
		t.Errorf("sealed job listed as %+v, want finished, 1 done, 1 failed, 1 worker", got[1])
	}
	all, err := job.List(t.Context(), conn, "/")
	if err != nil || len(all) != 3 {
		t.Errorf("List(/) = %d jobs, %v; want 3", len(all), err)
	}
}
