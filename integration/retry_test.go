package integration

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/internal/zktest"
	"github.com/zkdog/zkdog/master"
)

var killTrials = flag.Int("kill-trials", 50, "trials of TestRandomWorkerKills")

// quickServer is a ZooKeeper whose sessions may be short, so that a
// killed worker's session, and with it its lease, ends within a second.
func quickServer(t *testing.T) *zkserver.Server {
	return zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
}

func readReport(t *testing.T, p *proc) master.Report {
	t.Helper()
	var r master.Report
	if err := json.Unmarshal(p.stdout.Bytes(), &r); err != nil {
		t.Fatalf("master --json printed %q: %v", p.stdout.String(), err)
	}
	return r
}

// startedWorker runs a worker whose command marks that it started and
// then blocks, and waits for the mark.
func startedWorker(t *testing.T, o opts, root string) (*proc, string) {
	t.Helper()
	mark := filepath.Join(t.TempDir(), "started")
	w := start(t, o, "run", "--root", root, "--session-timeout", "1s", "--",
		"sh", "-c", `echo $$ > "$1.pid"; echo "$ZKDOG_ITEM_INDEX" > "$1.tmp" && mv "$1.tmp" "$1" && exec sleep 300`, "sh", mark)
	waitFor(t, "the worker's command to start", func() bool { _, err := os.Stat(mark); return err == nil })
	return w, mark
}

func TestKilledWorkersItemIsRetried(t *testing.T) {
	srv := quickServer(t)
	o := opts{zk: srv.Addr()}
	root := rootFor(t)
	conn := connect(t, srv.Addr())
	m := start(t, o, "master", "--root", root, "--items", writeFile(t, "items", "precious\n"), "--retries", "1", "--json")
	waitJob(t, conn, root)
	victim, _ := startedWorker(t, o, root)
	rescuer := start(t, o, "run", "--root", root, "--loop", "--until-done", "--", "true")
	victim.signal(syscall.SIGKILL)
	expectExit(t, rescuer, 0)
	expectExit(t, m, exitOK)
	r := readReport(t, m)
	if r.OK != 1 || r.Retried != 1 || r.Lost != 0 {
		t.Fatalf("report = %+v, want the item done after one retry", r)
	}
	if !strings.Contains(m.stderr.String(), "handed out again") {
		t.Fatalf("the master did not say it handed the item out again:\n%s", m.stderr.String())
	}
}

func TestKilledWorkersItemIsLostWithoutRetries(t *testing.T) {
	srv := quickServer(t)
	o := opts{zk: srv.Addr()}
	root := rootFor(t)
	conn := connect(t, srv.Addr())
	m := start(t, o, "master", "--root", root, "--items", writeFile(t, "items", "fine\nprecious\n"))
	waitJob(t, conn, root)
	victim, _ := startedWorker(t, o, root) // takes item 1, "fine"
	expectExit(t, run(t, o, "run", "--root", root, "--", "true"), 0)
	victim.signal(syscall.SIGKILL)
	expectExit(t, m, exitLost)
	if s := m.stderr.String(); !strings.Contains(s, `lost item 1 "fine"`) || !strings.Contains(s, "lost 1") {
		t.Fatalf("the report does not name the lost item:\n%s", s)
	}
}

// Workers are SIGKILLed at random moments: before taking an item, between
// the ticket and the lease, while the command runs, while recording. Every
// time, every item must end with exactly one recorded result, the report
// must account for every item, and the master must exit 0 (one kill per
// trial, one retry allowed).
func TestRandomWorkerKills(t *testing.T) {
	srv := quickServer(t)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 3)
	for trial := range *killTrials {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			t.Run(fmt.Sprintf("trial-%02d", trial), func(t *testing.T) { killTrial(t, srv.Addr(), trial) })
		}()
	}
	wg.Wait()
}

func killTrial(t *testing.T, addr string, trial int) {
	const items = 4
	o := opts{zk: addr}
	root := fmt.Sprintf("/it/kills/%02d", trial)
	side := t.TempDir()
	conn := connect(t, addr)
	m := start(t, o, "master", "--root", root, "--items", writeFile(t, "items", lines(items, "item-%d")),
		"--retries", "1", "--timer", "30s", "--json", "--keep")
	waitJob(t, conn, root)
	work := []string{"sh", "-c", `echo $$ >> "$1/$ZKDOG_ITEM_INDEX"; sleep 0.0$(( $$ % 9 ))`, "sh", side}
	victim := start(t, o, append([]string{"run", "--root", root, "--loop", "--session-timeout", "1s", "--"}, work...)...)
	rescuer := start(t, o, append([]string{"run", "--root", root, "--loop", "--until-done", "--"}, work...)...)
	delay := time.Duration(rand.IntN(400)) * time.Millisecond
	select {
	case <-time.After(delay):
		_ = syscall.Kill(victim.cmd.Process.Pid, syscall.SIGKILL)
	case <-victim.done:
	}
	victim.wait()
	expectExit(t, rescuer, 0)
	expectExit(t, m, exitOK)
	r := readReport(t, m)
	if r.Items != items || r.OK != items || r.Failed+r.Lost+r.Unfinished != 0 || r.Retried > 1 {
		t.Fatalf("kill after %v: report = %+v, want %d items ok with at most one retry", delay, r, items)
	}
	// Each item's command ran at least once, and at most twice (the
	// killed attempt and its retry): at-least-once execution.
	for i := range items {
		b, err := os.ReadFile(filepath.Join(side, strconv.Itoa(i)))
		runs := strings.Count(string(b), "\n")
		if err != nil || runs < 1 || runs > 2 {
			t.Errorf("kill after %v: item %d ran %d times (%v)", delay, i, runs, err)
		}
	}
	// Exactly one recorded result per item.
	for b := range 1 {
		names, _, err := conn.Children(fmt.Sprintf("%s/results/%05d", root, b))
		if err != nil || len(names) != items {
			t.Fatalf("kill after %v: results %v (%v), want %d", delay, names, err, items)
		}
	}
	cleanJob(t, conn, root)
}

// A worker frozen longer than its session timeout loses its session: the
// server drops its lease, the item is done by another worker, and when the
// frozen worker thaws it stops its command instead of recording a second
// result.
func TestExpiredSessionStopsTheCommand(t *testing.T) {
	srv := quickServer(t)
	o := opts{zk: srv.Addr()}
	root := rootFor(t)
	conn := connect(t, srv.Addr())
	m := start(t, o, "master", "--root", root, "--items", writeFile(t, "items", "precious\n"), "--retries", "1",
		"--timer", "60s", "--json", "--keep")
	waitJob(t, conn, root)
	victim, mark := startedWorker(t, o, root)
	childPid := readPids(t, mark+".pid", 1)[0]
	victim.signal(syscall.SIGSTOP)
	rescuer := start(t, o, "run", "--root", root, "--loop", "--until-done", "--", "true")
	expectExit(t, rescuer, 0)
	expectExit(t, m, exitOK)
	victim.signal(syscall.SIGCONT)
	expectExit(t, victim, exitStopped)
	if !descendantsGone([]int{childPid}) {
		t.Fatalf("the frozen worker's command (pid %d) outlived it", childPid)
	}
	r := readReport(t, m)
	if r.OK != 1 || r.Retried != 1 {
		t.Fatalf("report = %+v, want one item done after one retry", r)
	}
	names, _, err := conn.Children(root + "/results/00000")
	if err != nil || len(names) != 1 {
		t.Fatalf("results %v (%v), want exactly one", names, err)
	}
	if s := victim.stderr.String(); !strings.Contains(s, "session") {
		t.Fatalf("the thawed worker did not say it lost its session:\n%s", s)
	}
}

// The master dies mid-job; a worker dies while no master watches; a new
// master, zkdog wait, takes over: it finds the dead worker's item by its
// sweep, hands it out again, and ends the job with every item done. The
// item's version tells a turn that was leased from a ticket whose reply
// was lost, so the vanished worker is charged.
func TestWaitTakesOverFromADeadMaster(t *testing.T) {
	srv := quickServer(t)
	o := opts{zk: srv.Addr()}
	root := rootFor(t)
	conn := connect(t, srv.Addr())
	first := start(t, o, "master", "--root", root, "--items", writeFile(t, "items", "a\nb\nc\n"), "--retries", "1", "--timer", "30s")
	waitJob(t, conn, root)
	victim, _ := startedWorker(t, o, root)
	first.signal(syscall.SIGKILL)
	first.wait()
	victim.signal(syscall.SIGKILL)
	victim.wait()
	// The victim's lease goes with its session, while no master watches.
	waitFor(t, "the dead worker's lease to vanish", func() bool {
		kids, _, err := conn.Children(root + "/leases")
		return err == nil && len(kids) == 0
	})
	second := start(t, o, "wait", "--root", root, "--json")
	rescuer := start(t, o, "run", "--root", root, "--loop", "--until-done", "--", "true")
	expectExit(t, rescuer, 0)
	expectExit(t, second, exitOK)
	r := readReport(t, second)
	// The item's version says it was leased: its worker ran and vanished,
	// and is charged like any other (--retries 1 allows one).
	if r.Items != 3 || r.OK != 3 || r.Retried != 1 {
		t.Fatalf("report = %+v, want 3 items ok and one retry charged", r)
	}
	if !strings.Contains(second.stderr.String(), "its worker vanished while no master watched; item handed out again") {
		t.Fatalf("the new master did not say how it found the item:\n%s", second.stderr.String())
	}
}
