package integration

// Regression tests for what the protocol-2 rework fixed: session loss
// noticed in time, a deleted timer, roots that are not (or no longer
// wholly) jobs, exit codes that agree, jobs without items, and worker
// settings that cannot work with the job's timer. Each test says above it
// what the code before the rework did.
//
// ZKDOG_TEST_BIN=/path/to/zkdog runs these tests (and only these) against
// another build instead of the one TestMain made, to see that they catch
// what an older zkdog did:
//
//	ZKDOG_TEST_BIN=/tmp/oldzk/zkdog go test -race -count=1 -run Fault ./integration/

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkproxy"
	"github.com/zkdog/zkdog/internal/zktest"
	"github.com/zkdog/zkdog/master"
)

// Exit codes as README's table has them; literal here, so that these
// tests read the same against any build.
const (
	faultExitOK      = 0
	faultExitUsage   = 2 // operator commands: bad flags, no job, not a job, partly removed
	faultExitRunFail = 125
)

// hangGuard bounds a command that must end promptly; past it, the code
// under test is taken to hang (the old code spun for ever on some of these).
const hangGuard = 15 * time.Second

// fo points o at ZKDOG_TEST_BIN when it is set.
func fo(o opts) opts {
	if b := os.Getenv("ZKDOG_TEST_BIN"); b != "" {
		o.bin = b
	}
	return o
}

// exitWithin is the exit code of p, failing the test if p is still running
// after limit.
func exitWithin(t *testing.T, p *proc, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(limit):
		t.Fatalf("zkdog %v still running after %v (hung?)\nstderr:\n%s", p.cmd.Args[1:], limit, p.stderr.String())
		return -1
	}
}

// expectExitWithin is expectExit with a hang guard.
func expectExitWithin(t *testing.T, p *proc, limit time.Duration, want int) {
	t.Helper()
	if got := exitWithin(t, p, limit); got != want {
		t.Fatalf("zkdog %v exited %d, want %d\nstderr:\n%s", p.cmd.Args[1:], got, want, p.stderr.String())
	}
}

// oneErrorLine checks that p's standard error is one "zkdog: " line that
// contains every one of wants.
func oneErrorLine(t *testing.T, p *proc, wants ...string) {
	t.Helper()
	s := strings.TrimSpace(p.stderr.String())
	t.Logf("zkdog %s: %s", p.cmd.Args[1], s)
	if n := strings.Count(s, "\n") + 1; s == "" || n != 1 || !strings.HasPrefix(s, "zkdog: ") {
		t.Errorf("zkdog %v: stderr is not one zkdog: line:\n%s", p.cmd.Args[1:], s)
	}
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("zkdog %v: stderr does not say %q:\n%s", p.cmd.Args[1:], w, s)
		}
	}
}

// createNode creates p with data, and its missing parents with none, and
// removes p again at the end of the test.
func createNode(t *testing.T, conn *zk.Conn, p string, data []byte) {
	t.Helper()
	var parents []string
	for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
		parents = append([]string{dir}, parents...)
	}
	for _, dir := range parents {
		if _, err := conn.Create(dir, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatal(err)
		}
	}
	if _, err := conn.Create(p, data, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanJob(t, conn, p) })
}

// jobReady waits until the job at root is ready for workers. The record
// is read as plain JSON, so that a build of another protocol version
// (ZKDOG_TEST_BIN) is waited for too.
func jobReady(t *testing.T, conn *zk.Conn, root string) {
	t.Helper()
	waitFor(t, "the job at "+root+" to be ready", func() bool {
		b, _, err := conn.Get(root)
		var rec struct {
			State string `json:"state"`
		}
		return err == nil && json.Unmarshal(b, &rec) == nil && rec.State == "ready"
	})
}

// onlyChild waits until the node at dir has exactly one child and returns
// its name.
func onlyChild(t *testing.T, conn *zk.Conn, dir string) string {
	t.Helper()
	var name string
	waitFor(t, "one child of "+dir, func() bool {
		kids, _, err := conn.Children(dir)
		if err != nil || len(kids) != 1 {
			return false
		}
		name = kids[0]
		return true
	})
	return name
}

// children lists dir, failing the test on error.
func children(t *testing.T, conn *zk.Conn, dir string) []string {
	t.Helper()
	kids, _, err := conn.Children(dir)
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	return kids
}

// noResults fails the test if any result is recorded in the job at root,
// by the results tree and by the done counter.
func noResults(t *testing.T, conn *zk.Conn, root string) {
	t.Helper()
	for _, b := range children(t, conn, root+"/results") {
		if names := children(t, conn, root+"/results/"+b); len(names) > 0 {
			t.Errorf("results recorded in bucket %s: %v", b, names)
		}
	}
	if ok, st, err := conn.Exists(root + "/done"); err != nil || !ok || st.Version != 0 {
		t.Errorf("the done counter is %+v (exists %v, %v), want version 0: no result", st, ok, err)
	}
}

// pidGone reports, on a channel, when pid is gone (a zombie counts as gone),
// polling every few milliseconds until stop closes.
func pidGone(pid int, stop <-chan struct{}) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		for {
			if descendantsGone([]int{pid}) {
				out <- time.Now()
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return out
}

// The worker's connection is black-holed (a silent partition: no RST, no
// FIN, nothing). Its command must be dead before the server can expire the
// session and so delete the timer and lease, the moment from which another
// worker may be handed the item; with a command that ignores TERM too, so
// that only a KILL within the session's stop lead (not after the 30 s
// --kill-timeout) can end it in time. The test watches the timer through a
// direct connection to see the server's expiry, and the command's pid.
//
// Old behaviour caught: the worker noticed the partition only at the
// client's read timeout (2/3 of the session timeout) and gave the session a
// whole session timeout more from there; the command ran on up to about 2/3
// of a session timeout (plus the kill timeout, for a command that ignores
// TERM) past the server's expiry, the same item running twice at once.
func TestFaultPartitionStopsTheCommandBeforeExpiry(t *testing.T) {
	// A small tick, so that the server expires the session within 200 ms
	// of the session timeout (the shared server's 2 s tick would round the
	// expiry up by as much as 2 s and hide a late stop).
	srv := zktest.Standalone(t, zktest.WithTickTime(200*time.Millisecond),
		zktest.WithSessionTimeouts(400*time.Millisecond, 20*time.Second))
	for _, c := range []struct{ name, script string }{
		{"dies on TERM", `echo $$ > "$1"; exec sleep 1000`},
		{"ignores TERM", `trap '' TERM; echo $$ > "$1"; exec sleep 1000`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			partitionTrial(t, srv.Addr(), c.script)
		})
	}
}

func partitionTrial(t *testing.T, addr, script string) {
	proxy := zkproxy.ForTest(t, addr)
	conn := connect(t, addr)
	root := rootFor(t)
	initJob(t, fo(opts{zk: addr}), root, 1, "--timer", "60s")
	pidFile := filepath.Join(t.TempDir(), "pid")
	w := start(t, fo(opts{zk: proxy.Addr()}), "run", "--root", root, "--session-timeout", "4s", "--kill-timeout", "30s",
		"--", "sh", "-c", script, "sh", pidFile)
	pid := readPids(t, pidFile, 1)[0]
	timer := root + "/timers/" + onlyChild(t, conn, root+"/timers")
	lease := onlyChild(t, conn, root+"/leases")
	ok, _, deleted, err := conn.ExistsW(timer)
	if err != nil || !ok {
		t.Fatalf("the worker's timer %s: exists %v, %v", timer, ok, err)
	}

	proxy.Partition()
	partitioned := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	gone := pidGone(pid, stop)

	var expired time.Time
	select {
	case ev := <-deleted:
		expired = time.Now()
		if ev.Type != zk.EventNodeDeleted {
			t.Fatalf("the timer's watch fired with %v, want its deletion by the session's expiry", ev)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not expire the partitioned worker's session within 20 s")
	}
	t.Logf("the server expired the session %v after the partition", expired.Sub(partitioned).Round(time.Millisecond))
	var stopped time.Time
	select {
	case at := <-gone:
		stopped = at
		if !at.Before(expired) {
			t.Errorf("the command died %v after the expiry", at.Sub(expired))
		}
		t.Logf("the command was gone %v after the partition, %v before the expiry",
			at.Sub(partitioned).Round(time.Millisecond), expired.Sub(at).Round(time.Millisecond))
	default:
		// Say how late it was, for the report.
		select {
		case at := <-gone:
			stopped = at
			t.Errorf("the command (pid %d) outlived the server's expiry of the session by %v", pid, at.Sub(expired).Round(time.Millisecond))
		case <-time.After(hangGuard):
			t.Errorf("the command (pid %d) outlived the server's expiry of the session by more than %v", pid, hangGuard)
		}
	}

	// The worker exits on its own, still cut off: it has nothing left to
	// do once its session is gone, and it holds a batch slot. One session
	// timeout after the server's expiry is ample (the client's close waits
	// a second for its reply).
	select {
	case <-w.done:
		t.Logf("zkdog run exited %d, %v after the partition, still partitioned", w.code, time.Since(partitioned).Round(time.Millisecond))
	case <-time.After(time.Until(expired.Add(4 * time.Second))):
		since := "its command still running"
		if !stopped.IsZero() {
			since = fmt.Sprintf("%v after its command was stopped", time.Since(stopped).Round(time.Millisecond))
		}
		t.Errorf("zkdog run still running, partitioned, one session timeout (4s) after its session expired (%v after the partition, %s)",
			time.Since(partitioned).Round(time.Millisecond), since)
	}
	// The network comes back; the worker has recorded nothing: its lease
	// went with its session, and a master would hand the item out again.
	proxy.Heal()
	code := exitWithin(t, w, hangGuard)
	t.Logf("zkdog run exited %d, %v after the partition", code, time.Since(partitioned).Round(time.Millisecond))
	if code == 0 {
		t.Errorf("zkdog run exited 0 although its command was stopped")
	}
	noResults(t, conn, root)
	if kids := children(t, conn, root+"/leases"); len(kids) != 0 {
		t.Errorf("leases left after the expiry: %v (was %s)", kids, lease)
	}
	if ok, st, err := conn.Exists(root + "/items/00000/0000000000"); err != nil || !ok {
		t.Errorf("reading item 0: exists %v, %v", ok, err)
	} else if attempt, leased := protocol.TurnOf(protocol.TurnCount(true, st.Version)); !leased || attempt != 1 {
		t.Errorf("item 0's turn node is at version %d (attempt %d, leased %v), want its first turn leased and not ended: the master's to charge and hand out again",
			st.Version, attempt, leased)
	}
	if s := w.stderr.String(); !strings.Contains(s, "session") {
		t.Errorf("zkdog run did not say it lost its session:\n%s", s)
	}
}

// Someone deletes a running worker's timer (README's case table: "timer
// deleted"). The command is stopped, the item dropped without a result, and
// the master hands it out again to the next worker, which records it ok.
//
// Old behaviour caught: the worker recorded the stopped command as failed,
// with status 143, so the item ended failed instead of being retried.
func TestFaultDeletedTimerDropsTheItem(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	// A 10 s timer: the master looks at vanished leases every tenth of it.
	initJob(t, fo(opts{}), root, 1, "--timer", "10s", "--retries", "1")
	m := start(t, fo(opts{}), "wait", "--root", root, "--json", "--keep")
	t.Cleanup(func() { cleanJob(t, conn, root) })
	pidFile := filepath.Join(t.TempDir(), "pid")
	w := start(t, fo(opts{}), "run", "--root", root, "--kill-timeout", "5s",
		"--", "sh", "-c", `echo $$ > "$1"; exec sleep 1000`, "sh", pidFile)
	pid := readPids(t, pidFile, 1)[0]
	timer := onlyChild(t, conn, root+"/timers")
	onlyChild(t, conn, root+"/leases")

	if err := conn.Delete(root+"/timers/"+timer, -1); err != nil {
		t.Fatal(err)
	}
	waitForUpTo(t, hangGuard, "the command to be stopped", func() bool { return descendantsGone([]int{pid}) })
	code := exitWithin(t, w, hangGuard)
	t.Logf("zkdog run exited %d after its timer was deleted", code)
	noResults(t, conn, root)
	waitForUpTo(t, hangGuard, "the dropped item's lease to go", func() bool {
		kids, _, err := conn.Children(root + "/leases")
		return err == nil && len(kids) == 0
	})

	// The master sees a leased turn end without a result and hands the
	// item out again.
	waitForUpTo(t, hangGuard, "the master to hand the item out again", func() bool {
		kids, _, err := conn.Children(root + "/retry")
		return err == nil && len(kids) == 1
	})
	second := run(t, fo(opts{}), "run", "--root", root, "--", "true")
	expectExit(t, second, 0)
	if s := second.stderr.String(); !strings.Contains(s, "attempt=2") {
		t.Errorf("the second worker did not take the item's second attempt:\n%s", s)
	}
	expectExitWithin(t, m, hangGuard, faultExitOK)
	r := readReport(t, m)
	if r.Items != 1 || r.OK != 1 || r.Failed+r.Lost+r.Unfinished != 0 || r.Retried != 1 {
		t.Fatalf("report = %+v, want the item ok after one retry", r)
	}
	if res := resultOf(t, conn, root, 0); res.Outcome != protocol.OK || res.Attempt != 2 {
		t.Fatalf("recorded %+v, want ok on the second attempt", res)
	}
	if names := children(t, conn, root+"/results/00000"); len(names) != 1 {
		t.Fatalf("results %v, want exactly one", names)
	}
}

// A root that exists but holds no data is not a zkdog job: zkdog run says
// so at once.
//
// Old behaviour caught: zkdog run never returned (the audit found it
// spinning at full CPU on the empty node).
func TestFaultRunOnNodeWithoutData(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	createNode(t, conn, root, nil)
	marker := filepath.Join(t.TempDir(), "ran")
	p := start(t, fo(opts{}), "run", "--root", root, "--", "touch", marker)
	expectExitWithin(t, p, hangGuard, faultExitRunFail)
	oneErrorLine(t, p, root, "not a zkdog job")
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran on a root that is not a job")
	}
}

// A job whose removal was interrupted is reported as partly removed, and
// zkdog clear removes what is left (with or without --force), so that the
// root can be used again. Two removals cut short: after the done and failed
// counters went; and after the clock and the timers went too.
//
// Old behaviour caught: with the clock and timers gone, status and clear
// --force exited 6 (as for ZooKeeper unreachable), and nothing could remove
// the remains but a hand-written zkCli session. With only done and failed
// gone, status showed the job as whole ("done 0") and exited 0, old and
// new alike (go-zookeeper's Exists gives a zero Stat, not nil, for a
// missing node, and the counters are read as version 0).
func TestFaultPartlyRemovedJob(t *testing.T) {
	cases := []struct {
		name  string
		gone  []string
		clear []string
	}{
		{"done and failed gone", []string{"done", "failed"}, []string{"clear"}},
		{"clock and timers gone too", []string{"done", "failed", "clock", "timers"}, []string{"clear", "--force"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := rootFor(t)
			conn := connect(t, shared.Addr())
			initJob(t, fo(opts{}), root, 2, "--timer", "60s")
			t.Cleanup(func() { cleanJob(t, conn, root) })
			for _, n := range c.gone {
				if err := conn.Delete(root+"/"+n, -1); err != nil {
					t.Fatal(err)
				}
			}
			st := start(t, fo(opts{}), "status", "--root", root)
			if code := exitWithin(t, st, hangGuard); code != faultExitUsage {
				t.Errorf("zkdog status on a partly removed job exited %d, want %d\nstdout:\n%s", code, faultExitUsage, st.stdout.String())
			} else {
				oneErrorLine(t, st, root, "remove it with zkdog clear")
			}

			cl := start(t, fo(opts{}), append(c.clear, "--root", root)...)
			expectExitWithin(t, cl, hangGuard, 0)
			if exists(t, conn, root) {
				t.Fatalf("zkdog %v left %s: %v", c.clear, root, children(t, conn, root))
			}
			again := start(t, fo(opts{}), "init", "--root", root, "--items", writeFile(t, "items", "a\n"))
			expectExitWithin(t, again, hangGuard, 0)
			jobReady(t, conn, root)
		})
	}
}

// zkdog wait and zkdog status give the same exit code for a root that is
// not a job: 2, whether something else is there or nothing is.
//
// Old behaviour caught: zkdog wait exited 6 (ZooKeeper unreachable) for a
// node holding other data, where zkdog status exited 2.
func TestFaultNotAJobExitCodesAgree(t *testing.T) {
	base := rootFor(t)
	conn := connect(t, shared.Addr())
	notJob := base + "/not-a-job"
	createNode(t, conn, notJob, []byte("hello"))
	t.Cleanup(func() { cleanJob(t, conn, base) })
	nothing := base + "/nothing-here"
	for _, root := range []string{notJob, nothing} {
		for _, cmd := range []string{"wait", "status"} {
			t.Run(cmd+" "+path.Base(root), func(t *testing.T) {
				p := start(t, fo(opts{}), cmd, "--root", root)
				expectExitWithin(t, p, hangGuard, faultExitUsage)
				oneErrorLine(t, p, root)
			})
		}
	}
	if b, _, err := conn.Get(notJob); err != nil || string(b) != "hello" {
		t.Errorf("the node that is not a job was changed: %q, %v", b, err)
	}
}

// A job without items ends once the workers it expects have come and gone,
// and not before; and a master started after the only worker left still
// sees the job finished.
//
// Old behaviour caught: there was no --expect-workers (init refused it,
// exit 2), so a job without items could not wait for staggered workers;
// and zkdog wait started after a --no-queue worker had come and gone waited
// for ever.
func TestFaultJobWithoutItems(t *testing.T) {
	t.Run("expect two staggered workers", func(t *testing.T) {
		root := rootFor(t)
		conn := connect(t, shared.Addr())
		expectExitWithin(t, start(t, fo(opts{}), "init", "--root", root, "--no-queue", "--expect-workers", "2", "--timer", "5s"), hangGuard, 0)
		t.Cleanup(func() { cleanJob(t, conn, root) })
		m := start(t, fo(opts{}), "wait", "--root", root)
		expectExitWithin(t, start(t, fo(opts{}), "run", "--root", root, "--no-queue", "--", "true"), hangGuard, 0)
		// A negative check, bounded: a master that ends the job on the
		// first worker does so as soon as its timer is gone, well within
		// two seconds (the master re-reads the timers at once on their
		// change, and the tally within 50 ms).
		select {
		case <-m.done:
			t.Fatalf("zkdog wait exited %d after the first of two expected workers\nstderr:\n%s", m.code, m.stderr.String())
		case <-time.After(2 * time.Second):
		}
		expectExitWithin(t, start(t, fo(opts{}), "run", "--root", root, "--no-queue", "--", "true"), hangGuard, 0)
		expectExitWithin(t, m, hangGuard, faultExitOK)
	})
	t.Run("wait after the worker left", func(t *testing.T) {
		root := rootFor(t)
		conn := connect(t, shared.Addr())
		expectExitWithin(t, start(t, fo(opts{}), "init", "--root", root, "--no-queue", "--timer", "5s"), hangGuard, 0)
		t.Cleanup(func() { cleanJob(t, conn, root) })
		expectExitWithin(t, start(t, fo(opts{}), "run", "--root", root, "--no-queue", "--", "true"), hangGuard, 0)
		m := start(t, fo(opts{}), "wait", "--root", root)
		expectExitWithin(t, m, hangGuard, faultExitOK)
	})
}

// Worker settings that cannot work with the job's timer are refused before
// an item is taken; the defaults derived from a short timer do work.
//
// Old behaviour caught: any --kick-interval and --sample-interval were
// taken, so a worker kicking every 800 ms of a 1 s timer looked hung after
// one late kick; and progress was sampled every second whatever the timer,
// so a command printing a line every 100 ms under a 1 s timer went
// un-kicked for about a second at a time and was reported hung.
func TestFaultSettingsAgainstTheTimer(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		root := rootFor(t)
		conn := connect(t, shared.Addr())
		initJob(t, fo(opts{}), root, 3, "--timer", "1s")
		t.Cleanup(func() { cleanJob(t, conn, root) })
		marker := filepath.Join(t.TempDir(), "ran")
		for _, c := range [][]string{{"--kick-interval", "800ms"}, {"--sample-interval", "2s"}} {
			p := start(t, fo(opts{}), append(append([]string{"run", "--root", root}, c...), "--", "touch", marker)...)
			expectExitWithin(t, p, hangGuard, faultExitRunFail)
			oneErrorLine(t, p, c[0])
		}
		if _, err := os.Stat(marker); err == nil {
			t.Error("the command ran with settings that cannot work")
		}
		st := start(t, fo(opts{}), "status", "--root", root, "--json")
		expectExitWithin(t, st, hangGuard, 0)
		var s master.JobStatus
		if err := json.Unmarshal(st.stdout.Bytes(), &s); err != nil {
			t.Fatalf("status --json printed %q: %v", st.stdout.String(), err)
		}
		if s.Items != 3 || s.Queued != 3 || s.Running != 0 || s.Done != 0 || s.Alive != 0 {
			t.Errorf("status = %+v, want all 3 items queued, none running or done, no timer", s)
		}
		if ok, cur, err := conn.Exists(root + "/cursor"); err != nil || !ok || cur.Version != 0 {
			t.Errorf("the cursor is %+v (exists %v, %v), want version 0: no ticket taken", cur, ok, err)
		}
	})

	t.Run("healthy command under a 1s timer", func(t *testing.T) {
		root := rootFor(t)
		conn := connect(t, shared.Addr())
		m := start(t, fo(opts{}), "master", "--root", root, "--items", writeFile(t, "items", "x\n"), "--timer", "1s")
		jobReady(t, conn, root)
		w := start(t, fo(opts{}), "run", "--root", root, "--",
			"sh", "-c", `for i in $(seq 30); do echo $i; sleep 0.1; done`)
		// The master would not judge this timer before twice the worker's
		// session timeout (20 s with the default 10 s), so the kicks are
		// watched directly as well: against the server's clock, the timer
		// must never go un-kicked for the job's 1 s.
		var maxAge atomic.Int64
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for {
				select {
				case <-w.done:
					return
				case <-time.After(20 * time.Millisecond):
				}
				now, err := conn.Set(root+"/clock", nil, -1)
				if err != nil {
					return // the job is gone: the master has finished
				}
				kids, _, err := conn.Children(root + "/timers")
				if err != nil {
					return
				}
				for _, k := range kids {
					if ok, st, err := conn.Exists(root + "/timers/" + k); err == nil && ok {
						if age := now.Mtime - st.Mtime; age > maxAge.Load() {
							maxAge.Store(age)
						}
					}
				}
			}
		}()
		expectExitWithin(t, w, hangGuard, 0)
		<-watched
		expectExitWithin(t, m, hangGuard, faultExitOK)
		t.Logf("the timer's greatest age seen: %d ms", maxAge.Load())
		if age := time.Duration(maxAge.Load()) * time.Millisecond; age >= time.Second {
			t.Errorf("the timer went un-kicked for %v, as long as the job's 1s timer, while the command printed every 100 ms", age)
		}
	})
}
