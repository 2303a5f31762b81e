package worker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/interrupt"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zktest"
	"github.com/zkdog/zkdog/worker"
)

// quickThenBlock are items a looping worker runs quickly, enough of them
// for it to lease ahead, then one whose command blocks, and the ones
// after it: the first of those is the one leased ahead.
func quickThenBlock() []string {
	items := []string{"q1", "q2", "q3", "q4", "q5", "q6", "q7", "block"}
	return append(items, "after1", "after2")
}

// blockScript runs the quick items at once and, for block, writes its
// pid to $2 and sleeps.
const blockScript = `case "$1" in block) echo $$ > "$2.tmp"; mv "$2.tmp" "$2"; exec sleep 1000;; esac`

// startBlocking starts a looping worker on quickThenBlock and returns,
// once the blocking command runs and the next item is leased ahead, the
// worker's outcome channel and the command's pid.
func startBlocking(t *testing.T, f *runFixture, ctx context.Context, cfg worker.Config) (<-chan runOutcome, int) {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "pid")
	cfg.Command = []string{"sh", "-c", blockScript, "sh", "{}", pidFile}
	cfg.Loop = true
	ch := f.start(ctx, cfg)
	waitFile(t, pidFile)
	b, _ := os.ReadFile(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the item after block to be leased ahead", func() bool {
		return f.counts().Leased == 2
	})
	return ch, pid
}

// checkGivenBack checks that after1, leased ahead, was given back
// uncharged, with no result and no lease left.
func checkGivenBack(t *testing.T, f *runFixture) {
	t.Helper()
	if _, ok := f.results()["after1"]; ok {
		t.Fatal("after1, leased ahead and never started, has a result")
	}
	if c := f.counts(); c.Leased != 0 {
		t.Fatalf("counts %+v; want no lease left", c)
	}
	retries, err := f.mj.Retries()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range retries {
		if r.Index == 8 {
			if r.Charged != 0 || r.Attempt != 2 {
				t.Fatalf("after1 back as %+v; want its next turn, uncharged", r)
			}
			return
		}
	}
	t.Fatalf("retry list %+v; want after1 (item 8) on it", retries)
}

// A TERM while the command runs gives back the item leased ahead,
// uncharged, as well as the running one (--on-term requeue).
func TestLeasedAheadGivenBackOnTerm(t *testing.T) {
	worker.SetHoldLimit(t, time.Hour)
	f := newRunFixture(t, quickServer(t), protocol.Job{TimerMillis: 60_000}, quickThenBlock()...)
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	ch, pid := startBlocking(t, f, ctx, worker.Config{KillTimeout: hangGuard})
	cancel(&interrupt.Error{Signal: syscall.SIGTERM})
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	o := f.await(ch)
	if o.err != nil || o.res.Ran != 8 || o.res.Status != 128+int(syscall.SIGTERM) {
		t.Fatalf("Run = %+v, %v; want 8 run, status 143", o.res, o.err)
	}
	checkGivenBack(t, f)
	if c := f.counts(); c.Done != 7 || c.Retry != 2 {
		t.Fatalf("counts %+v; want the 7 quick items done, block and after1 back on the retry list", c)
	}
}

// An abort while the command runs gives back the item leased ahead.
func TestLeasedAheadGivenBackOnAbort(t *testing.T) {
	worker.SetHoldLimit(t, time.Hour)
	f := newRunFixture(t, quickServer(t), protocol.Job{TimerMillis: 60_000}, quickThenBlock()...)
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	ch, _ := startBlocking(t, f, ctx, worker.Config{KillTimeout: hangGuard})
	if err := f.mj.Abort("stop the test job"); err != nil {
		t.Fatal(err)
	}
	o := f.await(ch)
	if o.err != nil || o.res.Status != worker.ExitStopped || !errors.Is(o.res.Stopped, worker.ErrAborted) || o.res.Ran != 8 {
		t.Fatalf("Run = %+v, %v; want 8 run, status 124, stopped by the abort", o.res, o.err)
	}
	checkGivenBack(t, f)
	if r := f.results()["block"]; r.Outcome != protocol.Failed || r.Exit != 143 {
		t.Fatalf("block recorded %+v; want failed with the command's 143", r)
	}
}

// An item leased ahead of a command that turns out long is given back
// for another worker while that command still runs.
func TestLeasedAheadGivenBackBehindLongCommand(t *testing.T) {
	f := newRunFixture(t, quickServer(t), protocol.Job{TimerMillis: 60_000}, quickThenBlock()...)
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	pidFile := filepath.Join(t.TempDir(), "pid")
	ch := f.start(ctx, worker.Config{Command: []string{"sh", "-c", blockScript, "sh", "{}", pidFile}, Loop: true, KillTimeout: hangGuard})
	waitFile(t, pidFile)
	waitFor(t, "after1 to be given back while block runs", func() bool {
		retries, err := f.mj.Retries()
		return err == nil && len(retries) == 1 && retries[0].Index == 8
	})
	if retries, _ := f.mj.Retries(); retries[0].Charged != 0 || retries[0].Attempt != 2 {
		t.Fatalf("after1 back as %+v; want its next turn, uncharged", retries[0])
	}
	if c := f.counts(); c.Leased != 1 {
		t.Fatalf("counts %+v; want only block's lease", c)
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	cancel(&interrupt.Error{Signal: syscall.SIGTERM})
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if o := f.await(ch); o.err != nil || o.res.Ran != 8 {
		t.Fatalf("Run = %+v, %v; want 8 run", o.res, o.err)
	}
}

// No worker ever holds more than one item it is not working on: with
// leasing ahead and recording behind, a looping worker holds at most two
// leases (the item running and the next), and one with a failure budget,
// which takes strictly in turn, at most one.
func TestAtMostOneLeaseAhead(t *testing.T) {
	srv := quickServer(t)
	for _, c := range []struct {
		name    string
		spec    protocol.Job
		workers int
		most    int
	}{
		{"one worker", protocol.Job{TimerMillis: 60_000}, 1, 2},
		{"two workers", protocol.Job{TimerMillis: 60_000}, 2, 2},
		{"failure budget", protocol.Job{TimerMillis: 60_000, Policy: protocol.Policy{MaxFailures: 1000}}, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			items := make([]string, 60)
			for i := range items {
				items[i] = fmt.Sprint("item", i)
			}
			f := newRunFixture(t, srv, c.spec, items...)
			ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
			defer cancel()
			watch := f.watchLeasesPerTimer(t)
			var outs []<-chan runOutcome
			for range c.workers {
				outs = append(outs, f.start(ctx, worker.Config{Command: []string{"true"}, Loop: true}))
			}
			for _, ch := range outs {
				if o := f.await(ch); o.err != nil {
					t.Fatal(o.err)
				}
			}
			most := watch()
			if most > c.most {
				t.Fatalf("a timer held %d leases at once; want at most %d", most, c.most)
			}
			if done := f.counts().Done; done != len(items) {
				t.Fatalf("%d of %d items done", done, len(items))
			}
		})
	}
}

// watchLeasesPerTimer lists the job's leases over and over until the
// returned function is called, which returns the most any one timer held
// in a listing.
func (f *runFixture) watchLeasesPerTimer(t *testing.T) func() int {
	conn := zktest.Connect(t, f.srv.Addr())
	var (
		wg   sync.WaitGroup
		most int
		stop = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			most = max(most, leasesPerTimer(conn, f.l))
		}
	}()
	return func() int {
		close(stop)
		wg.Wait()
		return most
	}
}

// leasesPerTimer is the most leases one timer holds in one listing; a
// lease gone between the listing and its read is not counted.
func leasesPerTimer(conn *zk.Conn, l protocol.Layout) int {
	names, _, err := conn.Children(l.Leases())
	if err != nil {
		return 0
	}
	per := map[string]int{}
	most := 0
	for _, n := range names {
		b, _, err := conn.Get(l.Leases() + "/" + n)
		if err != nil {
			continue
		}
		if lease, err := protocol.DecodeLease(b); err == nil {
			per[lease.Timer]++
			most = max(most, per[lease.Timer])
		}
	}
	return most
}
