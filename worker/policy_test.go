package worker_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/interrupt"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/worker"
)

// lockedBuffer is a log destination the worker's goroutines may share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func logTo(b *lockedBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// earlier reads the attempt records before attempt at item index.
func (f *runFixture) earlier(index, attempt int) []protocol.Result {
	f.t.Helper()
	recs, err := f.mj.Earlier(index, attempt)
	if err != nil {
		f.t.Fatal(err)
	}
	return recs
}

// An attempt that ends as --retry-on names goes back, charged, while
// retries are left; the looping worker takes it again and the record of
// the first attempt stays. zkdog run's status is still the command's.
func TestRetryOnExitCode(t *testing.T) {
	f := newRunFixture(t, quickServer(t), protocol.Job{TimerMillis: 60_000, Retries: 1, Policy: protocol.Policy{RetryOn: []string{"75"}}}, "flaky")
	script := `echo "attempt $ZKDOG_ATTEMPT" >&2; [ "$ZKDOG_ATTEMPT" -gt 1 ] || exit 75`
	o := f.run(worker.Config{Command: []string{"sh", "-c", script}, Loop: true, KeepStderr: 100})
	if o.err != nil || o.res.Ran != 2 || o.res.Status != 75 {
		t.Fatalf("Run = %+v, %v; want 2 run, the status of the failing one", o.res, o.err)
	}
	if r := f.results()["flaky"]; r.Outcome != protocol.OK || r.Attempt != 2 {
		t.Fatalf("result %+v; want ok on attempt 2", r)
	}
	recs := f.earlier(0, 2)
	if len(recs) != 1 || recs[0].Outcome != protocol.Failed || recs[0].Exit != 75 || recs[0].Stderr != "attempt 1\n" || recs[0].ID == "" || recs[0].Host == "" {
		t.Fatalf("earlier attempts %+v; want one failed with exit 75, its stderr, worker and host", recs)
	}
}

// What --retry-on does not name, what --no-retry-exit names, and an
// attempt past the retries, are recorded as they ended.
func TestNoRetry(t *testing.T) {
	srv := quickServer(t)
	for _, c := range []struct {
		name     string
		policy   protocol.Policy
		retries  int
		exit     int
		attempts int
	}{
		{"not named", protocol.Policy{RetryOn: []string{"75"}}, 3, 2, 1},
		{"no-retry-exit wins", protocol.Policy{RetryOn: []string{protocol.RetryFailed}, NoRetryExit: "2"}, 3, 2, 1},
		{"retries spent", protocol.Policy{RetryOn: []string{protocol.RetryFailed}}, 2, 9, 3},
		{"default retries vanished only", protocol.Policy{}, 3, 1, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newRunFixture(t, srv, protocol.Job{TimerMillis: 60_000, Retries: c.retries, Policy: c.policy}, "bad")
			o := f.run(worker.Config{Command: []string{"sh", "-c", "exit " + strconv.Itoa(c.exit)}, Loop: true})
			if o.err != nil || o.res.Ran != c.attempts || o.res.Status != c.exit {
				t.Fatalf("Run = %+v, %v; want %d run, status %d", o.res, o.err, c.attempts, c.exit)
			}
			if r := f.results()["bad"]; r.Outcome != protocol.Failed || r.Attempt != c.attempts || r.Exit != c.exit {
				t.Fatalf("result %+v; want failed on attempt %d", r, c.attempts)
			}
		})
	}
}

// --item-timeout stops the command (status 124, saying which limit) and
// records timeout, the command's own status kept.
func TestItemTimeout(t *testing.T) {
	srv := quickServer(t)
	t.Run("fixed", func(t *testing.T) {
		f := newRunFixture(t, srv, protocol.Job{TimerMillis: 60_000, Policy: protocol.Policy{ItemTimeoutMillis: 300}}, "slow")
		o := f.run(worker.Config{Command: []string{"sleep", "30"}, KillTimeout: 5 * time.Second})
		if o.err != nil || o.res.Status != worker.ExitStopped || o.res.Stopped == nil || !strings.Contains(o.res.Stopped.Error(), "--item-timeout 300ms") {
			t.Fatalf("Run = %+v, %v; want status 124, stopped for the --item-timeout", o.res, o.err)
		}
		if r := f.results()["slow"]; r.Outcome != protocol.Timeout || r.Exit != 143 || !strings.Contains(r.Reason, "--item-timeout") {
			t.Fatalf("recorded %+v; want timeout with the command's 143", r)
		}
	})
	t.Run("relative to the median", func(t *testing.T) {
		f := newRunFixture(t, srv, protocol.Job{TimerMillis: 60_000, Policy: protocol.Policy{ItemTimeoutPercent: 200}}, "slow")
		if err := f.mj.PublishStats(protocol.Stats{OK: protocol.MinTimeoutSample, MedianMillis: 150}); err != nil {
			t.Fatal(err)
		}
		o := f.run(worker.Config{Command: []string{"sleep", "30"}, KillTimeout: 5 * time.Second})
		if o.res.Status != worker.ExitStopped || o.res.Stopped == nil || !strings.Contains(o.res.Stopped.Error(), "200% of the 150ms median") {
			t.Fatalf("Run = %+v, %v; want stopped at 200%% of the median", o.res, o.err)
		}
	})
	t.Run("relative, too few items", func(t *testing.T) {
		f := newRunFixture(t, srv, protocol.Job{TimerMillis: 60_000, Policy: protocol.Policy{ItemTimeoutPercent: 200}}, "quick")
		if err := f.mj.PublishStats(protocol.Stats{OK: protocol.MinTimeoutSample - 1, MedianMillis: 1}); err != nil {
			t.Fatal(err)
		}
		if o := f.run(worker.Config{Command: []string{"sleep", "0.2"}}); o.err != nil || o.res.Status != 0 {
			t.Fatalf("Run = %+v, %v; want no limit before %d items succeeded", o.res, o.err, protocol.MinTimeoutSample)
		}
	})
	t.Run("retried when named", func(t *testing.T) {
		f := newRunFixture(t, srv, protocol.Job{TimerMillis: 60_000, Retries: 1,
			Policy: protocol.Policy{ItemTimeoutMillis: 300, RetryOn: []string{protocol.RetryTimeout}}}, "slow")
		o := f.run(worker.Config{Command: []string{"sleep", "30"}, Loop: true, KillTimeout: 5 * time.Second})
		if o.res.Ran != 2 {
			t.Fatalf("Run = %+v, %v; want 2 attempts", o.res, o.err)
		}
		if recs := f.earlier(0, 2); len(recs) != 1 || recs[0].Outcome != protocol.Timeout {
			t.Fatalf("earlier attempts %+v; want one timeout", recs)
		}
	})
}

// A TERM from outside: the command ends within its grace, and the item
// goes back uncharged (requeue) or is recorded failed (fail); no further
// item is taken either way.
func TestOnTerm(t *testing.T) {
	srv := quickServer(t)
	for _, c := range []struct {
		policy worker.OnTerm
		want   protocol.Outcome
	}{
		{worker.OnTermRequeue, protocol.Terminated},
		{worker.OnTermFail, protocol.Failed},
	} {
		t.Run(string(c.policy), func(t *testing.T) {
			f := newRunFixture(t, srv, protocol.Job{TimerMillis: 60_000}, "long", "next")
			pidFile := filepath.Join(t.TempDir(), "pid")
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			ch := f.start(ctx, worker.Config{Command: []string{"sh", "-c", `echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; exec sleep 1000`, "sh", pidFile},
				Loop: true, OnTerm: c.policy, KillTimeout: 5 * time.Second})
			waitFile(t, pidFile)
			b, _ := os.ReadFile(pidFile)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			// What zkdog run's signal handling does on a TERM: the cause
			// on the context, and the signal relayed to the command.
			cancel(&interrupt.Error{Signal: syscall.SIGTERM})
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			o := f.await(ch)
			if o.err != nil || o.res.Ran != 1 || o.res.Status != 128+int(syscall.SIGTERM) {
				t.Fatalf("Run = %+v, %v; want one run, status 143", o.res, o.err)
			}
			counts := f.counts()
			if c.want == protocol.Failed {
				if r := f.results()["long"]; r.Outcome != protocol.Failed || r.Exit != 143 {
					t.Fatalf("recorded %+v; want failed with 143", r)
				}
				return
			}
			if counts.Done != 0 || counts.Retry != 1 || counts.Leased != 0 {
				t.Fatalf("counts %+v; want nothing done, the item on the retry list", counts)
			}
			retries, err := f.mj.Retries()
			if err != nil || len(retries) != 1 || retries[0].Index != 0 || retries[0].Charged != 0 {
				t.Fatalf("retry list %+v, %v; want item 0 uncharged", retries, err)
			}
			recs := f.earlier(0, 2)
			if len(recs) != 1 || recs[0].Outcome != protocol.Terminated || recs[0].Exit != 143 || !strings.Contains(recs[0].Reason, "SIGTERM") {
				t.Fatalf("attempt records %+v; want one terminated, exit 143, naming the signal", recs)
			}
		})
	}
}

// --lifetime: no item is taken when less time is left than an item is
// expected to need, by --item-time, the job's median, or the worker's own.
func TestLifetime(t *testing.T) {
	srv := quickServer(t)
	t.Run("item-time", func(t *testing.T) {
		f := newRunFixture(t, srv, protocol.Job{TimerMillis: 60_000}, "a")
		var log lockedBuffer
		o := f.run(worker.Config{Command: []string{"true"}, Deadline: time.Now().Add(time.Minute), ItemTime: time.Hour, Log: logTo(&log)})
		if o.err != nil || o.res.Ran != 0 || o.res.Status != 0 {
			t.Fatalf("Run = %+v, %v; want nothing run, status 0", o.res, o.err)
		}
		if c := f.counts(); c.Issued != 0 {
			t.Fatalf("counts %+v; want nothing taken", c)
		}
		if s := log.String(); !strings.Contains(s, "not taking another item") || !strings.Contains(s, "from=--item-time") {
			t.Fatalf("the log does not say why no item was taken:\n%s", s)
		}
	})
	t.Run("enough time", func(t *testing.T) {
		f := newRunFixture(t, srv, protocol.Job{TimerMillis: 60_000}, "a", "b")
		o := f.run(worker.Config{Command: []string{"true"}, Loop: true, Deadline: time.Now().Add(time.Hour), ItemTime: time.Minute})
		if o.err != nil || o.res.Ran != 2 {
			t.Fatalf("Run = %+v, %v; want both run", o.res, o.err)
		}
	})
	t.Run("the job's median", func(t *testing.T) {
		f := newRunFixture(t, srv, protocol.Job{TimerMillis: 60_000}, "a")
		if err := f.mj.PublishStats(protocol.Stats{OK: 3, MedianMillis: time.Hour.Milliseconds()}); err != nil {
			t.Fatal(err)
		}
		var log lockedBuffer
		o := f.run(worker.Config{Command: []string{"true"}, Deadline: time.Now().Add(time.Minute), Log: logTo(&log)})
		if o.err != nil || o.res.Ran != 0 || !strings.Contains(log.String(), "median of the job's 3 items") {
			t.Fatalf("Run = %+v, %v; want nothing run for the job's median\n%s", o.res, o.err, log.String())
		}
	})
	t.Run("the worker's own median", func(t *testing.T) {
		f := newRunFixture(t, srv, protocol.Job{TimerMillis: 60_000}, "a", "b", "c")
		var log lockedBuffer
		// The first item is taken (nothing says what one needs); it takes
		// 1s, after which less than 1s is left.
		o := f.run(worker.Config{Command: []string{"sleep", "1"}, Loop: true, Deadline: time.Now().Add(1500 * time.Millisecond), Log: logTo(&log)})
		if o.err != nil || o.res.Ran != 1 || o.res.Status != 0 {
			t.Fatalf("Run = %+v, %v; want one run", o.res, o.err)
		}
		if !strings.Contains(log.String(), "median of the 1 items this worker ran") {
			t.Fatalf("the log does not give the worker's median:\n%s", log.String())
		}
	})
}

// A --until-done worker that finds only an item held back by
// --retry-delay waits for it to come due, then runs it.
func TestUntilDoneWaitsOutRetryDelay(t *testing.T) {
	f := newRunFixture(t, quickServer(t), protocol.Job{TimerMillis: 60_000, Retries: 1,
		Policy: protocol.Policy{RetryOn: []string{protocol.RetryFailed}, RetryDelayMillis: 500}}, "flaky")
	var log lockedBuffer
	o := f.run(worker.Config{Command: []string{"sh", "-c", `[ "$ZKDOG_ATTEMPT" -gt 1 ]`}, Loop: true, UntilDone: true, Log: logTo(&log)})
	if o.err != nil || o.res.Ran != 2 {
		t.Fatalf("Run = %+v, %v; want both attempts run", o.res, o.err)
	}
	if r := f.results()["flaky"]; r.Outcome != protocol.OK || r.Attempt != 2 {
		t.Fatalf("result %+v; want ok on attempt 2", r)
	}
	if s := log.String(); !strings.Contains(s, "waiting for the other workers' items") {
		t.Fatalf("the worker did not wait for the held-back item:\n%s", s)
	}
}
