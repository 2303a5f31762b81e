// Package slurmtest runs a throw-away single-node Slurm cluster for tests,
// so that zkdog is exercised by a real batch scheduler: array jobs, job
// dependencies, scancel's signals and the Torque-style qsub wrapper.
//
//	func TestArray(t *testing.T) {
//		c := slurmtest.ForTest(t)
//		id, err := c.Sbatch("--array=1-3", script)
//		...
//		st, err := c.WaitJob(t.Context(), id)
//		...
//		if err := st.Expect("COMPLETED"); err != nil { t.Fatal(err) }
//	}
//
// A cluster is a slurmctld and a slurmd started in the foreground by this
// process, with all their state in one temporary directory, listening on
// free ports, with a unique ClusterName and node name, so that several
// clusters (parallel tests, parallel packages) can run on one machine.
// Authentication is auth/none: no munged is needed. The daemons die with
// the test binary (Pdeathsig), but job processes are run by slurmstepd,
// which Slurm detaches from slurmd: only Stop, which cancels every job
// first, reliably ends them.
//
// What scancel does to a job's processes depends on the process tracking
// plugin (Config.ProctrackType); TestScancelSignals pins it down. Plain
// scancel sends SIGCONT and SIGTERM, then SIGKILL about max(KillWait, 5s)
// later to what is left; and as soon as the batch script exits, everything
// else the plugin tracks gets SIGKILL at once.
//
//   - proctrack/cgroup, the default where possible and what most sites use:
//     SIGTERM goes to the batch script alone, not its children; SIGKILL to
//     every process of the job, wherever it moved.
//   - proctrack/linuxproc, the default elsewhere: both go to the script and
//     its descendants; a process orphaned to init escapes both.
//   - proctrack/pgid: both go to the script's process group, orphans
//     included; a process in another group (setsid, setpgid) escapes.
//
// A wrapper such as `exec zkdog run -- work` must therefore forward SIGTERM
// to its child itself, and not exit before its child has.
//
// Slurm's client commands find the cluster through SLURM_CONF: run them
// with Command, or add Env to their environment. Jobs inherit the
// submitter's environment (sbatch's default --export=ALL), so a job's own
// Slurm commands reach the same cluster.
//
// Starting a cluster takes about 0.4s and stopping it as long; tests that
// can share one should start it in a parent test and use it from subtests.
// Slurm's scheduler runs at most once a second, so a job, or each wave of
// array tasks beyond the node's CPUs, starts within about a second of
// becoming eligible. A job ends once slurmstepd sees none of its processes
// left, and a killed process whose parent died first stays a zombie until
// init reaps it: where init is slow to (pid 1 of this project's VMs reaps
// about every 1.3s), a cancelled job takes a few seconds to leave the queue.
//
// The daemons run as the current user, which must be root for slurmd to
// launch jobs.
package slurmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Packages is the list of Debian packages that provide what Installed
// checks for (install them with --no-install-recommends: the recommended
// slurm-wlm-plugins are not needed).
const Packages = "slurmctld slurmd slurm-client slurm-wlm-torque"

// ErrNotInstalled is wrapped by the errors of Installed and Start when
// Slurm is missing.
var ErrNotInstalled = errors.New("Slurm is not installed")

// commands are the programs a cluster needs: the daemons, the clients that
// Start, the helpers and Stop use, and the Torque wrapper (qsub) whose
// presence lets tests of zkdog's PBS support run without skipping.
var commands = []string{"slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "qsub"}

// lookPath finds a Slurm program. The daemons live in /usr/sbin, which is
// not on a non-root user's PATH.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// Installed reports whether the Slurm daemons, client commands and Torque
// wrappers a cluster needs are installed. Its error names what is missing
// and how to install it.
func Installed() error {
	_, err := findCommands()
	return err
}

func findCommands() (map[string]string, error) {
	paths := map[string]string{}
	var missing []string
	for _, name := range commands {
		p, err := lookPath(name)
		if err != nil {
			missing = append(missing, name)
			continue
		}
		paths[name] = p
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("slurmtest: %w (missing %s): run `make deps`, which installs the Debian packages %s",
			ErrNotInstalled, strings.Join(missing, ", "), Packages)
	}
	return paths, nil
}

// startTimeout bounds ForTest's Start.
const startTimeout = 60 * time.Second

// ForTest starts a cluster with the default Config that lives until the end
// of the test. See ForTestWith.
func ForTest(t testing.TB) *Cluster {
	t.Helper()
	return ForTestWith(t, Config{})
}

// ForTestWith starts a cluster that lives until the end of the test, when
// Stop cancels its jobs, stops the daemons and removes its directory; if
// the test failed, the ends of the daemons' logs are logged first. When
// Slurm is not installed the test is skipped under -short and fails
// otherwise, so that CI cannot pass without running these tests.
func ForTestWith(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	if err := Installed(); err != nil {
		if testing.Short() {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	c, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("slurmtest: cluster %s in %s:\n%s", c.Name(), c.Dir(), c.LogTail(40))
		}
		if err := c.Stop(); err != nil {
			t.Errorf("slurmtest: %v", err)
		}
	})
	return c
}
