package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 11: under --on-hang stall a hung item costs only itself: its
// worker alone is told to stop its command, the item is recorded stalled,
// the other items are done, and the master exits 1 (an item did not
// succeed) instead of 3.
func TestPolicyMasterOnHangStall(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	// A 2 s session keeps the timer's limit (never less than twice the
	// session timeout) at the 4 s of --timer.
	o := opts{env: []string{"ZKDOG_SESSION_TIMEOUT=2s"}}
	m := start(t, o, "master", "--root", root, "--items", writeFile(t, "items", "hangs\nquick-1\nquick-2\nquick-3\n"),
		"--timer", "4s", "--on-hang", "stall")
	waitJob(t, conn, root)
	started := filepath.Join(t.TempDir(), "started")
	// It sleeps, which --progress cpu does not count as progress.
	hung := start(t, o, "run", "--root", root, "--id", "hung-worker", "--progress", "cpu", "--sample-interval", "200ms",
		"--", "sh", "-c", `touch "$1"; exec sleep 1000`, "sh", started)
	waitFor(t, "the hung worker's command", func() bool { _, err := os.Stat(started); return err == nil })
	others := start(t, o, "run", "--root", root, "--loop", "--until-done", "--", "true")

	expectExit(t, m, exitFailed)
	expectExit(t, others, exitOK)
	if code := hung.wait(); code == 0 {
		t.Errorf("the hung worker exited 0; want it stopped")
	}
	report := m.stderr.String()
	for _, want := range []string{"items 4: ok 3, failed 0, stalled 1", `stalled item 1 "hangs"`, "hung-worker"} {
		if !strings.Contains(report, want) {
			t.Errorf("the master's report does not say %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "aborted") {
		t.Errorf("the job was aborted under --on-hang stall:\n%s", report)
	}
	spec := expectSealed(t, conn, root, 1<<10)
	if spec.Summary.End != "failed" || spec.Summary.Exit != exitFailed {
		t.Errorf("summary = %+v; want end failed, exit 1", spec.Summary)
	}
}
