package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/slurmtest"
)

// slurmTimeLimitGuard bounds the wait for a task Slurm ends at its time
// limit: the 1 minute Slurm allows at least, plus up to half a minute
// until slurmctld's periodic check sees it, plus slack on a busy machine.
const slurmTimeLimitGuard = 3 * time.Minute

// policyTask writes a batch script running zkdog run with args on the
// test's job: the script execs zkdog, so that the TERM at the time limit
// reaches it (with proctrack/cgroup Slurm signals the batch script alone).
// The work sleeps, making no progress but alive: the time limit, not the
// timer, must be what ends it.
func policyTask(t *testing.T, root, side string, args string) string {
	t.Helper()
	script := fmt.Sprintf(`#!/bin/sh
export ZKDOG_ZK=%q ZKDOG_ROOT=%q SIDE=%q HOME=%q
exec %q run --progress alive %s -- sh -c 'echo "$SLURM_JOB_ID" >> "$SIDE/ran"
if [ "$ZKDOG_ATTEMPT" = 1 ]; then echo "$SLURM_JOB_ID" > "$SIDE/started"; exec sleep 100000; fi'
`, shared.Addr(), root, side, os.Getenv("HOME"), zkdogFast, args)
	return writeFile(t, "task.sh", script)
}

// Issue 11: a task whose time limit (sbatch --time) ends it mid-item
// gives the item back uncharged within the cluster's KillWait, and
// another task finishes it: the master, with no retries, exits 0. A task
// started with --lifetime auto and too little of its allocation left for
// an item takes none.
func TestPolicySlurmTimeLimitRequeues(t *testing.T) {
	c := slurmtest.ForTestWith(t, slurmtest.Config{CPUs: 8})
	root, side := rootFor(t), t.TempDir()
	conn := connect(t, shared.Addr())
	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", "long\n"),
		"--timer", "60s", "--retries", "0", "--keep")
	t.Cleanup(func() { cleanJob(t, conn, root) })
	waitJob(t, conn, root)

	// The command's grace is within KillWait, so that it is zkdog, not
	// Slurm's KILL, that ends the attempt.
	grace := fmt.Sprintf("--kill-timeout %dms", (c.KillWait() / 2).Milliseconds())
	limited, err := c.Sbatch("--time=1", policyTask(t, root, side, "--loop "+grace))
	if err != nil {
		t.Fatal(err)
	}
	started := filepath.Join(side, "started")
	waitForUpTo(t, slurmTimeLimitGuard, "the limited task to start the item", func() bool { _, err := os.Stat(started); return err == nil })

	// Its 1 minute is less than the 5 an item needs: it takes nothing.
	short, err := c.Sbatch("--time=1", policyTask(t, root, side, "--loop --lifetime auto --item-time 5m"))
	if err != nil {
		t.Fatal(err)
	}
	rescuer, err := c.Sbatch(policyTask(t, root, side, "--loop --until-done"))
	if err != nil {
		t.Fatal(err)
	}

	if code := m.waitUpTo(slurmTimeLimitGuard); code != exitOK {
		t.Fatalf("master exited %d, want 0\n%s", code, m.stderr.String())
	}
	for id, want := range map[string]string{limited: "TIMEOUT", short: "COMPLETED", rescuer: "COMPLETED"} {
		st, err := c.WaitJob(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Expect(want); err != nil {
			t.Errorf("job %s: %v\n%s", id, err, slurmOutput(c, id))
		}
	}
	if b, _ := os.ReadFile(filepath.Join(side, "ran")); string(b) != limited+"\n"+rescuer+"\n" {
		t.Errorf("the item ran in jobs %q; want %s, then %s", b, limited, rescuer)
	}
	rows, out := resultRows(t, root)
	r := rowOf(t, rows, "long")
	if r.Outcome != protocol.OK || r.Attempts != 2 || len(r.Earlier) != 1 || r.Earlier[0].Outcome != protocol.Terminated {
		t.Fatalf("long: %+v; want ok on attempt 2 after one terminated\n%s", r, out)
	}
	if s := slurmOutput(c, short); !strings.Contains(s, "lifetime ends with the batch allocation") || !strings.Contains(s, "not taking another item") {
		t.Errorf("the short task did not say it had too little time left:\n%s", s)
	}
	if s := slurmOutput(c, limited); !strings.Contains(s, "not charged") {
		t.Errorf("the limited task did not say its item went back uncharged:\n%s", s)
	}
}

func slurmOutput(c *slurmtest.Cluster, id string) string {
	b, _ := os.ReadFile(filepath.Join(c.OutputDir(), "slurm-"+id+".out"))
	return string(b)
}
