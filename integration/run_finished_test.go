package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 10: a task that starts after its job has finished (an array
// larger than the queue, a task held in the scheduler's queue) succeeds
// without running its command, and says how the job ended. A root where
// no job ever was still fails.
func TestRunLateTaskSucceeds(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", lines(2, "item-%d")), "--timer", "60s")
	waitJob(t, conn, root)
	expectExit(t, run(t, opts{}, "run", "--root", root, "--loop", "--", "true"), 0)
	expectExit(t, m, exitOK)

	marker := filepath.Join(t.TempDir(), "ran")
	for _, extra := range [][]string{nil, {"--wait-for-job", "30s"}, {"--loop"}, {"--loop", "--until-done"}} {
		t.Run(strings.Join(append([]string{"run"}, extra...), " "), func(t *testing.T) {
			args := append(append([]string{"run", "--root", root}, extra...), "--", "touch", marker)
			p := run(t, opts{}, args...)
			expectExit(t, p, exitOK)
			oneErrorLine(t, p, "finished", root, "ended ok")
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the command ran on a finished job")
			}
		})
	}

	never := run(t, opts{}, "run", "--root", root+"-never", "--", "touch", marker)
	expectExit(t, never, exitRunFailed)
}

// A looping worker waiting for the items of others when the master gives
// up and seals the job stops, with the status of what it ran.
func TestRunWaitingWorkerSeesTheJobEnd(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	o := opts{env: []string{"ZKDOG_SESSION_TIMEOUT=2s"}}
	m := start(t, o, "master", "--root", root, "--items", writeFile(t, "items", "hangs\nquick\n"), "--timer", "4s")
	waitJob(t, conn, root)
	started := filepath.Join(t.TempDir(), "started")
	hung := start(t, o, "run", "--root", root, "--progress", "cpu", "--", "sh", "-c", `touch "$1"; exec sleep 1000`, "sh", started)
	waitFor(t, "the hung worker's command", func() bool { _, err := os.Stat(started); return err == nil })
	waiter := start(t, o, "run", "--root", root, "--loop", "--until-done", "--", "true")
	expectExit(t, m, exitHung)
	expectExit(t, hung, exitStopped)
	expectExit(t, waiter, exitOK)
	if s := waiter.stderr.String(); !strings.Contains(s, "quick") {
		t.Errorf("the waiting worker did not run the quick item:\n%s", s)
	}
	t.Logf("the hung worker:\n%s\nthe waiting worker:\n%s", hung.stderr.String(), waiter.stderr.String())
}
