package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zkdog/zkdog/master"
)

// The operator commands on a job with one hung worker, one live worker and
// items left: status, timers, kick, consume, clear.
func TestOperatorCommands(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	initJob(t, opts{}, root, 5, "--timer", "1s")
	dir := t.TempDir()
	// A worker whose command never progresses, and one whose command
	// kicks; both hold an item.
	hung := start(t, opts{}, "run", "--root", root, "--id", "hung-one", "--", "sh", "-c", `touch "$1"; exec sleep 1000`, "sh", filepath.Join(dir, "a"))
	env := opts{env: []string{"PATH=" + filepath.Dir(zkdogBin) + ":" + os.Getenv("PATH")}}
	busy := start(t, env, "run", "--root", root, "--id", "busy-one", "--sample-interval", "100ms", "--",
		"sh", "-c", `touch "$1"; while :; do zkdog kick; sleep 0.1; done`, "sh", filepath.Join(dir, "b"))
	for _, f := range []string{"a", "b"} {
		waitFor(t, "both commands to start", func() bool { _, err := os.Stat(filepath.Join(dir, f)); return err == nil })
	}

	// timers --expired lists the hung worker once its timer is over the
	// limit, and exits 1.
	var expired []master.TimerStatus
	waitFor(t, "the hung worker's timer to expire", func() bool {
		p := run(t, opts{}, "timers", "--root", root, "--expired", "--json")
		if p.code != 1 {
			return false
		}
		expired = nil
		return json.Unmarshal(p.stdout.Bytes(), &expired) == nil && len(expired) == 1
	})
	if expired[0].ID != "hung-one" || !expired[0].Expired || expired[0].Pid != hung.cmd.Process.Pid {
		t.Fatalf("expired timers = %+v, want the hung worker", expired)
	}

	st := run(t, opts{}, "status", "--root", root, "--json")
	expectExit(t, st, 0)
	var s master.JobStatus
	if err := json.Unmarshal(st.stdout.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.Items != 5 || s.Queued != 3 || s.Running != 2 || s.Alive != 2 || s.Expired != 1 || s.Done != 0 {
		t.Fatalf("status = %+v, want 5 items, 3 queued, 2 running, 2 timers of which 1 expired", s)
	}
	human := run(t, opts{}, "status", "--root", root)
	for _, want := range []string{"queued 3, running 2", "hung-one", "EXPIRED", "busy-one"} {
		if !strings.Contains(human.stdout.String(), want) {
			t.Errorf("status does not show %q:\n%s", want, human.stdout.String())
		}
	}

	// A kick by hand moves the hung worker's timer on the server.
	timerPath := root + "/timers/" + expired[0].Timer
	_, before, err := conn.Exists(timerPath)
	if err != nil {
		t.Fatal(err)
	}
	expectExit(t, run(t, opts{}, "kick", "--root", root, "--timer", expired[0].Timer), 0)
	_, after, err := conn.Exists(timerPath)
	if err != nil {
		t.Fatal(err)
	}
	if after.Mtime <= before.Mtime || after.Version != before.Version+1 {
		t.Errorf("kick did not move the timer: mtime %d -> %d, version %d -> %d", before.Mtime, after.Mtime, before.Version, after.Version)
	}
	expectExit(t, run(t, opts{}, "kick", "--root", root, "--timer", "t-0000009999"), 6)
	kickOutside := run(t, opts{}, "kick")
	expectExit(t, kickOutside, 2)

	// consume takes the three queued items, then says the queue is empty.
	var got []string
	for range 3 {
		p := run(t, opts{}, "consume", "--root", root)
		expectExit(t, p, 0)
		got = append(got, strings.TrimSpace(p.stdout.String()))
	}
	if strings.Join(got, ",") != "item-2,item-3,item-4" {
		t.Errorf("consumed %v, want item-2, item-3, item-4", got)
	}
	empty := run(t, opts{}, "consume", "--root", root)
	expectExit(t, empty, 1)
	if !strings.Contains(empty.stderr.String(), "queue is empty") {
		t.Errorf("consume on an empty queue said:\n%s", empty.stderr.String())
	}

	// clear refuses while workers run; --force stops them and removes it.
	refused := run(t, opts{}, "clear", "--root", root)
	expectExit(t, refused, 1)
	if !strings.Contains(refused.stderr.String(), "2 workers still run") {
		t.Errorf("clear refused with:\n%s", refused.stderr.String())
	}
	forced := run(t, opts{}, "clear", "--root", root, "--force", "--json")
	expectExit(t, forced, 0)
	var cleared struct {
		Removed bool `json:"removed"`
		Stopped int  `json:"workers_stopped"`
	}
	if err := json.Unmarshal(forced.stdout.Bytes(), &cleared); err != nil || !cleared.Removed || cleared.Stopped != 2 {
		t.Errorf("clear --force --json printed %q (%v), want removed with 2 workers stopped", forced.stdout.String(), err)
	}
	expectExit(t, hung, exitStopped)
	expectExit(t, busy, exitStopped)
	if exists(t, conn, root) {
		t.Fatal("clear --force left the job")
	}
	expectExit(t, run(t, opts{}, "clear", "--root", root), 0) // nothing there: fine
	notJob := run(t, opts{}, "clear", "--root", "/it")
	expectExit(t, notJob, 2)
	if !exists(t, conn, "/it") {
		t.Fatal("clear removed something that is not a zkdog job")
	}
}
