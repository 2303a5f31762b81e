package master

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"sync"
	"testing"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkproxy"
	"github.com/zkdog/zkdog/internal/zktest"
)

// BenchmarkJoblogReads measures what --joblog costs the master: the
// requests its follower sends per item, counted by a proxy in front of
// its session only, while four workers drain a job of b.N items (one in
// ten failing) and the follower writes a row for each.
//
//	go test -run '^$' -bench JoblogReads -benchtime 4000x ./master/
func BenchmarkJoblogReads(b *testing.B) {
	srv := zktest.Standalone(b)
	proxy := zkproxy.ForTest(b, srv.Addr())
	l, _ := protocol.NewLayout("/bench/joblog")
	owner := job.New(zktest.Connect(b, srv.Addr()), l)
	items := make([][]byte, b.N)
	for i := range items {
		items[i] = fmt.Appendf(nil, "item-%d", i)
	}
	if err := owner.Create(protocol.Job{TimerMillis: 60_000}, items); err != nil {
		b.Fatal(err)
	}
	spec, _ := owner.Spec()
	reads := proxy.Observe(zkproxy.Match{Path: l.Root, Times: zkproxy.Forever})
	follower := job.New(zktest.Connect(b, proxy.Addr()), l)
	jl, err := OpenJoblog(filepath.Join(b.TempDir(), "joblog.tsv"))
	if err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	followed := make(chan error, 1)
	b.ResetTimer()
	go func() { followed <- jl.Follow(ctx, follower, spec) }()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			benchWorker(b, job.New(zktest.Connect(b, srv.Addr()), l), spec, w)
		}()
	}
	wg.Wait()
	stop()
	if err := <-followed; err != nil {
		b.Fatal(err)
	}
	if err := jl.Finish(context.Background(), follower, spec); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if err := jl.Close(); err != nil {
		b.Fatal(err)
	}
	byOp := map[zkproxy.Op]int{}
	for _, r := range reads.Requests() {
		byOp[r.Op]++
	}
	n := float64(b.N)
	b.ReportMetric(float64(reads.Count())/n, "requests/item")
	b.ReportMetric(float64(byOp[zkproxy.OpGetData])/n, "getData/item")
	b.ReportMetric(float64(byOp[zkproxy.OpGetChildren]+byOp[zkproxy.OpGetChildren2])/n, "listings/item")
	b.ReportMetric(float64(byOp[zkproxy.OpExists])/n, "exists/item")
}

// benchWorker takes and records items until the queue is empty; one in
// ten fails.
func benchWorker(b *testing.B, j *job.Job, spec protocol.Job, w int) {
	p, err := j.CreateTimer(protocol.Timer{ID: fmt.Sprint(w), Host: "h", Pid: w})
	if err != nil {
		b.Error(err)
		return
	}
	lease := protocol.Lease{Timer: path.Base(p), ID: fmt.Sprint(w), Host: "h", Pid: w}
	for {
		c, err := j.Take(context.Background(), spec, lease)
		if err != nil {
			return // empty
		}
		r := protocol.Result{Outcome: protocol.OK, DurationMillis: 5}
		if c.Index%10 == 3 {
			r = protocol.Result{Outcome: protocol.Failed, Exit: 1, Item: c.Data}
		}
		if err := j.Record(context.Background(), c, r); err != nil {
			b.Error(err)
			return
		}
	}
}
