package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/master"
)

// resultRows runs zkdog results --json on root and returns its rows, and
// what it printed.
func resultRows(t *testing.T, root string) ([]master.ResultRow, string) {
	t.Helper()
	p := run(t, opts{}, "results", "--root", root, "--json")
	expectExit(t, p, exitOK)
	var rows []master.ResultRow
	if err := json.Unmarshal(p.stdout.Bytes(), &rows); err != nil {
		t.Fatalf("zkdog results --json printed %q: %v", p.stdout.String(), err)
	}
	return rows, p.stdout.String()
}

func rowOf(t *testing.T, rows []master.ResultRow, item string) master.ResultRow {
	t.Helper()
	for _, r := range rows {
		if r.Item == item {
			return r
		}
	}
	t.Fatalf("zkdog results has no row for %q: %+v", item, rows)
	return master.ResultRow{}
}

// Issue 11: an item that exits 75 on its first attempt and 0 on its
// second ends ok with 2 attempts, and the master exits 0.
func TestPolicyRunRetryOnExitCode(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", "steady\nflaky\n"),
		"--timer", "60s", "--retries", "1", "--retry-on", "75", "--keep")
	t.Cleanup(func() { cleanJob(t, conn, root) })
	waitJob(t, conn, root)
	script := `[ "$1" = flaky ] && [ "$ZKDOG_ATTEMPT" = 1 ] && { echo "scratch full" >&2; exit 75; }; exit 0`
	w := run(t, opts{}, "run", "--root", root, "--loop", "--until-done", "--", "sh", "-c", script, "sh", "{}")
	expectExit(t, w, 75) // the status of the command that failed
	expectExit(t, m, exitOK)
	rows, out := resultRows(t, root)
	r := rowOf(t, rows, "flaky")
	if r.Outcome != protocol.OK || r.Attempts != 2 || !strings.Contains(out, `"attempts":2`) {
		t.Fatalf("flaky: %+v; want ok with 2 attempts\n%s", r, out)
	}
	if len(r.Earlier) != 1 || r.Earlier[0].Outcome != protocol.Failed || r.Earlier[0].Exit != 75 || r.Earlier[0].Stderr != "scratch full\n" {
		t.Fatalf("flaky's earlier attempts %+v; want one failed with exit 75 and its message", r.Earlier)
	}
	if s := rowOf(t, rows, "steady"); s.Outcome != protocol.OK || s.Attempts != 1 {
		t.Fatalf("steady: %+v; want ok at once", s)
	}
	if !strings.Contains(w.stderr.String(), "handed out again") {
		t.Errorf("the worker did not say it handed the item out again:\n%s", w.stderr.String())
	}
}

// --no-retry-exit wins over --retry-on failed: an item exiting 2 is not
// retried.
func TestPolicyRunNoRetryExit(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", "bad-input\n"),
		"--timer", "60s", "--retries", "3", "--retry-on", "failed", "--no-retry-exit", "2")
	waitJob(t, conn, root)
	w := run(t, opts{}, "run", "--root", root, "--loop", "--until-done", "--", "sh", "-c", "exit 2")
	expectExit(t, w, 2)
	expectExit(t, m, exitFailed)
	rows, out := resultRows(t, root)
	if r := rowOf(t, rows, "bad-input"); r.Outcome != protocol.Failed || r.Exit != 2 || r.Attempts != 1 || len(r.Earlier) != 0 {
		t.Fatalf("bad-input: %+v; want failed with exit 2 after 1 attempt\n%s", r, out)
	}
	if n := strings.Count(w.stderr.String(), "took item"); n != 1 {
		t.Errorf("the worker took an item %d times, want once:\n%s", n, w.stderr.String())
	}
}

// A worker TERMed mid-item (a scheduler's time limit, preemption) gives
// its item back uncharged and takes no other; another worker finishes
// both, and the master, with no retries, exits 0.
func TestPolicyRunTermRequeuesUncharged(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", "long\nother\n"),
		"--timer", "60s", "--retries", "0", "--keep")
	t.Cleanup(func() { cleanJob(t, conn, root) })
	waitJob(t, conn, root)
	mark := filepath.Join(t.TempDir(), "started")
	// The first attempt at "long" runs until stopped; every other is quick.
	script := `if [ "$1" = long ] && [ "$ZKDOG_ATTEMPT" = 1 ]; then touch "$2"; exec sleep 1000; fi`
	victim := start(t, opts{}, "run", "--root", root, "--loop", "--", "sh", "-c", script, "sh", "{}", mark)
	waitFor(t, "the first attempt to start", func() bool { _, err := os.Stat(mark); return err == nil })
	victim.signal(syscall.SIGTERM)
	expectExit(t, victim, 128+int(syscall.SIGTERM))
	if s := victim.stderr.String(); strings.Count(s, "took item") != 1 || !strings.Contains(s, "not charged") {
		t.Errorf("the TERMed worker should take one item and say it went back uncharged:\n%s", s)
	}
	rescuer := run(t, opts{}, "run", "--root", root, "--loop", "--until-done", "--", "sh", "-c", script, "sh", "{}", mark)
	expectExit(t, rescuer, 0)
	expectExit(t, m, exitOK)
	rows, out := resultRows(t, root)
	r := rowOf(t, rows, "long")
	if r.Outcome != protocol.OK || r.Attempts != 2 || len(r.Earlier) != 1 || r.Earlier[0].Outcome != protocol.Terminated || r.Earlier[0].Exit != 143 {
		t.Fatalf("long: %+v; want ok on attempt 2 after one terminated with 143\n%s", r, out)
	}
	if o := rowOf(t, rows, "other"); o.Outcome != protocol.OK {
		t.Fatalf("other: %+v; want ok", o)
	}
}

// With --on-term fail a TERM records the item failed, as before.
func TestPolicyRunTermFail(t *testing.T) {
	root := rootFor(t)
	initJob(t, opts{}, root, 1, "--timer", "60s")
	mark := filepath.Join(t.TempDir(), "started")
	w := start(t, opts{env: []string{"ZKDOG_ON_TERM=fail"}}, "run", "--root", root, "--", "sh", "-c", `touch "$1"; exec sleep 1000`, "sh", mark)
	waitFor(t, "the command to start", func() bool { _, err := os.Stat(mark); return err == nil })
	w.signal(syscall.SIGTERM)
	expectExit(t, w, 128+int(syscall.SIGTERM))
	if r := resultOf(t, connect(t, shared.Addr()), root, 0); r.Outcome != protocol.Failed || r.Exit != 143 {
		t.Fatalf("recorded %+v; want failed with 143", r)
	}
}

// --lifetime: a worker with less time left than an item is expected to
// need takes nothing more and exits 0, leaving the items queued.
func TestPolicyRunLifetime(t *testing.T) {
	t.Run("item-time", func(t *testing.T) {
		root := rootFor(t)
		initJob(t, opts{}, root, 3, "--timer", "60s")
		w := run(t, opts{}, "run", "--root", root, "--loop", "--lifetime", "10m", "--item-time", "1h", "--", "true")
		expectExit(t, w, exitOK)
		if s := runStatusOf(t, root); s.Queued != 3 || s.Done != 0 {
			t.Fatalf("status %+v; want all 3 items left queued", s)
		}
		if s := w.stderr.String(); !strings.Contains(s, "not taking another item") || !strings.Contains(s, "--item-time") {
			t.Fatalf("the worker did not say why it took nothing:\n%s", s)
		}
	})
	t.Run("the worker's own median", func(t *testing.T) {
		root := rootFor(t)
		initJob(t, opts{}, root, 3, "--timer", "60s")
		// Nothing says what the first item needs, so it is taken; it
		// takes 2s, after which less than 2s of the 3s is left.
		w := run(t, opts{}, "run", "--root", root, "--loop", "--lifetime", "3s", "--", "sleep", "2")
		expectExit(t, w, exitOK)
		if s := runStatusOf(t, root); s.Done != 1 || s.Queued != 2 {
			t.Fatalf("status %+v; want 1 done and 2 left queued", s)
		}
		if s := w.stderr.String(); !strings.Contains(s, "not taking another item") || !strings.Contains(s, "items this worker ran") {
			t.Fatalf("the worker did not say it stopped for its own median:\n%s", s)
		}
	})
	t.Run("auto outside a scheduler", func(t *testing.T) {
		root := rootFor(t)
		initJob(t, opts{}, root, 2, "--timer", "60s")
		w := run(t, opts{}, "run", "--root", root, "--loop", "--lifetime", "auto", "--", "true")
		expectExit(t, w, exitOK)
		if s := runStatusOf(t, root); s.Done != 2 {
			t.Fatalf("status %+v; want both items done: no limit applies", s)
		}
		if s := w.stderr.String(); strings.Count(s, "no lifetime limit applies") != 1 {
			t.Fatalf("want one warning that no limit applies:\n%s", s)
		}
	})
}

// --item-timeout stops the command: zkdog run exits 124 saying so, and
// the result's outcome is timeout.
func TestPolicyRunItemTimeout(t *testing.T) {
	root := rootFor(t)
	initJob(t, opts{}, root, 1, "--timer", "60s", "--item-timeout", "1s")
	w := run(t, opts{}, "run", "--root", root, "--", "sleep", "30")
	expectExit(t, w, exitStopped)
	lines := strings.Split(strings.TrimSpace(w.stderr.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "zkdog: stopped the command") || !strings.Contains(last, "--item-timeout 1s") {
		t.Errorf("the last line does not say the --item-timeout stopped the command:\n%s", w.stderr.String())
	}
	if r := resultOf(t, connect(t, shared.Addr()), root, 0); r.Outcome != protocol.Timeout || r.Exit != 143 {
		t.Fatalf("recorded %+v; want timeout with the command's 143", r)
	}
}

// Bad values of run's policy flags: one line naming the flag and what to
// give, exit 125 (zkdog run's own failure, as for any of its flags),
// nothing taken.
func TestPolicyRunBadFlags(t *testing.T) {
	root := rootFor(t)
	initJob(t, opts{}, root, 1, "--timer", "60s")
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--on-term", "retry"}, "--on-term"},
		{[]string{"--lifetime", "soon"}, "--lifetime"},
		{[]string{"--item-time", "-5s"}, "--item-time"},
	} {
		p := run(t, opts{}, append(append([]string{"run", "--root", root}, c.args...), "--", "true")...)
		expectExit(t, p, exitRunFailed)
		if s := strings.TrimSpace(p.stderr.String()); strings.Count(s, "\n") != 0 || !strings.Contains(s, c.says) {
			t.Errorf("zkdog run %v said %q; want one line naming %s", c.args, s, c.says)
		}
	}
	runNothingTaken(t, connect(t, shared.Addr()), root)
}
