package job_test

import (
	"context"
	"fmt"
	"path"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/internal/zktest"
)

// BenchmarkTakeRecord measures what security costs a worker: take and
// record one item, on a world-open job with no identity, on a job private
// to a digest identity, and over TLS with a digest identity, side by side
// against one server (TLS on its secure port); the ratios to "open" are
// the figures. Each sub-benchmark works
// its own job of b.N items; ns/op is one take plus one record.
//
//	go test -run '^$' -bench TakeRecord -benchtime 2000x ./internal/job/
func BenchmarkTakeRecord(b *testing.B) {
	ca := zktest.NewCA(b)
	srv := zktest.Standalone(b, zktest.WithTLS(ca.Issue(b, "zk", "", "127.0.0.1"), ca, zkserver.ClientAuthNeed))
	alice := ca.Issue(b, "alice", "hpc")
	digest := job.Access{DigestUser: "alice", DigestSecret: "s3cret-s3cret-s3cret-s3cret"}
	for _, c := range []struct {
		name   string
		addr   string
		access *job.Access
		tls    bool
	}{
		{"open", srv.Addr(), nil, false},
		{"digest", srv.Addr(), &digest, false},
		{"tls-digest", srv.SecureAddr(), &digest, true},
	} {
		runs := 0
		b.Run(c.name, func(b *testing.B) {
			runs++ // the testing package calls this once per b.N it tries
			var opts []zkconn.Option
			if c.tls {
				opts = append(opts, zkconn.WithTLS(ca.ClientTLS(alice)))
			}
			dialed := time.Now()
			sess, err := zkconn.Dial(b.Context(), c.addr, 10*time.Second, nil, opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer sess.Close()
			var jopts []job.Option
			if c.access != nil {
				jopts = append(jopts, job.WithAccess(*c.access))
			}
			j := job.New(sess.Conn(), protocol.Layout{Root: fmt.Sprintf("/bench/%s-%d", c.name, runs)}, jopts...)
			if err := j.Authenticate(); err != nil {
				b.Fatal(err)
			}
			connected := time.Since(dialed)
			items := make([][]byte, b.N)
			for i := range items {
				items[i] = fmt.Appendf(nil, "/scratch/input/sample-%07d.dat", i)
			}
			if err := j.Create(protocol.Job{TimerMillis: 60_000}, items); err != nil {
				b.Fatal(err)
			}
			p, err := j.CreateTimer(protocol.Timer{ID: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			spec, err := j.Spec()
			if err != nil {
				b.Fatal(err)
			}
			lease := protocol.Lease{Timer: path.Base(p), ID: "bench"}
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				c, err := j.Take(ctx, spec, lease)
				if err != nil {
					b.Fatal(err)
				}
				if err := j.Record(ctx, c, protocol.Result{Outcome: protocol.OK}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
			b.ReportMetric(float64(connected.Microseconds())/1000, "ms-connect+auth")
		})
	}
}
