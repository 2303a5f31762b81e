package slurmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestScancelSignals records what a plain scancel does to a batch job's
// processes under each process tracking plugin, on a cluster of its own
// with KillWait=3s: which processes get SIGTERM, and when the rest are
// killed. zkdog's wrapper must be right under all of them.
//
//   - proctrack/cgroup (most sites): SIGTERM only to the batch script, the
//     one process slurmstepd started; everything else in the job's cgroup
//     gets only SIGKILL, KillWait later, or at once when the script exits.
//   - proctrack/pgid: SIGTERM to the script's whole process group, orphans
//     included, then SIGKILL likewise. A process that moved to another
//     group is never signalled.
//   - proctrack/linuxproc: SIGTERM to the script and its descendants, then
//     SIGKILL likewise; a process orphaned to init is lost and survives.
func TestScancelSignals(t *testing.T) {
	t.Parallel()
	type expect struct {
		childTERM, orphanTERM bool // beside the script, which always gets it
		orphanSurvives        bool // orphaned before scancel
		childSurvivesExit     bool // when the script exits on SIGTERM
	}
	cases := map[string]expect{
		"proctrack/cgroup":    {},
		"proctrack/pgid":      {childTERM: true, orphanTERM: true},
		"proctrack/linuxproc": {childTERM: true, orphanSurvives: true, childSurvivesExit: true},
	}
	for pt, want := range cases {
		t.Run(strings.TrimPrefix(pt, "proctrack/"), func(t *testing.T) {
			t.Parallel()
			if pt == "proctrack/cgroup" && !cgroupV1Usable() {
				t.Skip("no writable cgroup v1 freezer hierarchy here")
			}
			c := ForTestWith(t, Config{ProctrackType: pt, KillWait: 3 * time.Second})
			proc := script(t, "proc.sh", procScript)

			// The script outlives SIGTERM: KillWait applies.
			t.Run("ScriptLingers", func(t *testing.T) {
				t.Parallel()
				d := t.TempDir()
				id, err := c.Sbatch(script(t, "job.sh", fmt.Sprintf(`
					#!/bin/bash
					d=%s
					trap 'echo TERM >> $d/script.term' TERM
					%s child $d &
					( %[2]s orphan $d & )
					echo $$ > $d/script.pid
					while :; do wait; sleep 0.1; done
				`, d, proc)))
				if err != nil {
					t.Fatal(err)
				}
				pids := map[string]int{}
				for _, name := range []string{"script", "child", "orphan"} {
					pids[name] = readPid(t, c, id, filepath.Join(d, name+".pid"))
				}
				t.Cleanup(func() { killLeftovers(t, pids) })
				cancelled := time.Now()
				if err := c.Scancel(id); err != nil {
					t.Fatal(err)
				}
				st := wait(t, c, id)
				if err := st.Expect("CANCELLED"); err != nil {
					t.Error(err)
				}
				t.Logf("job gone %v after scancel", time.Since(cancelled).Round(time.Millisecond))
				checkTERM(t, d, "script", true)
				checkTERM(t, d, "child", want.childTERM)
				checkTERM(t, d, "orphan", want.orphanTERM)
				if Alive(pids["script"]) || Alive(pids["child"]) {
					t.Errorf("script or child survived scancel")
				}
				if Alive(pids["orphan"]) != want.orphanSurvives {
					t.Errorf("orphan alive: %v, want %v", Alive(pids["orphan"]), want.orphanSurvives)
				}
				// The child ignores SIGTERM: only SIGKILL, KillWait after
				// SIGTERM, stops it. Slurm counts KillWait in whole seconds.
				lived := lastAlive(t, d, "child").Sub(cancelled)
				t.Logf("child killed %v after scancel", lived.Round(time.Millisecond))
				if lived < c.KillWait()-time.Second {
					t.Errorf("child killed %v after scancel, before KillWait (%v)", lived, c.KillWait())
				}
			})

			// The script exits on SIGTERM: the rest of the job is killed at
			// once, without waiting for KillWait.
			t.Run("ScriptExits", func(t *testing.T) {
				t.Parallel()
				d := t.TempDir()
				id, err := c.Sbatch(script(t, "job.sh", fmt.Sprintf(`
					#!/bin/bash
					d=%s
					trap 'echo TERM >> $d/script.term; exit 0' TERM
					%s child $d &
					echo $$ > $d/script.pid
					while :; do wait; sleep 0.1; done
				`, d, proc)))
				if err != nil {
					t.Fatal(err)
				}
				pids := map[string]int{}
				for _, name := range []string{"script", "child"} {
					pids[name] = readPid(t, c, id, filepath.Join(d, name+".pid"))
				}
				t.Cleanup(func() { killLeftovers(t, pids) })
				cancelled := time.Now()
				if err := c.Scancel(id); err != nil {
					t.Fatal(err)
				}
				if err := wait(t, c, id).Expect("CANCELLED"); err != nil {
					t.Error(err)
				}
				checkTERM(t, d, "script", true)
				// Whether the child got SIGTERM is not checked: where it
				// does, the SIGKILL that follows the script's exit often
				// comes before its trap has run.
				if Alive(pids["child"]) != want.childSurvivesExit {
					t.Errorf("child alive: %v, want %v", Alive(pids["child"]), want.childSurvivesExit)
				}
				if !want.childSurvivesExit {
					lived := lastAlive(t, d, "child").Sub(cancelled)
					t.Logf("child killed %v after scancel", lived.Round(time.Millisecond))
					if lived > c.KillWait()-time.Second {
						t.Errorf("child killed %v after scancel: not at once when the script exited", lived)
					}
				}
			})
		})
	}
}

// procScript is run as "proc.sh NAME DIR": it records its pid, each SIGTERM
// it gets (which it otherwise ignores) and, every 50ms, that it is alive.
// It appends: a file truncated and rewritten would be found empty if
// SIGKILL came between the two.
const procScript = `#!/bin/bash
	name=$1 d=$2
	trap 'echo TERM >> $d/$name.term' TERM
	echo $$ > $d/$name.pid
	while :; do printf '%s\n' "$EPOCHREALTIME" >> $d/$name.alive; sleep 0.05; done
`

func checkTERM(t *testing.T, dir, name string, want bool) {
	t.Helper()
	_, err := os.Stat(filepath.Join(dir, name+".term"))
	if got := err == nil; got != want {
		t.Errorf("%s got SIGTERM: %v, want %v", name, got, want)
	}
}

// lastAlive is when process name last said it was alive.
func lastAlive(t *testing.T, dir, name string) time.Time {
	t.Helper()
	s := readFile(t, filepath.Join(dir, name+".alive")) // trimmed: ends with a whole line
	s = s[strings.LastIndexByte(s, '\n')+1:]
	sec, frac, _ := strings.Cut(s, ".")
	secs, err1 := strconv.ParseInt(sec, 10, 64)
	usecs, err2 := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("%s.alive holds %q", name, s)
	}
	return time.Unix(secs, usecs*1000)
}

// killLeftovers kills what scancel did not, so that no test leaves
// processes behind.
func killLeftovers(t *testing.T, pids map[string]int) {
	for name, pid := range pids {
		if Alive(pid) {
			t.Logf("killing %s (pid %d), left by scancel", name, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
