package worker_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/internal/zktest"
	"github.com/zkdog/zkdog/master"
	"github.com/zkdog/zkdog/worker"
)

// hangGuard bounds every wait. It is a guard against a hang, not a
// performance assertion: the machines running these tests are shared.
const hangGuard = 30 * time.Second

func TestArgs(t *testing.T) {
	for _, c := range []struct {
		name    string
		command []string
		item    string
		want    []string
	}{
		{"one placeholder", []string{"./work", "{}"}, "in/a.dat", []string{"./work", "in/a.dat"}},
		{"several arguments", []string{"cp", "{}", "out/{}"}, "a.dat", []string{"cp", "a.dat", "out/a.dat"}},
		{"inside a larger argument", []string{"./work", "--input={}.gz", "--log", "logs/{}-{}.txt"}, "x",
			[]string{"./work", "--input=x.gz", "--log", "logs/x-x.txt"}},
		{"no placeholder", []string{"./work", "--all"}, "a", []string{"./work", "--all"}},
		{"command alone", []string{"./work"}, "a", []string{"./work"}},
		{"command name untouched", []string{"./{}", "{}"}, "a", []string{"./{}", "a"}},
		{"empty item", []string{"./work", "-i", "{}"}, "", []string{"./work", "-i", ""}},
		{"item with spaces stays one argument", []string{"./work", "{}"}, "a b  c", []string{"./work", "a b  c"}},
		{"item holding a placeholder is not expanded again", []string{"./work", "{}"}, "a{}b", []string{"./work", "a{}b"}},
		{"item with shell characters is not interpreted", []string{"./work", "{}"}, "$(rm -rf ~); `x` *", []string{"./work", "$(rm -rf ~); `x` *"}},
		{"braces that are not a placeholder", []string{"awk", "{print $1}", "{ }", "{}"}, "f", []string{"awk", "{print $1}", "{ }", "f"}},
		{"a shell's script refers to the item", []string{"sh", "-c", "./work {} > out/{}.log"}, "a; touch pwned",
			[]string{"sh", "-c", `./work "${ZKDOG_ITEM}" > out/"${ZKDOG_ITEM}".log`}},
		{"in double quotes", []string{"/bin/bash", "-euc", `echo "$1/{}"`, "sh", "dir"}, "x", []string{"/bin/bash", "-euc", `echo "$1/${ZKDOG_ITEM}"`, "sh", "dir"}},
		{"in single quotes", []string{"sh", "-c", `grep '{}' f`}, "x", []string{"sh", "-c", `grep ''"${ZKDOG_ITEM}"'' f`}},
		{"an escaped placeholder stays", []string{"sh", "-c", `echo \{} {}`}, "x", []string{"sh", "-c", `echo \{} "${ZKDOG_ITEM}"`}},
		{"a shell's -o takes an argument", []string{"bash", "-o", "pipefail", "-c", "x {}"}, "a b", []string{"bash", "-o", "pipefail", "-c", `x "${ZKDOG_ITEM}"`}},
		{"a shell's positional arguments are data already", []string{"sh", "-c", `./work "$1"`, "sh", "{}"}, "$(x)", []string{"sh", "-c", `./work "$1"`, "sh", "$(x)"}},
		{"behind a wrapper", []string{"env", "A=1", "timeout", "60", "sh", "-c", "echo {}"}, "x;y", []string{"env", "A=1", "timeout", "60", "sh", "-c", `echo "${ZKDOG_ITEM}"`}},
		{"a script file is not a -c script", []string{"sh", "work.sh", "{}"}, "a;b", []string{"sh", "work.sh", "a;b"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			orig := slices.Clone(c.command)
			got := worker.Args(c.command, c.item)
			if !slices.Equal(got, c.want) {
				t.Errorf("Args(%q, %q) = %q, want %q", c.command, c.item, got, c.want)
			}
			if !slices.Equal(c.command, orig) {
				t.Errorf("Args changed its input: %q, was %q", c.command, orig)
			}
		})
	}
}

// TestShellScriptItemIsData runs the shell: an item full of shell syntax,
// put into a -c script by {} wherever it stands, is printed, not run.
func TestShellScriptItemIsData(t *testing.T) {
	dir := t.TempDir()
	scripts := []string{`printf '%s' {}`, `printf '%s' "{}"`, `printf '%s' '{}'`, `printf '%s' "$(printf '%s' {})"`, "printf '%s' \"`printf '%s' {}`\""}
	for _, item := range []string{"a; touch pwned", "$(touch pwned)", "`touch pwned`", "x' ; touch pwned; echo '", `x" ; touch pwned; echo "`, "a\\nb", "*", "a  b"} {
		for _, script := range scripts {
			args := worker.Args([]string{"sh", "-c", script}, item)
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), worker.EnvItem+"="+item)
			out, err := cmd.Output()
			if err != nil || string(out) != item {
				t.Errorf("item %q in %s printed %q (%v), want the item itself", item, script, out, err)
			}
			if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
				t.Fatalf("item %q in %s ran as code: pwned was created", item, script)
			}
		}
	}
}

func TestConsume(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))

	t.Run("takes every item in order, then empty", func(t *testing.T) {
		master := zktest.Connect(t, srv.Addr())
		l := protocol.Layout{Root: "/worker/consume"}
		mj := job.New(master, l)
		if err := mj.Create(protocol.Job{TimerMillis: 60_000}, [][]byte{[]byte("a"), []byte("b"), []byte("c")}); err != nil {
			t.Fatal(err)
		}
		wj := job.New(zktest.Connect(t, srv.Addr()), l)
		for i, want := range []string{"a", "b", "c"} {
			c, err := worker.Consume(t.Context(), wj, "script-1")
			if err != nil {
				t.Fatalf("Consume #%d: %v", i+1, err)
			}
			if c.Index != i || string(c.Data) != want || c.Attempt != 1 {
				t.Errorf("Consume #%d = item %d %q attempt %d, want item %d %q attempt 1", i+1, c.Index, c.Data, c.Attempt, i, want)
			}
		}
		if _, err := worker.Consume(t.Context(), wj, "script-1"); !errors.Is(err, job.ErrEmpty) {
			t.Errorf("Consume on an empty queue = %v, want job.ErrEmpty", err)
		}

		// Each item is recorded done, ok, in the consumer's name, and no
		// lease is left: the master will not hand any out again. Nor is the
		// timer each Consume holds while it takes its item.
		spec, err := mj.Spec()
		if err != nil {
			t.Fatal(err)
		}
		counts, err := mj.Counts(spec)
		if err != nil {
			t.Fatal(err)
		}
		if counts.Done != 3 || counts.Failed != 0 || counts.Leased != 0 || counts.Queued() != 0 || counts.Timers != 0 {
			t.Errorf("counts after consuming everything = %+v, want 3 done, none leased or queued, no timer left", counts)
		}
		outcomes, err := mj.Outcomes(spec)
		if err != nil {
			t.Fatal(err)
		}
		if want := []job.Outcome{{Index: 0, Outcome: protocol.OK}, {Index: 1, Outcome: protocol.OK}, {Index: 2, Outcome: protocol.OK}}; !slices.Equal(outcomes, want) {
			t.Errorf("outcomes = %+v, want %+v", outcomes, want)
		}
		host, _ := os.Hostname()
		r, item, err := mj.ResultOf(job.Outcome{Index: 1, Outcome: protocol.OK})
		if err != nil {
			t.Fatal(err)
		}
		if string(item) != "b" || r.ID != "script-1" || r.Host != host || r.Attempt != 1 || r.Exit != 0 || r.Reason == "" {
			t.Errorf("result of item 1 = %+v (item %q); want ok by script-1 on %s, attempt 1, with a reason", r, item, host)
		}
	})

	t.Run("no job", func(t *testing.T) {
		wj := job.New(zktest.Connect(t, srv.Addr()), protocol.Layout{Root: "/worker/none"})
		if _, err := worker.Consume(t.Context(), wj, "script-1"); !errors.Is(err, job.ErrNoJob) {
			t.Errorf("Consume without a job = %v, want job.ErrNoJob", err)
		}
	})
}

// TestRunUntilDoneAfterGiveBack: a worker stopped by a signal between
// taking an item and starting on it gives the item back (job.Release, see
// drain); in protocol version 2 as a new turn with the same charge. A pool of `zkdog run --loop --until-done` workers must still
// finish the job, and every worker exit, once every item has a result.
func TestRunUntilDoneAfterGiveBack(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	l := protocol.Layout{Root: "/worker/giveback"}
	mj := job.New(zktest.Connect(t, srv.Addr()), l)
	if err := mj.Create(protocol.Job{TimerMillis: 60_000, Retries: 1}, [][]byte{[]byte("a"), []byte("b")}); err != nil {
		t.Fatal(err)
	}

	// The master, as zkdog master runs it. Its polls are a second apart
	// so that it sees the lease go before its sweep could act, as with a
	// production timer.
	const poll = time.Second
	var (
		mu       sync.Mutex
		statuses []master.Status
	)
	changed := make(chan struct{}, 1)
	seen := func(cond func(master.Status) bool) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(statuses, cond)
	}
	type waitResult struct {
		r   master.Report
		err error
	}
	mres := make(chan waitResult, 1)
	go func() {
		r, err := master.Wait(t.Context(), mj, master.WaitConfig{Poll: poll, OnStatus: func(s master.Status) {
			mu.Lock()
			statuses = append(statuses, s)
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
		}})
		mres <- waitResult{r, err}
	}()
	await := func(what string, cond func() bool) {
		t.Helper()
		guard := time.After(hangGuard)
		for !cond() {
			select {
			case <-changed:
			case r := <-mres:
				t.Fatalf("the master returned %+v, %v while waiting for %s", r.r, r.err, what)
			case <-guard:
				t.Fatalf("no %s after %v", what, hangGuard)
			}
		}
	}

	// A worker takes item 0 and is stopped before it starts the command.
	stoppedConn := zktest.Connect(t, srv.Addr())
	stopped := job.New(stoppedConn, l)
	spec, err := stopped.Spec()
	if err != nil {
		t.Fatal(err)
	}
	tp, err := stopped.CreateTimer(protocol.Timer{ID: "stopped"})
	if err != nil {
		t.Fatal(err)
	}
	timer := path.Base(tp)
	c, err := stopped.Take(t.Context(), spec, protocol.Lease{Timer: timer, ID: "stopped"})
	if err != nil {
		t.Fatal(err)
	}
	await("lease seen by the master", func() bool { return seen(func(s master.Status) bool { return s.Running == 1 }) })
	if err := stopped.Release(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	// The stopped worker exits.
	if err := stopped.DeleteTimer(timer); err != nil {
		t.Fatal(err)
	}
	await("lease gone for the master", func() bool { return seen(func(s master.Status) bool { return s.Running == 0 }) })
	// Give the master the time to act on the vanished lease (it does at
	// its next poll): two polls, or until it shows it has.
	acted := time.After(2*poll + master.MinPoll)
	for waiting := true; waiting && !seen(func(s master.Status) bool { return s.Retried > 0 || s.Done > 0 }); {
		select {
		case <-changed:
		case <-acted:
			waiting = false
		}
	}

	// Another worker of the pool works through what is left.
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	sess, err := zkconn.Dial(ctx, srv.Addr(), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	type runResult struct {
		res worker.Result
		err error
	}
	wres := make(chan runResult, 1)
	go func() {
		res, err := worker.Run(ctx, sess, job.New(sess.Conn(), l), worker.Config{
			Command: []string{"true"}, Loop: true, UntilDone: true, ID: "pool-1",
			Stdout: io.Discard, Stderr: io.Discard,
		})
		wres <- runResult{res, err}
	}()
	select {
	case r := <-wres:
		// Both items: b fresh, then a, given back, from the retry list.
		if r.res.Status != 0 || r.res.Ran != 2 || r.err != nil {
			t.Errorf("zkdog run --loop --until-done = %+v, %v; want status 0 after running 2 commands", r.res, r.err)
		}
	case <-time.After(hangGuard):
		retry, _, _ := stoppedConn.Children(l.Retry())
		counts, _ := mj.Counts(spec)
		t.Fatalf("zkdog run --loop --until-done still running %v later; retry list %q, %d of 2 items done", hangGuard, retry, counts.Done)
	}
	select {
	case r := <-mres:
		if r.err != nil || r.r.End != master.EndOK || r.r.OK != 2 || r.r.Retried != 0 {
			t.Errorf("master = %+v, %v; want end ok with 2 ok, none charged", r.r, r.err)
		}
		// The item given back ran on its next turn, uncharged.
		if res, item, err := mj.ResultOf(job.Outcome{Index: c.Index, Outcome: protocol.OK}); err != nil || res.Attempt != c.Attempt+1 || string(item) != "a" {
			t.Errorf("result of the item given back = %+v, %q, %v; want attempt %d of \"a\"", res, item, err, c.Attempt+1)
		}
	case <-time.After(hangGuard):
		t.Fatalf("the master still waiting %v after the worker exited", hangGuard)
	}
}
