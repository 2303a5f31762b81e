package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/zkdog/zkdog/internal/slurmtest"
	"github.com/zkdog/zkdog/master"
)

// workScript is the "legacy binary" of the scheduler tests; what it does
// depends on the item:
//   - hang...: blocks for ever without progress, like a task stuck on a
//     dead mount;
//   - trap...: cleans up on TERM (writes $SIDE/cleaned) and exits 3;
//   - anything else: records that it ran and exits 0.
const workScript = `#!/bin/sh
task="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
echo "$task" >> "$SIDE/ran-$ZKDOG_ITEM_INDEX"
case $1 in
hang*) echo "$task" > "$SIDE/hung-task"; exec sleep 100000 ;;
trap*)
	trap 'echo cleaned > "$SIDE/cleaned"; exit 3' TERM
	echo "$task" > "$SIDE/trap-task"
	while :; do sleep 0.1; done ;;
esac
sleep 0.2
`

// recipe copies a recipe from docs/recipes into a fresh directory with
// the test's work.sh, and returns the directory.
func recipe(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "docs", "recipes", name)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "work.sh"), []byte(workScript), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type submission struct {
	dir, side, root  string
	array, masterJob string
}

var submitted = regexp.MustCompile(`job (\S+): array (\d+), master (\d+)`)

// submit runs the recipe's submit.sh as a user would, with zkdog on PATH.
func submit(t *testing.T, c *slurmtest.Cluster, name, items string, tasks int, env ...string) submission {
	t.Helper()
	s := submission{dir: recipe(t, name), side: t.TempDir(), root: rootFor(t)}
	cmd := c.Command(t.Context(), "sh", "./submit.sh", writeFile(t, "items", items), fmt.Sprint(tasks))
	cmd.Dir = s.dir
	cmd.Env = append(cmd.Env, "PATH="+filepath.Dir(zkdogFast)+":"+os.Getenv("PATH"),
		"ZKDOG_ZK="+shared.Addr(), "ZKDOG_ROOT="+s.root, "SIDE="+s.side)
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("submit.sh: %v\n%s", err, out.String())
	}
	m := submitted.FindStringSubmatch(out.String())
	if m == nil || m[1] != s.root {
		t.Fatalf("submit.sh printed %q", out.String())
	}
	s.array, s.masterJob = m[2], m[3]
	return s
}

// masterReport waits for the master's job and reads the report it wrote.
func (s submission) masterReport(t *testing.T, c *slurmtest.Cluster, pattern string) (master.Report, slurmtest.Job) {
	t.Helper()
	st, err := c.WaitJob(t.Context(), s.masterJob)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(s.dir, pattern))
	if len(files) != 1 {
		t.Fatalf("no report %s from the master's job (%s); files: %v", pattern, st, files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var r master.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report %q: %v", b, err)
	}
	return r, st.Jobs[0]
}

func ranOnce(t *testing.T, side string, items int) {
	t.Helper()
	for i := range items {
		b, err := os.ReadFile(filepath.Join(side, fmt.Sprintf("ran-%d", i)))
		if n := strings.Count(string(b), "\n"); err != nil || n != 1 {
			t.Errorf("item %d ran %d times (%v)", i, n, err)
		}
	}
}

// The Slurm recipe end to end: an array of 4 tasks over 12 items, the
// master in a job of its own. Every item runs once; the master's job ends
// 0 with a report saying so.
func TestSlurmArray(t *testing.T) {
	c := slurmtest.ForTestWith(t, slurmtest.Config{CPUs: 8})
	s := submit(t, c, "slurm", lines(12, "item-%d"), 4)
	r, job := s.masterReport(t, c, "zkdog-report-*.json")
	if job.ExitCode != "0:0" || r.Exit != exitOK || r.OK != 12 {
		t.Fatalf("master job exit %s, report %+v; want 0 and 12 items ok", job.ExitCode, r)
	}
	ranOnce(t, s.side, 12)
	st, err := c.WaitJob(t.Context(), s.array)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Expect("COMPLETED"); err != nil {
		t.Fatal(err)
	}
}

// One task's work hangs, alive and making no progress: the master names
// it by its Slurm array task id, exits 3, and the other tasks are stopped.
func TestSlurmHungTask(t *testing.T) {
	c := slurmtest.ForTestWith(t, slurmtest.Config{CPUs: 8})
	// A 2 s session keeps the timer's limit (at least twice the
	// worker's session timeout) at 4 s.
	s := submit(t, c, "slurm", "item-0\nhang-1\nitem-2\nitem-3\n", 2, "TIMER=3s", "ZKDOG_SESSION_TIMEOUT=2s")
	r, job := s.masterReport(t, c, "zkdog-report-*.json")
	if job.ExitCode != "3:0" || r.Exit != exitHung || len(r.Expired) == 0 {
		t.Fatalf("master job exit %s, report %+v; want 3 and an expired timer", job.ExitCode, r)
	}
	hung, err := os.ReadFile(filepath.Join(s.side, "hung-task"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.Expired[0].ID, strings.TrimSpace(string(hung)); got != want || r.Expired[0].Item != "hang-1" {
		t.Fatalf("expired timer %+v; want task %s on item hang-1", r.Expired[0], want)
	}
	// The aborted job's tasks end, with the hung work stopped.
	if _, err := c.WaitJob(t.Context(), s.array); err != nil {
		t.Fatal(err)
	}
}

// scancel of a running task: the TERM reaches the work through zkdog, the
// work's clean-up runs, and with --on-term fail the master's report shows
// the item failed with the status the work chose. (Under the default,
// requeue, the item would go back to the queue and the trapping work run
// again; policy_slurm_test.go covers that.)
func TestSlurmScancelOneTask(t *testing.T) {
	c := slurmtest.ForTestWith(t, slurmtest.Config{CPUs: 8})
	s := submit(t, c, "slurm", "item-0\ntrap-1\nitem-2\n", 2, "ZKDOG_ON_TERM=fail")
	taskFile := filepath.Join(s.side, "trap-task")
	waitFor(t, "the trapping work to start", func() bool { _, err := os.Stat(taskFile); return err == nil })
	task, _ := os.ReadFile(taskFile)
	if err := c.Scancel(strings.TrimSpace(string(task))); err != nil {
		t.Fatal(err)
	}
	r, job := s.masterReport(t, c, "zkdog-report-*.json")
	if b, err := os.ReadFile(filepath.Join(s.side, "cleaned")); err != nil || string(b) != "cleaned\n" {
		t.Fatalf("the work's clean-up did not run: %q %v", b, err)
	}
	if job.ExitCode != "1:0" || r.Exit != exitFailed || r.OK != 2 || r.Failed != 1 ||
		len(r.Problems) != 1 || r.Problems[0].Item != "trap-1" || r.Problems[0].Exit != 3 {
		t.Fatalf("master job exit %s, report %+v; want 1, with trap-1 failed with exit 3", job.ExitCode, r)
	}
	ranOnce(t, s.side, 3)
}

// The Torque-style recipe through slurm-wlm-torque's qsub: qsub -t for the
// array and -W depend= for the master. zkdog names the tasks by their PBS
// ids (ARRAY[INDEX]), which qsub's jobs carry in PBS_* variables.
func TestQsubArray(t *testing.T) {
	c := slurmtest.ForTestWith(t, slurmtest.Config{CPUs: 8, PBSEnv: true})
	s := submit(t, c, "pbs", lines(6, "item-%d"), 3)
	r, job := s.masterReport(t, c, "zkdog-report-*.json")
	if job.ExitCode != "0:0" || r.Exit != exitOK || r.OK != 6 {
		t.Fatalf("master job exit %s, report %+v; want 0 and 6 items ok", job.ExitCode, r)
	}
	ranOnce(t, s.side, 6)
	// Each task logged its worker id: the PBS name of the array task.
	pbsID := regexp.MustCompile(`id=` + s.array + `\[[1-3]\]`)
	logs, _ := filepath.Glob(filepath.Join(s.dir, "*"))
	var seen int
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		seen += len(pbsID.FindAll(b, -1))
	}
	if seen != 3 {
		t.Fatalf("found %d task logs naming the worker %s[N]; files %v", seen, s.array, logs)
	}
}

// The README shows the recipes these tests run, word for word.
func TestReadmeRecipesAreTheTestedOnes(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../docs/recipes/*/*.sh")
	if len(files) == 0 {
		t.Fatal("no recipes found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(readme, b) {
			t.Errorf("README.md does not show %s as it is", f)
		}
	}
}
