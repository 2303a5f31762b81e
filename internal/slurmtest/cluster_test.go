package slurmtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jobTimeout bounds each wait for a job. Jobs here take well under a
// second; Slurm adds up to a second per scheduling wave.
const jobTimeout = 30 * time.Second

// TestCluster starts one cluster and runs jobs on it in parallel subtests:
// more CPUs than the machine has, so that they need not queue behind each
// other.
func TestCluster(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	c := ForTestWith(t, Config{CPUs: 8})
	t.Logf("cluster %s started in %v (node %s, %d CPUs, dir %s)", c.Name(), time.Since(begin).Round(time.Millisecond), c.NodeName(), c.CPUs(), c.Dir())

	t.Run("ArrayThenDependent", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		array := script(t, "array.sh", fmt.Sprintf(`
			env | grep -E '^(SLURM|PBS)_' | sort > %[1]s/env.$SLURM_ARRAY_TASK_ID
			echo "$SLURM_ARRAY_TASK_ID" > %[1]s/task.$SLURM_ARRAY_TASK_ID
		`, dir))
		// The marker records which task files existed when it ran: afterany
		// must start it only once every task is over.
		after := script(t, "after.sh", fmt.Sprintf(`ls %[1]s > %[1]s/marker`, dir))

		begin := time.Now()
		arrayID, err := c.Sbatch("--array=1-3", array)
		if err != nil {
			t.Fatal(err)
		}
		afterID, err := c.Sbatch("--dependency=afterany:"+arrayID, after)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), jobTimeout)
		defer cancel()
		st, err := c.WaitJob(ctx, arrayID)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Expect("COMPLETED"); err != nil {
			t.Error(err)
		}
		var tasks []string
		for _, j := range st.Jobs {
			tasks = append(tasks, j.ArrayTaskID)
			if j.ArrayJobID != arrayID {
				t.Errorf("task %s: ArrayJobID %q, want %q", j.ID, j.ArrayJobID, arrayID)
			}
		}
		if !slices.Equal(tasks, []string{"1", "2", "3"}) {
			t.Errorf("array tasks %v, want [1 2 3]", tasks)
		}
		dst, err := c.WaitJob(ctx, afterID)
		if err != nil {
			t.Fatal(err)
		}
		if err := dst.Expect("COMPLETED"); err != nil {
			t.Error(err)
		}
		t.Logf("array of 3 and dependent job done in %v", time.Since(begin).Round(time.Millisecond))

		for i := 1; i <= 3; i++ {
			if got := readFile(t, filepath.Join(dir, "task."+strconv.Itoa(i))); got != strconv.Itoa(i) {
				t.Errorf("task.%d holds %q", i, got)
			}
		}
		marker := strings.Fields(readFile(t, filepath.Join(dir, "marker")))
		for i := 1; i <= 3; i++ {
			if !slices.Contains(marker, "task."+strconv.Itoa(i)) {
				t.Errorf("dependent job ran before task %d was over: it saw %v", i, marker)
			}
		}
		env := envFile(t, filepath.Join(dir, "env.2"))
		for k, want := range map[string]string{
			"SLURM_ARRAY_JOB_ID":     arrayID,
			"SLURM_ARRAY_TASK_ID":    "2",
			"SLURM_ARRAY_TASK_MIN":   "1",
			"SLURM_ARRAY_TASK_MAX":   "3",
			"SLURM_ARRAY_TASK_COUNT": "3",
			"SLURM_JOB_ID":           st.Jobs[1].ID,
			"SLURM_CLUSTER_NAME":     c.Name(),
			"SLURM_CONF":             c.ConfPath(),
		} {
			if env[k] != want {
				t.Errorf("task 2 sees %s=%q, want %q", k, env[k], want)
			}
		}
		if pbs := prefixed(env, "PBS_"); len(pbs) > 0 {
			t.Errorf("without PBSEnv, task 2 sees %v", pbs)
		}
		t.Logf("an sbatch array task sees: %s", strings.Join(sortedKeys(env), " "))
	})

	t.Run("Cancel", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		id, err := c.Sbatch(script(t, "sleep.sh", fmt.Sprintf(`
			sleep 1000 &
			echo $! > %s/sleep.pid
			wait
		`, dir)))
		if err != nil {
			t.Fatal(err)
		}
		pid := readPid(t, c, id, filepath.Join(dir, "sleep.pid"))
		begin := time.Now()
		if err := c.Scancel(id); err != nil {
			t.Fatal(err)
		}
		st := wait(t, c, id)
		t.Logf("cancelled job gone in %v", time.Since(begin).Round(time.Millisecond))
		if err := st.Expect("CANCELLED"); err != nil {
			t.Error(err)
		}
		if Alive(pid) {
			t.Errorf("sleep (pid %d) survived scancel", pid)
		}
	})

	// DependencyParameters=kill_invalid_depend: a job whose dependency can
	// no longer be satisfied is cancelled, not left pending for ever.
	t.Run("DependencyNeverSatisfied", func(t *testing.T) {
		t.Parallel()
		failing, err := c.Sbatch(script(t, "fail.sh", "exit 7"))
		if err != nil {
			t.Fatal(err)
		}
		dependent, err := c.Sbatch("--dependency=afterok:"+failing, script(t, "never.sh", "true"))
		if err != nil {
			t.Fatal(err)
		}
		st := wait(t, c, failing)
		if err := st.Expect("FAILED"); err != nil {
			t.Error(err)
		}
		if got := st.Jobs[0].ExitCode; got != "7:0" {
			t.Errorf("exit code %s, want 7:0", got)
		}
		dst := wait(t, c, dependent)
		if err := dst.Expect("CANCELLED"); err != nil {
			t.Error(err)
		}
		t.Logf("dependent job: %s", dst)
	})

	// --signal alone would reach only srun steps, never the batch script;
	// --full reaches the script and its children, and the job then ends as
	// the script does.
	t.Run("FullSignal", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		id, err := c.Sbatch(script(t, "usr1.sh", fmt.Sprintf(`
			trap 'exit 3' USR1
			echo $$ > %s/script.pid
			sleep 1000 &
			wait
		`, dir)))
		if err != nil {
			t.Fatal(err)
		}
		readPid(t, c, id, filepath.Join(dir, "script.pid"))
		if err := c.Scancel(id, "--full", "--signal=USR1"); err != nil {
			t.Fatal(err)
		}
		st := wait(t, c, id)
		if err := st.Expect("FAILED"); err != nil {
			t.Error(err)
		}
		if got := st.Jobs[0].ExitCode; got != "3:0" {
			t.Errorf("exit code %s, want 3:0", got)
		}
	})

	t.Run("Qsub", func(t *testing.T) {
		t.Parallel()
		env := qsubArray(t, c)
		if pbs := prefixed(env, "PBS_"); len(pbs) > 0 {
			t.Errorf("without PBSEnv, a qsub task sees %v", pbs)
		}
		if env["SLURM_ARRAY_TASK_ID"] != "2" {
			t.Errorf("qsub task 2 sees SLURM_ARRAY_TASK_ID=%q", env["SLURM_ARRAY_TASK_ID"])
		}
		t.Logf("a qsub array task sees: %s", strings.Join(sortedKeys(env), " "))
	})
}

// TestQsubPBSEnv runs beside TestCluster, on a cluster of its own: two
// clusters must not see each other.
func TestQsubPBSEnv(t *testing.T) {
	t.Parallel()
	c := ForTestWith(t, Config{PBSEnv: true})
	env := qsubArray(t, c)
	for k, want := range map[string]string{
		"PBS_ARRAY_INDEX": "2",
		"PBS_ARRAY_ID":    env["SLURM_ARRAY_JOB_ID"],
		"PBS_JOBID":       env["SLURM_JOB_ID"],
		"PBS_O_WORKDIR":   env["SLURM_SUBMIT_DIR"],
		"PBS_ARRAYID":     "", // Torque's name: spank_pbs does not set it
	} {
		if env[k] != want {
			t.Errorf("qsub task 2 sees %s=%q, want %q", k, env[k], want)
		}
	}
	t.Logf("with PBSEnv a qsub array task sees: %s", strings.Join(sortedKeys(env), " "))
}

// qsubArray submits a three-task array with qsub -t and a job depending on
// it with -W depend=afterany, checks that both complete in order, and
// returns the environment task 2 saw.
func qsubArray(t *testing.T, c *Cluster) map[string]string {
	t.Helper()
	dir := t.TempDir()
	array := script(t, "array.sh", fmt.Sprintf(`
		i=${SLURM_ARRAY_TASK_ID:-none}
		env | grep -E '^(SLURM|PBS)_' | sort > %[1]s/env.$i
	`, dir))
	after := script(t, "after.sh", fmt.Sprintf(`ls %[1]s > %[1]s/marker`, dir))
	arrayID, err := c.Qsub("-t", "1-3", array)
	if err != nil {
		t.Fatal(err)
	}
	afterID, err := c.Qsub("-W", "depend=afterany:"+arrayID, after)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{arrayID, afterID} {
		if err := wait(t, c, id).Expect("COMPLETED"); err != nil {
			t.Error(err)
		}
	}
	// ls lists the marker itself, created by the shell before ls runs.
	marker := strings.Fields(readFile(t, filepath.Join(dir, "marker")))
	if !slices.Equal(marker, []string{"env.1", "env.2", "env.3", "marker"}) {
		t.Errorf("dependent job saw %v, want the three tasks' files", marker)
	}
	return envFile(t, filepath.Join(dir, "env.2"))
}

// script writes an executable shell script into a new temporary directory:
// body with its lines' indentation removed, run by sh unless it starts with
// its own "#!" line.
func script(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	var b strings.Builder
	body = strings.TrimSpace(body)
	if !strings.HasPrefix(body, "#!") {
		b.WriteString("#!/bin/sh\n")
	}
	for _, line := range strings.Split(body, "\n") {
		b.WriteString(strings.TrimSpace(line) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func wait(t *testing.T, c *Cluster, id string) State {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), jobTimeout)
	defer cancel()
	st, err := c.WaitJob(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// readPid waits until a running job has written a pid to path.
func readPid(t *testing.T, c *Cluster, id, path string) int {
	t.Helper()
	deadline := time.Now().Add(jobTimeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for ; ; <-tick.C {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			return pid
		}
		if st, err := c.Job(id); err == nil && st.Done() {
			t.Fatalf("job %s ended (%s) without writing %s", id, st, path)
		}
		if time.Now().After(deadline) {
			st, _ := c.Job(id)
			t.Fatalf("job %s (%s) wrote no %s in %v", id, st, path, jobTimeout)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, line := range strings.Split(readFile(t, path), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

func prefixed(env map[string]string, prefix string) []string {
	var keys []string
	for _, k := range sortedKeys(env) {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k+"="+env[k])
		}
	}
	return keys
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
