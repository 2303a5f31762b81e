package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkproxy"
	"github.com/zkdog/zkdog/internal/zktest"
	"github.com/zkdog/zkdog/worker"
)

// consumeFaultGuard bounds the waits of the fault tests here; it guards
// against a hang, it is no performance assertion.
const consumeFaultGuard = 30 * time.Second

// TestFaultConsumeLostReply: the old Consume gave up when the reply to its
// result transaction was lost, although the server had recorded the item
// done; zkdog consume then exited 6 without printing the item, which
// nobody would ever be handed again: lost.
func TestFaultConsumeLostReply(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	p := zkproxy.ForTest(t, srv.Addr())
	l := protocol.Layout{Root: "/fault/consume"}
	direct := zktest.Connect(t, srv.Addr())
	mj := job.New(direct, l)
	if err := mj.Create(protocol.Job{TimerMillis: 60_000}, [][]byte{[]byte("the only item")}); err != nil {
		t.Fatal(err)
	}

	// The proxy's address twice: the client redials at once.
	wj := job.New(zktest.Connect(t, p.Addr(), p.Addr()), l)
	lost := p.DropReply(zkproxy.Match{Op: zkproxy.OpMulti, Path: l.Results() + "/"})
	c, err := worker.Consume(t.Context(), wj, "script-1")
	select {
	case <-lost.Fired():
	case <-time.After(consumeFaultGuard):
		t.Fatal("the result's reply was never withheld")
	}
	if err != nil {
		t.Fatalf("Consume with the result's reply lost = %v; the item, recorded done, would never be printed", err)
	}
	if c.Index != 0 || string(c.Data) != "the only item" {
		t.Fatalf("Consume = item %d %q, want item 0 %q", c.Index, c.Data, "the only item")
	}

	// Exactly one result, ok, read past the proxy.
	names, _, err := direct.Children(l.ResultBucket(0))
	if err != nil {
		t.Fatal(err)
	}
	var results []string
	for _, n := range names {
		if strings.HasPrefix(n, protocol.ResultName(0, "")) {
			results = append(results, n)
		}
	}
	if len(results) != 1 || results[0] != protocol.ResultName(0, protocol.OK) {
		t.Fatalf("results of item 0: %v, want exactly [%s]", results, protocol.ResultName(0, protocol.OK))
	}
	if _, st, err := direct.Exists(l.Done()); err != nil || st.Version != 1 {
		t.Fatalf("done counter: %+v, %v; want 1", st, err)
	}
}
