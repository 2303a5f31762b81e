package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 13: a command kicking its timer by hand with the values zkdog run
// gives it, zkdog kick --root "$ZKDOG_ROOT" --timer "$ZKDOG_TIMER", failed:
// $ZKDOG_TIMER is the timer's full path. Both the path and the name kick
// it; a path that is not one of the job's timers is refused.
func TestRunKickWithTheCommandsEnvironment(t *testing.T) {
	root := rootFor(t)
	initJob(t, opts{}, root, 3, "--timer", "60s")
	// The command runs zkdog kick as a user's script would, from $PATH.
	o := opts{env: []string{"PATH=" + filepath.Dir(zkdogBin) + ":" + os.Getenv("PATH")}}
	for _, c := range []struct {
		name, script string
	}{
		{"full path", `exec zkdog kick --root "$ZKDOG_ROOT" --timer "$ZKDOG_TIMER" --json`},
		{"child name", `exec zkdog kick --timer "${ZKDOG_TIMER##*/}" --json`},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := run(t, o, "run", "--root", root, "--", "sh", "-c", c.script)
			expectExit(t, p, 0)
			var kicked struct{ Timer string }
			if err := json.Unmarshal(p.stdout.Bytes(), &kicked); err != nil || !strings.HasPrefix(kicked.Timer, root+"/timers/t-") {
				t.Fatalf("zkdog kick printed %q (%v); want the timer it kicked", p.stdout.String(), err)
			}
		})
	}
	t.Run("another job's timer", func(t *testing.T) {
		p := run(t, o, "kick", "--root", root, "--timer", "/it/elsewhere/timers/t-0000000001")
		expectExit(t, p, exitUsage)
		oneErrorLine(t, p, "/it/elsewhere/timers/t-0000000001", "not a timer of the job at "+root, root+"/timers")
	})
}
