package integration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/master"
)

// TestMaster13OutageExits6: with ZooKeeper gone for longer than the outage
// limit, the master stops waiting on nothing: exit 6, and a report that
// says ZooKeeper was out of reach.
func TestMaster13OutageExits6(t *testing.T) {
	srv := quickServer(t)
	root := rootFor(t)
	conn := connect(t, srv.Addr())
	const limit = 3 * time.Second
	m := start(t, opts{zk: srv.Addr(), env: []string{master.OutageLimitEnv + "=" + limit.String()}},
		"master", "--root", root, "--items", writeFile(t, "items", "a\nb\n"), "--json")
	waitJob(t, conn, root)
	waitForJobWatched(t, m)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	gone := time.Now()
	// A guard against a hang, not a timing assertion: the limit plus
	// ZooKeeper's client retrying every server once a second.
	code := m.waitUpTo(limit + 30*time.Second)
	if code != exitZooKeeper {
		t.Fatalf("master exited %d %v after ZooKeeper went, want %d\nstderr:\n%s", code, time.Since(gone), exitZooKeeper, m.stderr.String())
	}
	r := readReport(t, m)
	if r.End != master.EndUnreachable || r.Exit != exitZooKeeper || !strings.Contains(r.Reason, "ZooKeeper was out of reach") ||
		!strings.Contains(r.Reason, "zkdog wait") || r.Unfinished != 2 {
		t.Errorf("report %+v, want end unreachable, exit 6, a reason naming the outage and zkdog wait, 2 unfinished", r)
	}
}

// TestMaster13WaitJobRemoved: zkdog wait whose job is removed under it
// exits 6 and still writes its report, which a recipe keeps in a file.
func TestMaster13WaitJobRemoved(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	expectExit(t, run(t, opts{}, "init", "--root", root, "--items", writeFile(t, "items", "a\nb\nc\n")), exitOK)
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			if format == "text" {
				expectExit(t, run(t, opts{}, "init", "--root", root, "--items", writeFile(t, "items", "a\nb\nc\n")), exitOK)
			}
			args := []string{"wait", "--root", root}
			if format == "json" {
				args = append(args, "--json")
			}
			w := start(t, opts{}, args...)
			// The waiter is following once it has read the job; give it
			// a job to lose only then, or it would find no job at all.
			waitForJobWatched(t, w)
			expectExit(t, run(t, opts{}, "clear", "--root", root, "--force"), exitOK)
			expectExit(t, w, exitZooKeeper)
			if format == "json" {
				var r master.Report
				if err := json.Unmarshal(w.stdout.Bytes(), &r); err != nil {
					t.Fatalf("wait --json printed %q: %v", w.stdout.String(), err)
				}
				if r.End != master.EndRemoved || r.Exit != exitZooKeeper || !strings.Contains(r.Reason, "removed") || r.Items != 3 {
					t.Errorf("report %+v, want end removed, exit 6, 3 items, a reason saying the job was removed", r)
				}
				return
			}
			if !strings.Contains(w.stderr.String(), "the job was removed while the master waited") ||
				!strings.Contains(w.stderr.String(), "(exit 6)") {
				t.Errorf("wait's report does not say the job was removed:\n%s", w.stderr.String())
			}
		})
	}
	if exists(t, conn, root) {
		t.Errorf("%s still exists", root)
	}
}

// waitForJobWatched waits until the waiter has read the job: the status
// line it logs in a batch log comes once it follows.
func waitForJobWatched(t *testing.T, w *proc) {
	t.Helper()
	waitFor(t, "zkdog wait to follow the job", func() bool {
		return strings.Contains(w.stderr.String(), "items done")
	})
}

// TestMaster13ItemsNUL: an item with a NUL byte is refused by init with
// its line, exit 2, and no job; lines of spaces and tabs are blank.
func TestMaster13ItemsNUL(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	p := run(t, opts{}, "init", "--root", root, "--items", writeFile(t, "items", "a\n \t \nb\x00c\n"))
	expectExit(t, p, exitUsage)
	msg := strings.TrimSpace(p.stderr.String())
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "line 3") || !strings.Contains(msg, "NUL") {
		t.Errorf("init said %q, want one line naming line 3 and the NUL", msg)
	}
	for _, leak := range []string{"master:", "job:", "zkconn:"} {
		if strings.Contains(msg, leak) {
			t.Errorf("init said %q, which names a Go package (%s)", msg, leak)
		}
	}
	if exists(t, conn, root) {
		t.Fatalf("init refused, yet created %s", root)
	}

	expectExit(t, run(t, opts{}, "init", "--root", root, "--items", writeFile(t, "items", "a\n \t \n\t\nb\n")), exitOK)
	defer cleanJob(t, conn, root)
	b, _, err := conn.Get(root)
	if err != nil {
		t.Fatal(err)
	}
	j, err := protocol.DecodeJob(b)
	if err != nil || j.Items != 2 {
		t.Errorf("job %+v, %v: want 2 items (the lines of spaces and tabs are blank)", j, err)
	}
}
