package job_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zktest"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestUnreadableRecordsAreNamed: records another version, a half-removed
// job or a hand edit left are named with their path, once, and never
// taken for something else.
func TestUnreadableRecordsAreNamed(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	raw := zktest.Connect(t, srv.Addr())
	var logs syncBuf
	j := job.New(zktest.Connect(t, srv.Addr()), protocol.Layout{Root: "/unreadable"}, job.WithLog(slog.New(slog.NewTextHandler(&logs, nil))))
	if err := j.Create(protocol.Job{TimerMillis: 60_000}, [][]byte{[]byte("a"), []byte("b")}); err != nil {
		t.Fatal(err)
	}
	open := zk.WorldACL(zk.PermAll)
	for p, data := range map[string]string{
		"/unreadable/leases/not-a-turn":               "",
		"/unreadable/retry/0000000001-x-0":            "",
		"/unreadable/results/00000/junk":              "",
		"/unreadable/results/00000/0000000000.failed": `{"v":2,"outcome":"failed","exit":3`, // truncated
		"/unreadable/timers/t-0000000099":             `{"v":99}`,
	} {
		if _, err := raw.Create(p, []byte(data), 0, open); err != nil {
			t.Fatal(err)
		}
	}
	if leases, err := j.Leases(); err != nil || len(leases) != 0 {
		t.Errorf("Leases = %v, %v; want none (the stray name is no lease)", leases, err)
	}
	if _, err := j.Retries(); err != nil {
		t.Error(err)
	}
	spec, _ := j.Spec()
	outcomes, err := j.Outcomes(spec)
	if err != nil || len(outcomes) != 1 || outcomes[0].Index != 0 {
		t.Fatalf("Outcomes = %v, %v; want item 0 only", outcomes, err)
	}
	r, _, err := j.ResultOf(outcomes[0])
	if err != nil || !strings.Contains(r.Reason, "/unreadable/results/00000/0000000000.failed") || r.Outcome != protocol.Failed {
		t.Errorf("ResultOf an unreadable record = %+v, %v; want its outcome, and a reason naming its path", r, err)
	}
	_, timers, err := j.Timers()
	if err != nil || len(timers) != 1 || !strings.Contains(timers[0].ID, "/unreadable/timers/t-0000000099") {
		t.Errorf("Timers = %+v, %v; want the unreadable timer named (its age still counts)", timers, err)
	}
	j.Leases() // a second look names nothing again
	for _, p := range []string{"/unreadable/leases/not-a-turn", "/unreadable/retry/0000000001-x-0", "/unreadable/results/00000/junk",
		"/unreadable/results/00000/0000000000.failed", "/unreadable/timers/t-0000000099"} {
		if n := strings.Count(logs.String(), "path="+p+" "); n != 1 {
			t.Errorf("%s named %d times in the log, want once:\n%s", p, n, logs.String())
		}
	}
}
