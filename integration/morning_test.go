package integration

import (
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/master"
)

// failTwo is a command that fails items b and d with a message on its
// standard error, and notes every item it ran in the file $1.
const failTwo = `echo "$ZKDOG_ITEM" >> "$1"; case "$ZKDOG_ITEM" in b|d) echo "cannot read input $ZKDOG_ITEM" >&2; exit 3;; esac`

// sealedState reads the job record at root and the znodes left of it.
func sealedState(t *testing.T, conn *zk.Conn, root string) (protocol.Job, int) {
	t.Helper()
	b, _, err := conn.Get(root)
	if err != nil {
		t.Fatalf("reading %s: %v", root, err)
	}
	spec, err := protocol.DecodeJob(b)
	if err != nil {
		t.Fatalf("%s: %v", root, err)
	}
	var count func(p string) int
	count = func(p string) int {
		kids, _, err := conn.Children(p)
		if err != nil {
			t.Fatalf("listing %s: %v", p, err)
		}
		n := 1
		for _, k := range kids {
			n += count(path.Join(p, k))
		}
		return n
	}
	return spec, count(root)
}

// expectSealed checks that a master left the job at root sealed: in state
// finished, with at most nodes znodes.
func expectSealed(t *testing.T, conn *zk.Conn, root string, nodes int) protocol.Job {
	t.Helper()
	spec, n := sealedState(t, conn, root)
	if spec.State != protocol.StateFinished || spec.Summary == nil {
		t.Fatalf("the job at %s is %q after its master, want sealed (finished)", root, spec.State)
	}
	if n > nodes {
		t.Errorf("the sealed job at %s has %d znodes, want at most %d", root, n, nodes)
	}
	return spec
}

func joblogRows(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	ls := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if ls[0] != strings.TrimSuffix(master.JoblogHeader(), "\n") {
		t.Fatalf("joblog %s starts %q, want the header", name, ls[0])
	}
	return ls[1:]
}

// The morning after, as README's walkthrough types it: two of five items
// fail; the sealed job answers which, with their exit codes and messages;
// the joblog has a row per item; a late task succeeds without running its
// command; a re-run of the failures runs exactly those two; the finished
// jobs are listed and pruned.
func TestMorningAfter(t *testing.T) {
	prefix := rootFor(t)
	root := prefix + "/night"
	dir := t.TempDir()
	ran, joblog := filepath.Join(dir, "ran"), filepath.Join(dir, "joblog.tsv")
	conn := connect(t, shared.Addr())

	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", "a\nb\nc\nd\ne\n"), "--timer", "30s", "--joblog", joblog)
	waitJob(t, conn, root)
	expectExit(t, run(t, opts{}, "run", "--root", root, "--loop", "--", "sh", "-c", failTwo, "sh", ran), 3)
	expectExit(t, m, exitFailed)
	if r := m.stderr.String(); !strings.Contains(r, `failed item 2 "b"`) || !strings.Contains(r, "cannot read input b") {
		t.Errorf("the master's report does not name item b with its error output:\n%s", r)
	}

	// Root, items, results, one result bucket, two results.
	spec := expectSealed(t, conn, root, 6)
	if s := spec.Summary; s.Exit != exitFailed || s.Outcomes[protocol.OK] != 3 || s.Outcomes[protocol.Failed] != 2 {
		t.Errorf("sealed summary = %+v, want exit 1, 3 ok, 2 failed", s)
	}

	res := run(t, opts{}, "results", "--root", root, "--outcome", "failed", "--json")
	expectExit(t, res, exitOK)
	var rows []master.ResultRow
	if err := json.Unmarshal(res.stdout.Bytes(), &rows); err != nil {
		t.Fatalf("zkdog results --json printed %q: %v", res.stdout.String(), err)
	}
	if len(rows) != 2 {
		t.Fatalf("zkdog results --outcome failed listed %d rows, want 2: %+v", len(rows), rows)
	}
	for k, want := range []struct {
		index int
		item  string
	}{{2, "b"}, {4, "d"}} {
		r := rows[k]
		if r.Index != want.index || r.Item != want.item || r.Outcome != protocol.Failed || r.Exit != 3 ||
			r.Stderr != "cannot read input "+want.item+"\n" || r.Attempts != 1 || r.Host == "" || r.Start == nil {
			t.Errorf("row %d = %+v, want item %d %q failed with exit 3 and its message", k, r, want.index, want.item)
		}
	}

	log := joblogRows(t, joblog)
	if len(log) != 5 {
		t.Fatalf("the joblog has %d rows, want 5:\n%s", len(log), strings.Join(log, "\n"))
	}
	for i, l := range log {
		if f := strings.Split(l, "\t"); f[0] != string(rune('1'+i)) {
			t.Errorf("joblog row %d is for item %s", i+1, f[0])
		}
	}

	// A task that starts after the end: exit 0, its command never run.
	late := run(t, opts{}, "run", "--root", root, "--", "sh", "-c", "echo late >> $1", "sh", filepath.Join(dir, "late"))
	expectExit(t, late, exitOK)
	if _, err := os.Stat(filepath.Join(dir, "late")); err == nil {
		t.Error("a task started after the job finished ran its command")
	}
	if !strings.Contains(late.stderr.String(), "finished") {
		t.Errorf("the late task did not say the job is finished:\n%s", late.stderr.String())
	}

	// Re-run what failed: exactly b and d, under their first numbers.
	rerun := prefix + "/rerun"
	expectExit(t, run(t, opts{}, "init", "--root", rerun, "--from", root), exitOK)
	again := filepath.Join(dir, "again")
	m2 := start(t, opts{}, "wait", "--root", rerun, "--joblog", filepath.Join(dir, "rerun.tsv"))
	expectExit(t, run(t, opts{}, "run", "--root", rerun, "--loop", "--", "sh", "-c", `echo "$ZKDOG_ITEM_INDEX $ZKDOG_ITEM" >> "$1"`, "sh", again), exitOK)
	expectExit(t, m2, exitOK)
	// The program sees each item's first index, as in the first run.
	if b, _ := os.ReadFile(again); string(b) != "1 b\n3 d\n" {
		t.Errorf("the re-run ran %q, want b and d with their first indexes (1, 3)", b)
	}
	rerunLog := joblogRows(t, filepath.Join(dir, "rerun.tsv"))
	if len(rerunLog) != 2 || !strings.HasPrefix(rerunLog[0], "2\tb\tok\t") || !strings.HasPrefix(rerunLog[1], "4\td\tok\t") {
		t.Errorf("the re-run's joblog does not join on the first numbers:\n%s", strings.Join(rerunLog, "\n"))
	}

	// The same from the joblog.
	fromLog := prefix + "/fromlog"
	expectExit(t, run(t, opts{}, "init", "--root", fromLog, "--from-joblog", joblog, "--outcome", "failed"), exitOK)
	fl := run(t, opts{}, "results", "--root", fromLog, "--json")
	expectExit(t, fl, exitOK)
	if err := json.Unmarshal(fl.stdout.Bytes(), &rows); err != nil || len(rows) != 2 || rows[0].Item != "b" || rows[1].Index != 4 || rows[1].Outcome != protocol.Unfinished {
		t.Errorf("a job from the joblog has rows %+v (%v), want b and d unfinished", rows, err)
	}
	expectExit(t, run(t, opts{}, "clear", "--root", fromLog), exitOK)

	// Listing and pruning.
	jobs := run(t, opts{}, "jobs", "--json", prefix)
	expectExit(t, jobs, exitOK)
	var listed []struct {
		Root  string `json:"root"`
		State string `json:"state"`
		Exit  *int   `json:"exit"`
	}
	if err := json.Unmarshal(jobs.stdout.Bytes(), &listed); err != nil || len(listed) != 2 ||
		listed[0].Root != root || listed[0].State != protocol.StateFinished || listed[0].Exit == nil || *listed[0].Exit != exitFailed {
		t.Fatalf("zkdog jobs %s = %s (%v), want %s finished with exit 1, and the re-run", prefix, jobs.stdout.String(), err, root)
	}
	expectExit(t, run(t, opts{}, "clear", "--finished", "--older-than", "1h", prefix), exitOK)
	if !exists(t, conn, root) {
		t.Fatal("clear --finished --older-than 1h removed a job that ended a moment ago")
	}
	expectExit(t, run(t, opts{}, "clear", "--finished", "--older-than", "0s", prefix), exitOK)
	for _, r := range []string{root, rerun} {
		if exists(t, conn, r) {
			t.Errorf("clear --finished --older-than 0s left %s", r)
		}
	}
}

// A master killed part way leaves a joblog of what it saw; the one that
// takes over appends only the rows missing, so the joblog has one row per
// item. A live job is never pruned.
func TestJoblogTakeover(t *testing.T) {
	prefix := rootFor(t)
	root := prefix + "/job"
	dir := t.TempDir()
	joblog := filepath.Join(dir, "joblog.tsv")
	conn := connect(t, shared.Addr())

	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", lines(6, "item-%d")), "--timer", "30s", "--joblog", joblog)
	waitJob(t, conn, root)
	for range 3 {
		expectExit(t, run(t, opts{}, "run", "--root", root, "--", "true"), exitOK)
	}
	waitFor(t, "the joblog to have the first three rows", func() bool {
		b, _ := os.ReadFile(joblog)
		return strings.Count(string(b), "\n") == 4
	})
	m.signal(syscall.SIGKILL)
	m.wait()

	expectExit(t, run(t, opts{}, "clear", "--finished", prefix), exitOK)
	if !exists(t, conn, root) {
		t.Fatal("clear --finished removed a live job")
	}

	w := start(t, opts{}, "wait", "--root", root, "--joblog", joblog)
	expectExit(t, run(t, opts{}, "run", "--root", root, "--loop", "--", "true"), exitOK)
	expectExit(t, w, exitOK)
	var indexes []string
	for _, l := range joblogRows(t, joblog) {
		indexes = append(indexes, strings.Split(l, "\t")[0])
	}
	slices.Sort(indexes)
	if !slices.Equal(indexes, []string{"1", "2", "3", "4", "5", "6"}) {
		t.Errorf("after a takeover the joblog has rows for %v, want each of 1-6 once", indexes)
	}
	// A job that went well leaves its root and two directories.
	expectSealed(t, conn, root, 3)
}

// A master that died while sealing (the job marked finished, its counts
// not yet written, nothing pruned) leaves a job that zkdog wait finishes
// sealing: the counts are written and what is not kept goes.
func TestWaitFinishesAnInterruptedSeal(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	expectExit(t, run(t, opts{}, "init", "--root", root, "--items", writeFile(t, "items", "a\nb\n")), exitOK)
	expectExit(t, run(t, opts{}, "run", "--root", root, "--loop", "--", "true"), exitOK)
	b, _, err := conn.Get(root)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := protocol.DecodeJob(b)
	if err != nil {
		t.Fatal(err)
	}
	// What the freeze leaves: the state and a summary without counts.
	spec.State, spec.Summary = protocol.StateFinished, &protocol.Summary{End: "ok", Exit: exitOK, Host: "gone"}
	if _, err := conn.Set(root, protocol.Encode(spec), -1); err != nil {
		t.Fatal(err)
	}
	w := run(t, opts{}, "wait", "--root", root)
	expectExit(t, w, exitOK)
	if !strings.Contains(w.stderr.String(), "ok 2") {
		t.Errorf("wait's report does not count the two items ok:\n%s", w.stderr.String())
	}
	if s := expectSealed(t, conn, root, 3); s.Summary.Outcomes[protocol.OK] != 2 {
		t.Errorf("summary after wait: %+v, want 2 ok", s.Summary)
	}
}
