package job_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zktest"
)

// BenchmarkSealFootprint measures what a sealed job leaves in ZooKeeper:
// a job of 100,000 items of which 10 failed (each with 2 KiB of error
// output), drained by 16 workers and sealed; the znodes and bytes of data
// left, and the time the seal took. Run it once:
//
//	go test -run '^$' -bench SealFootprint -benchtime 1x ./internal/job/
func BenchmarkSealFootprint(b *testing.B) {
	const n, failures, workers = 100_000, 10, 16
	srv := zktest.Standalone(b)
	conn := zktest.Connect(b, srv.Addr())
	j := newJob(b, conn, "/bench/seal")
	if err := j.Create(spec(), items(n)); err != nil {
		b.Fatal(err)
	}
	s, _ := j.Spec()
	stderr := strings.Repeat("work.sh: cannot read input\n", protocol.DefaultStderrBytes/27)
	var wg sync.WaitGroup
	for w := range workers {
		wj := newJob(b, zktest.Connect(b, srv.Addr()), "/bench/seal")
		lease := workerLease(b, wj, fmt.Sprint(w))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := wj.Take(b.Context(), s, lease)
				if err != nil {
					return // the queue is empty
				}
				r := protocol.Result{Outcome: protocol.OK, DurationMillis: 10, Host: "node", ID: "task"}
				if c.Index%(n/failures) == 7 {
					r = protocol.Result{Outcome: protocol.Failed, Exit: 3, Reason: "exit status 3", Item: c.Data, Stderr: stderr, Host: "node", ID: "task"}
				}
				if err := wj.Record(b.Context(), c, r); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ResetTimer()
	started := time.Now()
	sum, err := j.Seal(b.Context(), protocol.Summary{End: "failed", Exit: 1, Host: "master"}, false)
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(started)
	b.StopTimer()
	if sum.Outcomes[protocol.Failed] != failures {
		b.Fatalf("sealed %v, want %d failed", sum.Outcomes, failures)
	}
	nodes, bytes := countTree(b, conn, "/bench/seal")
	b.ReportMetric(float64(nodes), "znodes-sealed")
	b.ReportMetric(float64(bytes), "bytes-sealed")
	b.ReportMetric(took.Seconds(), "s-to-seal")
}
