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
// record one item on a world-open job with no identity, on a job private
// to a digest identity, and over TLS with a digest identity, against one
// server (TLS on its secure port). The three take turns item by item, so
// that a slow spell of a shared machine, or the server's JIT warming up,
// falls on all of them alike; the figures are each one's microseconds per
// item and its ratio to the open job's.
//
//	go test -run '^$' -bench TakeRecord -benchtime 2000x ./internal/job/
func BenchmarkTakeRecord(b *testing.B) {
	ca := zktest.NewCA(b)
	srv := zktest.Standalone(b, zktest.WithTLS(ca.Issue(b, "zk", "", "127.0.0.1"), ca, zkserver.ClientAuthNeed))
	alice := ca.Issue(b, "alice", "hpc")
	digest := job.Access{DigestUser: "alice", DigestSecret: "s3cret-s3cret-s3cret-s3cret"}
	sides := []*benchSide{
		{name: "open", addr: srv.Addr()},
		{name: "digest", addr: srv.Addr(), access: &digest},
		{name: "tls", addr: srv.SecureAddr(), access: &digest, opts: []zkconn.Option{zkconn.WithTLS(ca.ClientTLS(alice))}},
	}
	for _, s := range sides {
		s.start(b, b.N)
	}
	b.ResetTimer()
	for range b.N {
		for _, s := range sides {
			s.one(b)
		}
	}
	b.StopTimer()
	base := sides[0].took.Seconds()
	for _, s := range sides {
		b.ReportMetric(float64(s.took.Microseconds())/float64(b.N), "µs/item-"+s.name)
		b.ReportMetric(s.took.Seconds()/base, "x-"+s.name)
		b.ReportMetric(float64(s.connect.Microseconds())/1000, "ms-connect-"+s.name)
	}
}

// benchSide is one worker of BenchmarkTakeRecord, on a job of its own.
type benchSide struct {
	name    string
	addr    string
	access  *job.Access
	opts    []zkconn.Option
	j       *job.Job
	spec    protocol.Job
	lease   protocol.Lease
	took    time.Duration
	connect time.Duration
}

var benchRuns int // the testing package runs a benchmark once per b.N it tries

func (s *benchSide) start(b *testing.B, n int) {
	benchRuns++
	dialed := time.Now()
	sess, err := zkconn.Dial(b.Context(), s.addr, 10*time.Second, nil, s.opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sess.Close)
	var jopts []job.Option
	if s.access != nil {
		jopts = append(jopts, job.WithAccess(*s.access))
	}
	s.j = job.New(sess.Conn(), protocol.Layout{Root: fmt.Sprintf("/bench/%s-%d", s.name, benchRuns)}, jopts...)
	if err := s.j.Authenticate(); err != nil {
		b.Fatal(err)
	}
	s.connect = time.Since(dialed)
	items := make([][]byte, n)
	for i := range items {
		items[i] = fmt.Appendf(nil, "/scratch/input/sample-%07d.dat", i)
	}
	if err := s.j.Create(protocol.Job{TimerMillis: 60_000}, items); err != nil {
		b.Fatal(err)
	}
	p, err := s.j.CreateTimer(protocol.Timer{ID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if s.spec, err = s.j.Spec(); err != nil {
		b.Fatal(err)
	}
	s.lease = protocol.Lease{Timer: path.Base(p), ID: "bench"}
}

func (s *benchSide) one(b *testing.B) {
	ctx := context.Background()
	t := time.Now()
	c, err := s.j.Take(ctx, s.spec, s.lease)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.j.Record(ctx, c, protocol.Result{Outcome: protocol.OK}); err != nil {
		b.Fatal(err)
	}
	s.took += time.Since(t)
}
