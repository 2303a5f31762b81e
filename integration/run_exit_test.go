package integration

import (
	"strings"
	"testing"
)

// exitStopped is zkdog run's exit code when zkdog itself stopped the
// command, as README's table gives it.
const exitStopped = 124

// Issue 13: a command that zkdog itself stops makes zkdog run exit 124, as
// timeout(1) does, with a line saying why; 143 is left to a TERM from
// outside (a scancel), which TestTermStopsTheWholeTree covers.
func TestRunStoppedByZkdogExits124(t *testing.T) {
	root := rootFor(t)
	initJob(t, opts{}, root, 1, "--timer", "1s")
	w := run(t, opts{}, "run", "--root", root, "--kill-on-stall", "--sample-interval", "100ms", "--", "sleep", "1000")
	expectExit(t, w, exitStopped)
	lines := strings.Split(strings.TrimSpace(w.stderr.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "zkdog: ") || !strings.Contains(last, "stopped the command") || !strings.Contains(last, "no progress") {
		t.Errorf("the last line does not say zkdog stopped the command, and why:\n%s", w.stderr.String())
	}
	// The record keeps what the command itself did.
	if r := resultOf(t, connect(t, shared.Addr()), root, 0); r.Exit != 143 || r.Outcome != "stalled" {
		t.Errorf("recorded %+v; want stalled with the command's 143", r)
	}
}

// A looping worker exits 0 if every command it ran succeeded, else with
// the status of the last one that did not.
func TestRunLoopExitStatus(t *testing.T) {
	for _, c := range []struct {
		name   string
		script string
		want   int
	}{
		{"all succeed", `exit 0`, 0},
		{"the last failure counts", `case "$1" in item-1) exit 3;; item-3) exit 5;; esac`, 5},
		{"a failure before successes counts", `[ "$1" = item-0 ] && exit 7; exit 0`, 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := rootFor(t)
			initJob(t, opts{}, root, 5, "--timer", "60s")
			p := run(t, opts{}, "run", "--root", root, "--loop", "--", "sh", "-c", c.script, "sh", "{}")
			expectExit(t, p, c.want)
			if s := runStatusOf(t, root); s.Done != 5 {
				t.Errorf("status %+v: want all 5 done", s)
			}
		})
	}
}
