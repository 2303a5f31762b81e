package worker_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/internal/zktest"
	"github.com/zkdog/zkdog/supervise"
	"github.com/zkdog/zkdog/worker"
)

// runFixture is a job on a private server and a way to run workers on it.
type runFixture struct {
	t   *testing.T
	srv *zkserver.Server
	l   protocol.Layout
	mj  *job.Job // the master's handle
}

func newRunFixture(t *testing.T, srv *zkserver.Server, spec protocol.Job, items ...string) *runFixture {
	t.Helper()
	l := protocol.Layout{Root: "/worker/" + strings.ReplaceAll(t.Name(), "/", "_")}
	mj := job.New(zktest.Connect(t, srv.Addr()), l)
	data := make([][]byte, len(items))
	for i, it := range items {
		data[i] = []byte(it)
	}
	if err := mj.Create(spec, data); err != nil {
		t.Fatal(err)
	}
	return &runFixture{t: t, srv: srv, l: l, mj: mj}
}

type runOutcome struct {
	res worker.Result
	err error
}

// start runs a worker in the background; its outcome comes on the channel.
func (f *runFixture) start(ctx context.Context, cfg worker.Config) <-chan runOutcome {
	f.t.Helper()
	sess, err := zkconn.Dial(ctx, f.srv.Addr(), 10*time.Second, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(sess.Close)
	if cfg.Stdout == nil {
		cfg.Stdout = new(bytes.Buffer)
	}
	if cfg.Stderr == nil {
		cfg.Stderr = new(bytes.Buffer)
	}
	out := make(chan runOutcome, 1)
	go func() {
		res, err := worker.Run(ctx, sess, job.New(sess.Conn(), f.l), cfg)
		out <- runOutcome{res, err}
	}()
	return out
}

func (f *runFixture) run(cfg worker.Config) runOutcome {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.t.Context(), hangGuard)
	defer cancel()
	return f.await(f.start(ctx, cfg))
}

func (f *runFixture) await(ch <-chan runOutcome) runOutcome {
	f.t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(hangGuard):
		f.t.Fatalf("the worker still running after %v", hangGuard)
		return runOutcome{}
	}
}

func (f *runFixture) counts() job.Counts {
	f.t.Helper()
	spec, err := f.mj.Spec()
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := f.mj.Counts(spec)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// results are the recorded results by item text.
func (f *runFixture) results() map[string]protocol.Result {
	f.t.Helper()
	spec, err := f.mj.Spec()
	if err != nil {
		f.t.Fatal(err)
	}
	outs, err := f.mj.Outcomes(spec)
	if err != nil {
		f.t.Fatal(err)
	}
	m := map[string]protocol.Result{}
	for _, o := range outs {
		r, item, err := f.mj.ResultOf(o)
		if err != nil {
			f.t.Fatal(err)
		}
		m[string(item)] = r
	}
	return m
}

func quickServer(t *testing.T) *zkserver.Server {
	return zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
}

// A failed result keeps the item and the end of what the command wrote to
// stderr, cut on a character boundary; an ok one keeps neither.
func TestFailedResultKeepsItemAndStderr(t *testing.T) {
	f := newRunFixture(t, quickServer(t), protocol.Job{TimerMillis: 60_000}, "good", "bad", "ugly")
	// Over 64 bytes of stderr ending in two-byte characters, whatever
	// the item; only good succeeds.
	script := `i=0; while [ $i -lt 20 ]; do echo "noise $i" >&2; i=$((i+1)); done; printf 'ééééé: %s failed\n' "$1" >&2; [ "$1" = good ]`
	var stderr bytes.Buffer
	o := f.run(worker.Config{Command: []string{"sh", "-c", script, "sh", "{}"}, Loop: true, KeepStderr: 64, Stderr: &stderr})
	if o.err != nil || o.res.Ran != 3 || o.res.Status != 1 || o.res.Stopped != nil {
		t.Fatalf("Run = %+v, %v; want 3 run, status 1 of the last failing", o.res, o.err)
	}
	res := f.results()
	if r := res["good"]; r.Outcome != protocol.OK || r.Stderr != "" || r.Item != nil {
		t.Errorf("ok result %+v keeps stderr or the item", r)
	}
	for _, item := range []string{"bad", "ugly"} {
		r := res[item]
		if r.Outcome != protocol.Failed || string(r.Item) != item {
			t.Errorf("result of %s = %+v, want failed with the item", item, r)
		}
		if len(r.Stderr) > 64 || len(r.Stderr) < 62 || !utf8.ValidString(r.Stderr) || !strings.HasSuffix(r.Stderr, "é: "+item+" failed\n") {
			t.Errorf("result of %s keeps stderr %q (%d bytes), want its last 64 bytes from a character boundary", item, r.Stderr, len(r.Stderr))
		}
		if !strings.Contains(stderr.String(), "ééééé: "+item+" failed\n") {
			t.Errorf("stderr did not pass through whole: %q", stderr.String())
		}
	}
}

func TestKeepStderrOff(t *testing.T) {
	f := newRunFixture(t, quickServer(t), protocol.Job{TimerMillis: 60_000}, "bad")
	o := f.run(worker.Config{Command: []string{"sh", "-c", "echo why >&2; exit 3"}})
	if o.err != nil || o.res.Status != 3 {
		t.Fatalf("Run = %+v, %v; want status 3", o.res, o.err)
	}
	if r := f.results()["bad"]; r.Outcome != protocol.Failed || r.Stderr != "" || string(r.Item) != "bad" {
		t.Errorf("result %+v: want failed with the item and no stderr", r)
	}
}

// A command that cannot be found takes nothing: no timer, no item, no
// result, and the error says which command and what to do.
func TestMissingCommandTakesNothing(t *testing.T) {
	f := newRunFixture(t, quickServer(t), protocol.Job{TimerMillis: 60_000}, "a", "b")
	notExec := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		command []string
		want    error
		code    int
	}{
		{[]string{"./legacy-binry", "{}"}, supervise.ErrNotFound, 127},
		{[]string{"legacy-binry-zkdog-test", "{}"}, supervise.ErrNotFound, 127},
		{[]string{notExec, "{}"}, supervise.ErrNotExecutable, 126},
		{[]string{t.TempDir(), "{}"}, supervise.ErrNotExecutable, 126},
	} {
		o := f.run(worker.Config{Command: c.command, Loop: true})
		if !errors.Is(o.err, c.want) || supervise.ExitCodeFor(o.err) != c.code || o.res.Ran != 0 {
			t.Errorf("Run(%q) = %+v, %v; want %v", c.command, o.res, o.err, c.want)
		}
		if msg := o.err.Error(); !strings.HasPrefix(msg, c.command[0]+": ") || !strings.Contains(msg, "nothing was taken") {
			t.Errorf("Run(%q) says %q: want the command named first and that nothing was taken", c.command, msg)
		}
	}
	if c := f.counts(); c.Issued != 0 || c.Workers != 0 || c.Done != 0 || c.Retry != 0 {
		t.Fatalf("counts %+v after commands that could not run: want nothing taken, no timer made", c)
	}
}

// A looping worker whose command vanishes mid-run gives the item it took
// back, uncharged, and stops; another worker does what is left.
func TestCommandGoneMidLoopGivesTheItemBack(t *testing.T) {
	f := newRunFixture(t, quickServer(t), protocol.Job{TimerMillis: 60_000}, "a", "b", "c")
	script := filepath.Join(t.TempDir(), "work")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nrm -f \"$0\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := f.run(worker.Config{Command: []string{script, "{}"}, Loop: true})
	if !errors.Is(o.err, supervise.ErrNotFound) || o.res.Ran != 1 {
		t.Fatalf("Run = %+v, %v; want one run, then ErrNotFound", o.res, o.err)
	}
	if msg := o.err.Error(); !strings.Contains(msg, "item 1 was given back uncharged") {
		t.Errorf("the error says %q; want the item given back named", msg)
	}
	if c := f.counts(); c.Done != 1 || c.Failed != 0 || c.Retry != 1 || c.Leased != 0 {
		t.Fatalf("counts %+v; want one done, one given back, nothing failed or leased", c)
	}
	retries, err := f.mj.Retries()
	if err != nil || len(retries) != 1 || retries[0].Index != 1 || retries[0].Charged != 0 {
		t.Fatalf("retry list %+v, %v; want item 1 uncharged", retries, err)
	}

	o = f.run(worker.Config{Command: []string{"true"}, Loop: true})
	if o.err != nil || o.res.Ran != 2 || o.res.Status != 0 {
		t.Fatalf("the second worker: %+v, %v; want the 2 items left done", o.res, o.err)
	}
	for item, r := range f.results() {
		if r.Outcome != protocol.OK {
			t.Errorf("item %s: %+v, want ok", item, r)
		}
	}
}

// When zkdog stops the command itself, the status is ExitStopped, not the
// command's 143, and the Result says why; the record keeps the command's
// own status.
func TestStoppedByZkdogIs124(t *testing.T) {
	srv := quickServer(t)
	t.Run("kill on stall", func(t *testing.T) {
		f := newRunFixture(t, srv, protocol.Job{TimerMillis: 1000}, "slow")
		o := f.run(worker.Config{Command: []string{"sh", "-c", "echo stuck >&2; exec sleep 1000"}, KillOnStall: true,
			KeepStderr: 100, KillTimeout: 5 * time.Second})
		if o.err != nil || o.res.Status != worker.ExitStopped || o.res.Stopped == nil || !strings.Contains(o.res.Stopped.Error(), "no progress") {
			t.Fatalf("Run = %+v, %v; want status 124, stopped for no progress", o.res, o.err)
		}
		r := f.results()["slow"]
		if r.Outcome != protocol.Stalled || r.Exit != 143 || r.Stderr != "stuck\n" || string(r.Item) != "slow" {
			t.Fatalf("recorded %+v; want stalled, exit 143, with the item and its stderr", r)
		}
	})
	t.Run("job aborted", func(t *testing.T) {
		f := newRunFixture(t, srv, protocol.Job{TimerMillis: 60_000}, "x", "y")
		started := filepath.Join(t.TempDir(), "started")
		ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
		defer cancel()
		ch := f.start(ctx, worker.Config{Command: []string{"sh", "-c", `touch "$1"; exec sleep 1000`, "sh", started}, Loop: true,
			KillTimeout: 5 * time.Second})
		waitFile(t, started)
		if err := f.mj.Abort("a timer went un-kicked"); err != nil {
			t.Fatal(err)
		}
		o := f.await(ch)
		if o.err != nil || o.res.Status != worker.ExitStopped || !errors.Is(o.res.Stopped, worker.ErrAborted) || o.res.Ran != 1 {
			t.Fatalf("Run = %+v, %v; want one run, status 124, stopped by the abort", o.res, o.err)
		}
		if msg := o.res.Stopped.Error(); !strings.Contains(msg, "a timer went un-kicked") || strings.Contains(msg, "worker:") {
			t.Errorf("stopped because %q; want the abort's reason, no package names", msg)
		}
		if r := f.results()["x"]; r.Outcome != protocol.Failed || r.Exit != 143 {
			t.Errorf("recorded %+v; want failed with the command's 143", r)
		}
	})
	t.Run("a later failure is the status", func(t *testing.T) {
		f := newRunFixture(t, srv, protocol.Job{TimerMillis: 1000}, "stalls", "fails", "passes")
		script := `case "$1" in stalls) exec sleep 1000;; fails) exit 3;; esac`
		o := f.run(worker.Config{Command: []string{"sh", "-c", script, "sh", "{}"}, Loop: true, KillOnStall: true, KillTimeout: 5 * time.Second})
		if o.err != nil || o.res.Ran != 3 || o.res.Status != 3 || o.res.Stopped != nil {
			t.Fatalf("Run = %+v, %v; want 3 run, status 3 of the last failing, not stopped", o.res, o.err)
		}
	})
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A worker that comes to a finished job runs nothing and says how it
// ended; one waiting in --until-done when the job is sealed stops too.
func TestFinishedJob(t *testing.T) {
	srv := quickServer(t)
	t.Run("late worker", func(t *testing.T) {
		f := newRunFixture(t, srv, protocol.Job{TimerMillis: 60_000}, "a")
		if o := f.run(worker.Config{Command: []string{"true"}}); o.err != nil || o.res.Ran != 1 {
			t.Fatalf("Run = %+v, %v", o.res, o.err)
		}
		if _, err := f.mj.Seal(t.Context(), protocol.Summary{End: "ok", Exit: 0, Host: "master-host"}, false); err != nil {
			t.Fatal(err)
		}
		marker := filepath.Join(t.TempDir(), "ran")
		for _, cfg := range []worker.Config{
			{Command: []string{"touch", marker}},
			{Command: []string{"touch", marker}, Loop: true, UntilDone: true, WaitForJob: time.Minute},
		} {
			o := f.run(cfg)
			var fe *job.FinishedError
			if !errors.As(o.err, &fe) || fe.Summary.End != "ok" || o.res.Ran != 0 || o.res.Status != 0 {
				t.Fatalf("Run(%+v) = %+v, %v; want a FinishedError saying ok, nothing run", cfg, o.res, o.err)
			}
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatal("the command ran on a finished job")
		}
	})
	t.Run("sealed while waiting", func(t *testing.T) {
		f := newRunFixture(t, srv, protocol.Job{TimerMillis: 60_000}, "held", "free")
		// Another worker holds item 0 for the whole test.
		spec, err := f.mj.Spec()
		if err != nil {
			t.Fatal(err)
		}
		other := job.New(zktest.Connect(t, srv.Addr()), f.l)
		tp, err := other.CreateTimer(protocol.Timer{ID: "other"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Take(t.Context(), spec, protocol.Lease{Timer: filepath.Base(tp), ID: "other"}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
		defer cancel()
		ch := f.start(ctx, worker.Config{Command: []string{"true"}, Loop: true, UntilDone: true})
		waitFor(t, "the worker to wait for the held item", func() bool {
			c := f.counts()
			return c.Done == 1
		})
		if _, err := f.mj.Seal(t.Context(), protocol.Summary{End: "hung", Exit: 3, Reason: "worker other hung"}, false); err != nil {
			t.Fatal(err)
		}
		o := f.await(ch)
		var fe *job.FinishedError
		if !errors.As(o.err, &fe) || fe.Summary.End != "hung" || o.res.Ran != 1 || o.res.Status != 0 {
			t.Fatalf("Run = %+v, %v; want the item run and then a FinishedError saying hung", o.res, o.err)
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
