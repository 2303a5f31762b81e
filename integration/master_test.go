package integration

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/master"
)

// Twenty items over four looping workers: every item is processed exactly
// once and the master exits 0 with a report saying so.
func TestEveryItemOnceOverFourWorkers(t *testing.T) {
	root := rootFor(t)
	out := t.TempDir()
	items := writeFile(t, "items", lines(20, "item-%02d"))
	conn := connect(t, shared.Addr())

	m := start(t, opts{}, "master", "--root", root, "--items", items, "--timer", "30s", "--json")
	waitJob(t, conn, root)
	var workers []*proc
	for range 4 {
		workers = append(workers, start(t, opts{}, "run", "--root", root, "--loop", "--",
			"sh", "-c", `echo "$ZKDOG_ITEM_INDEX $$" >> "$1/{}"`, "sh", out))
	}
	for _, w := range workers {
		expectExit(t, w, 0)
	}
	expectExit(t, m, exitOK)

	for i := range 20 {
		b, err := os.ReadFile(filepath.Join(out, "item-"+leftPad(i)))
		if err != nil {
			t.Fatalf("item %d was never processed: %v", i, err)
		}
		if n := strings.Count(string(b), "\n"); n != 1 {
			t.Errorf("item %d processed %d times:\n%s", i, n, b)
		}
	}
	var r master.Report
	if err := json.Unmarshal(m.stdout.Bytes(), &r); err != nil {
		t.Fatalf("master --json printed %q: %v", m.stdout.String(), err)
	}
	if r.Exit != 0 || r.Items != 20 || r.OK != 20 || r.Failed+r.Lost+r.Unfinished != 0 {
		t.Fatalf("report = %+v, want 20 items all ok", r)
	}
	// A job that went well is sealed to its root and two directories.
	expectSealed(t, conn, root, 3)
}

func leftPad(i int) string {
	s := strconv.Itoa(i)
	if len(s) < 2 {
		s = "0" + s
	}
	return s
}

// A worker whose wrapper is frozen stops kicking its timer and answering
// ZooKeeper's pings: its session expires before its timer may be judged
// (never sooner than twice the session timeout), so the master finds it
// vanished, not hung, and accounts its item (lost, with no retries). The
// command is told to count any liveness as progress, so only the freeze
// can stop the kicks.
func TestFrozenWrapperIsAWorkerThatVanished(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", "only-item\n"), "--timer", "2s")
	waitJob(t, conn, root)
	w := start(t, opts{env: []string{"ZKDOG_SESSION_TIMEOUT=2s"}}, "run", "--root", root, "--id", "frozen-worker", "--progress", "alive",
		"--sample-interval", "100ms", "--kick-interval", "200ms", "--", "sleep", "300")
	waitFor(t, "the worker's lease", func() bool {
		kids, _, _ := conn.Children(root + "/leases")
		return len(kids) == 1
	})
	w.signal(syscall.SIGSTOP)
	expectExit(t, m, exitLost)
	if stderr := m.stderr.String(); !strings.Contains(stderr, "only-item") || !strings.Contains(stderr, "vanished") {
		t.Errorf("the master's report does not name the item and why:\n%s", stderr)
	}
	// Thawed, the worker finds its session gone and stops its command.
	w.signal(syscall.SIGCONT)
	if code := w.wait(); code != exitStopped {
		t.Errorf("the thawed worker exited %d, want %d (zkdog stopped its command)", code, exitStopped)
	}
}

func TestSyncTimeout(t *testing.T) {
	root := rootFor(t)
	m := run(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", "a\nb\n"), "--sync", "--sync-timeout", "1s")
	expectExit(t, m, exitSyncTimeout)
	if !strings.Contains(m.stderr.String(), "no worker started within 1s") {
		t.Fatalf("stderr does not say why:\n%s", m.stderr.String())
	}
	// Sealed, it keeps the two items that never ran, for a re-run.
	spec := expectSealed(t, connect(t, shared.Addr()), root, 6)
	if spec.Summary.Exit != exitSyncTimeout || spec.Summary.Outcomes[protocol.Unfinished] != 2 {
		t.Errorf("sealed summary %+v, want exit 4 and 2 unfinished", spec.Summary)
	}
}

// The first worker releases the barrier; the master goes on and finishes.
func TestSyncReleasedByFirstWorker(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", "a\n"), "--sync", "--sync-timeout", "60s")
	waitJob(t, conn, root)
	if !exists(t, conn, root+"/sync") {
		t.Fatal("no sync barrier with --sync")
	}
	expectExit(t, run(t, opts{}, "run", "--root", root, "--", "true"), 0)
	expectExit(t, m, exitOK)
}

func TestFailingCommandFailsTheJob(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", "good-1\nbad\ngood-2\n"), "--keep")
	waitJob(t, conn, root)
	w := run(t, opts{}, "run", "--root", root, "--loop", "--", "sh", "-c", `test "$ZKDOG_ITEM" != bad || exit 7`)
	expectExit(t, w, 7)
	expectExit(t, m, exitFailed)
	if s := m.stderr.String(); !strings.Contains(s, `failed item 2 "bad": exit 7`) {
		t.Fatalf("the report does not name the failed item:\n%s", s)
	}
	// --keep leaves the tree, with the result recorded by the worker.
	b, _, err := conn.Get(root + "/results/00000/0000000001.failed")
	if err != nil {
		t.Fatal(err)
	}
	res, err := protocol.DecodeResult(b)
	if err != nil || res.Exit != 7 || res.Outcome != protocol.Failed || res.Host == "" || res.Timer == "" {
		t.Fatalf("recorded result = %+v, %v", res, err)
	}
}

// A job without items: workers are watchdogs only; the master waits for
// them to come and go.
func TestTimerOnlyJob(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	m := start(t, opts{}, "master", "--root", root, "--no-queue", "--sync")
	waitJob(t, conn, root)
	expectExit(t, run(t, opts{}, "run", "--root", root, "--no-queue", "--", "sh", "-c", "exit 0"), 0)
	expectExit(t, m, exitOK)
	// A worker that wants an item is told the job has none.
	root2 := root + "-2"
	m2 := start(t, opts{}, "master", "--root", root2, "--no-queue", "--sync")
	waitJob(t, conn, root2)
	w := run(t, opts{}, "run", "--root", root2, "--", "true")
	expectExit(t, w, 125)
	if !strings.Contains(w.stderr.String(), "--no-queue") {
		t.Fatalf("stderr does not point at --no-queue:\n%s", w.stderr.String())
	}
	m2.signal(syscall.SIGINT)
	expectExit(t, m2, 130)
}

func TestItemReachesTheCommandThreeWays(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	const item = "data/file name.txt"
	// Items from standard input, and the timer in plain seconds as the
	// original took it.
	m := start(t, opts{stdin: item + "\n"}, "master", "--root", root, "--items", "-", "--timer", "10")
	if j := waitJob(t, conn, root); j.TimerMillis != 10000 {
		t.Fatalf("--timer 10 gave a %d ms timer, want 10000", j.TimerMillis)
	}
	w := run(t, opts{}, "run", "--root", root, "--stdin", "--",
		"sh", "-c", `printf '%s|%s|' "$1" "$ZKDOG_ITEM"; cat`, "sh", "{}")
	expectExit(t, w, 0)
	if got, want := w.stdout.String(), item+"|"+item+"|"+item+"\n"; got != want {
		t.Fatalf("the command printed %q, want %q", got, want)
	}
	expectExit(t, m, 0)
}

func TestEmptyQueueRunsNothing(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", "x\n"), "--keep")
	waitJob(t, conn, root)
	expectExit(t, run(t, opts{}, "run", "--root", root, "--", "true"), 0)
	expectExit(t, m, 0)
	marker := filepath.Join(t.TempDir(), "ran")
	late := run(t, opts{}, "run", "--root", root, "--", "touch", marker)
	expectExit(t, late, 0)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran on an empty queue")
	}
	// Kept (--keep), the job is still sealed: the late task says so.
	if !strings.Contains(late.stderr.String(), "is finished") {
		t.Fatalf("stderr does not say the job is finished:\n%s", late.stderr.String())
	}
}

// Bad input: one clear line, a documented exit code, nothing in ZooKeeper.
func TestBadInput(t *testing.T) {
	conn := connect(t, shared.Addr())
	dead := deadAddr(t)
	big := writeFile(t, "big", "ok\n"+strings.Repeat("x", protocol.MaxItemBytes+1)+"\n")
	empty := writeFile(t, "empty", "\n\n")
	good := writeFile(t, "good", "a\n")
	cases := []struct {
		name string
		o    opts
		args []string
		code int
		says string
	}{
		{"master unreachable", opts{zk: dead}, []string{"master", "--root", "/bad/a", "--items", good, "--session-timeout", "2s"}, exitZooKeeper, "unreachable"},
		{"run unreachable", opts{zk: dead}, []string{"run", "--root", "/bad/a", "--session-timeout", "2s", "--", "true"}, 125, "unreachable"},
		{"relative root", opts{}, []string{"master", "--root", "bad/a", "--items", good}, exitUsage, "not an absolute path"},
		{"run relative root", opts{}, []string{"run", "--root", "bad/a", "--", "true"}, 125, "not an absolute path"},
		{"no root", opts{}, []string{"master", "--items", good}, exitUsage, "--root is required"},
		{"missing items file", opts{}, []string{"master", "--root", "/bad/b", "--items", "/nonexistent/items"}, exitUsage, "no such file"},
		{"item too large", opts{}, []string{"master", "--root", "/bad/c", "--items", big}, exitUsage, "line 2: item too large: 65537 bytes"},
		{"empty items", opts{}, []string{"master", "--root", "/bad/d", "--items", empty}, exitUsage, "has no items"},
		{"bad duration", opts{}, []string{"master", "--root", "/bad/e", "--items", good, "--timer", "soon"}, exitUsage, "bad duration"},
		{"unknown flag", opts{}, []string{"master", "--root", "/bad/f", "--frobnicate"}, exitUsage, "frobnicate"},
		{"run without command", opts{}, []string{"run", "--root", "/bad/g"}, 125, "no command"},
		{"run on no job", opts{}, []string{"run", "--root", "/bad/none", "--", "true"}, 125, "no job at /bad/none"},
		{"bad progress", opts{}, []string{"run", "--root", "/bad/g", "--progress", "cpu,vibes", "--", "true"}, 125, "vibes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			started := time.Now()
			p := run(t, c.o, c.args...)
			expectExit(t, p, c.code)
			stderr := strings.TrimSpace(p.stderr.String())
			if !strings.Contains(stderr, c.says) {
				t.Errorf("stderr does not say %q:\n%s", c.says, stderr)
			}
			if last := stderr[strings.LastIndex(stderr, "\n")+1:]; !strings.HasPrefix(last, "zkdog: ") {
				t.Errorf("the error is not one zkdog: line at the end:\n%s", stderr)
			}
			t.Logf("exit %d after %v: %s", p.code, time.Since(started).Round(time.Millisecond), stderr)
		})
	}
	if exists(t, conn, "/bad") {
		kids, _, _ := conn.Children("/bad")
		t.Fatalf("bad input left znodes in ZooKeeper: /bad has %v", kids)
	}
}

func TestExistingJobIsRefusedAndKept(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", "first\n"))
	waitJob(t, conn, root)
	second := run(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items2", "x\ny\n"))
	expectExit(t, second, exitUsage)
	if !strings.Contains(second.stderr.String(), "already exists") {
		t.Fatalf("stderr:\n%s", second.stderr.String())
	}
	if j := waitJob(t, conn, root); j.Items != 1 {
		t.Fatalf("the existing job was changed: %+v", j)
	}
	expectExit(t, run(t, opts{}, "run", "--root", root, "--", "true"), 0)
	expectExit(t, m, 0)
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// A job left half-filled by a master that died is refused at once, not
// waited for.
func TestJobLeftFillingIsRefused(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	spec := protocol.Encode(protocol.Job{Protocol: protocol.Version, State: protocol.StateFilling, Items: 10, TimerMillis: 1000})
	if _, err := conn.Create("/it", nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatal(err)
	}
	if _, err := conn.Create(root, spec, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	defer cleanJob(t, conn, root)
	w := run(t, opts{}, "run", "--root", root, "--", "true")
	expectExit(t, w, 125)
	if !strings.Contains(w.stderr.String(), "died while filling") {
		t.Fatalf("stderr:\n%s", w.stderr.String())
	}
}
