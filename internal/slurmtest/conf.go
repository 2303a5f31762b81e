package slurmtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config describes a cluster. The zero value is a cluster whose node has
// the machine's CPUs, with proctrack/cgroup if possible, KillWait=2s and no
// PBS_* variables in jobs.
type Config struct {
	// Dir holds the cluster's configuration, state, spool and logs. Empty
	// means a new temporary directory, removed by Stop. A given Dir must
	// exist and is kept: Stop removes only what Start created in it, and
	// Start fails if a previous cluster's files are still there. The path
	// must be short (slurmstepd puts Unix sockets in it) and free of
	// spaces and commas, which slurm.conf cannot quote.
	Dir string

	// CPUs is the node's CPU count, which is how many single-CPU jobs or
	// array tasks run at once. 0 means the machine's. A larger count is
	// declared with SlurmdParameters=config_overrides, so that slurmd does
	// not reject the node as having fewer CPUs than configured.
	CPUs int

	// KillWait is how long a time limit gives a job's processes between
	// SIGTERM and SIGKILL, in whole seconds (Slurm's unit), rounded up;
	// scancel gives them about max(KillWait, 5s). 0 means DefaultKillWait;
	// Slurm's own default is 30s.
	KillWait time.Duration

	// ProctrackType is how slurmstepd finds a job's processes to signal and
	// kill: "proctrack/cgroup", "proctrack/linuxproc" or "proctrack/pgid".
	// Empty means proctrack/cgroup where this machine allows it (root, and
	// a writable cgroup v1 freezer hierarchy), else proctrack/linuxproc;
	// Cluster.ProctrackType tells which. See the package documentation for
	// how they differ.
	ProctrackType string

	// PBSEnv loads Slurm's spank_pbs plugin, which gives every job, however
	// submitted, the PBS_* variables a PBS job would see: PBS_JOBID,
	// PBS_ARRAY_ID, PBS_ARRAY_INDEX (PBS Pro's names, not Torque's
	// PBS_ARRAYID), PBS_O_WORKDIR, ... Without it jobs submitted by qsub see
	// only SLURM_* variables.
	PBSEnv bool

	// Partition names the only partition, which is the default one. Empty
	// means DefaultPartition.
	Partition string

	// DebugLevel is SlurmctldDebug and SlurmdDebug ("debug", "debug2", ...).
	// Empty means "info".
	DebugLevel string
}

const (
	// DefaultKillWait is short so that jobs killed at their time limit, or
	// cancelled, leave the queue quickly, yet long enough for a wrapper to
	// forward SIGTERM and reap its child before SIGKILL. (scancel waits
	// about 5s whatever KillWait is below that.)
	DefaultKillWait = 2 * time.Second

	// DefaultPartition is Torque's usual default queue name.
	DefaultPartition = "batch"
)

// hardware is the node description printed by `slurmd -C`.
type hardware struct {
	nodeName string
	fields   map[string]string // CPUs, Boards, SocketsPerBoard, CoresPerSocket, ThreadsPerCore, RealMemory
	cpus     int
}

// detectHardware asks slurmd what it will report when it registers, so that
// the node's definition matches it exactly: slurmd compares its hardware
// with slurm.conf, and the node name must be the short hostname slurmd
// derives itself.
func detectHardware(ctx context.Context, slurmd string) (hardware, error) {
	out, err := exec.CommandContext(ctx, slurmd, "-C").Output()
	if err != nil {
		return hardware{}, fmt.Errorf("slurmtest: %s -C: %w%s", slurmd, err, stderrOf(err))
	}
	hw := hardware{fields: map[string]string{}}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "NodeName=") {
			continue
		}
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "NodeName":
				hw.nodeName = v
			case "CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory":
				hw.fields[k] = v
			}
		}
	}
	hw.cpus, _ = strconv.Atoi(hw.fields["CPUs"])
	if hw.nodeName == "" || hw.cpus <= 0 || hw.fields["RealMemory"] == "" {
		return hardware{}, fmt.Errorf("slurmtest: cannot read the node's hardware from `%s -C`:\n%s", slurmd, out)
	}
	return hw, nil
}

// confParams are the values slurm.conf is rendered from.
type confParams struct {
	dir         string
	clusterName string
	nodeName    string
	user        string
	hw          hardware
	cpus        int
	ctldPort    int
	slurmdPort  int
	killWait    int // seconds
	proctrack   string
	partition   string
	debug       string
	mailProg    string
	plugstack   string // path of plugstack.conf, or ""
}

// renderConf writes slurm.conf. Every setting that departs from Slurm's
// defaults says why; see also the package documentation.
func renderConf(p confParams) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# slurmtest: a throw-away single-node cluster; see internal/slurmtest.")
	w("ClusterName=%s", p.clusterName)
	// The controller is this host; clients and slurmd reach it over
	// loopback whatever the host name resolves to.
	w("SlurmctldHost=%s(127.0.0.1)", p.hw.nodeName)
	w("SlurmctldPort=%d", p.ctldPort)
	w("SlurmdPort=%d", p.slurmdPort)
	// auth/none and cred/none ship with Slurm 22.05 (slurm-wlm-basic-
	// plugins) though no longer documented: no munged, key or socket to
	// manage. Anything that can reach the loopback ports can act as any
	// user, which is acceptable for a cluster that lives for one test.
	w("AuthType=auth/none")
	w("CredType=cred/none")
	w("SlurmUser=%s", p.user)
	w("SlurmdUser=%s", p.user)
	w("StateSaveLocation=%s/state", p.dir)
	w("SlurmdSpoolDir=%s/spool", p.dir)
	w("SlurmctldPidFile=%s/slurmctld.pid", p.dir)
	w("SlurmdPidFile=%s/slurmd.pid", p.dir)
	w("SlurmctldLogFile=%s/log/slurmctld.log", p.dir)
	w("SlurmdLogFile=%s/log/slurmd.log", p.dir)
	w("SlurmctldDebug=%s", p.debug)
	w("SlurmdDebug=%s", p.debug)
	w("ProctrackType=%s", p.proctrack)
	// No cgroups, no CPU binding: jobs run as plain processes.
	w("TaskPlugin=task/none")
	w("SelectType=select/cons_tres")
	// CPUs are the only consumable resource, so jobs need no --mem and as
	// many run at once as the node has CPUs.
	w("SelectTypeParameters=CR_CPU")
	w("SchedulerType=sched/builtin")
	// Slurm waits up to batch_sched_delay (3s) before scheduling a
	// submitted batch job and runs the full queue every sched_interval
	// (60s): each wave of array tasks and each dependent job would start
	// seconds late. The background loop still runs at most once a second.
	w("SchedulerParameters=batch_sched_delay=0,sched_interval=1")
	// A dependency that can never be satisfied (afterok on a failed job)
	// would otherwise leave the job pending for ever and WaitJob waiting
	// until its deadline; cancelled, it shows up as CANCELLED.
	w("DependencyParameters=kill_invalid_depend")
	w("MpiDefault=none")
	w("JobAcctGatherType=jobacct_gather/none")
	w("AccountingStorageType=accounting_storage/none")
	w("JobCompType=jobcomp/none")
	// The default /usr/bin/mail is usually absent; slurmctld logs an error
	// for it at every start.
	w("MailProg=%s", p.mailProg)
	w("KillWait=%d", p.killWait)
	// A finished job stays visible to scontrol (WaitJob's source of final
	// states: without slurmdbd there is no sacct) for an hour.
	w("MinJobAge=3600")
	w("MaxJobCount=100000")
	w("MaxArraySize=10001")
	// The node was never down for a reason an operator must clear.
	w("ReturnToService=2")
	if p.plugstack != "" {
		w("PlugStackConfig=%s", p.plugstack)
	}
	// The node is named after the cluster, not the host (slurmd -N says
	// which node it is): proctrack/cgroup names its cgroups after the node
	// (/sys/fs/cgroup/freezer/slurm_<node>/uid_<uid>/job_<id>), and every
	// cluster's job ids start at 1, so two clusters on one host would
	// otherwise share, and kill, each other's job cgroups.
	node := fmt.Sprintf("NodeName=%s NodeHostname=%s NodeAddr=127.0.0.1", p.nodeName, p.hw.nodeName)
	if p.cpus == p.hw.cpus {
		for _, k := range []string{"CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore"} {
			if v := p.hw.fields[k]; v != "" {
				node += fmt.Sprintf(" %s=%s", k, v)
			}
		}
	} else {
		// More (or fewer) CPUs than the machine has: declare only the count
		// and let slurmd accept it as configured.
		w("SlurmdParameters=config_overrides")
		node += fmt.Sprintf(" CPUs=%d", p.cpus)
	}
	node += fmt.Sprintf(" RealMemory=%s State=UNKNOWN", p.hw.fields["RealMemory"])
	w("%s", node)
	w("PartitionName=%s Nodes=%s Default=YES MaxTime=INFINITE State=UP", p.partition, p.nodeName)
	return b.String()
}

// cgroupConf is written next to slurm.conf for proctrack/cgroup, which
// reads it. cgroup/v1 because that is what cgroupV1Usable checks for
// (cgroup/v2 without systemd needs IgnoreSystemd, untested here), and no
// automount: a test must not mount file systems.
const cgroupConf = "CgroupPlugin=cgroup/v1\nCgroupAutomount=no\n"

// freezerDir is the cgroup v1 hierarchy that proctrack/cgroup uses.
const freezerDir = "/sys/fs/cgroup/freezer"

// cgroupV1Usable reports whether proctrack/cgroup can work here: slurmd
// must be able to create cgroups in the freezer hierarchy.
func cgroupV1Usable() bool {
	if os.Geteuid() != 0 {
		return false
	}
	if _, err := os.Stat(filepath.Join(freezerDir, "cgroup.procs")); err != nil {
		return false
	}
	probe := filepath.Join(freezerDir, "slurmtest-probe-"+randomLetters(8))
	if err := os.Mkdir(probe, 0o755); err != nil {
		return false
	}
	_ = os.Remove(probe)
	return true
}

// removeCgroups removes the cgroups slurmd and slurmstepd left for node in
// every v1 hierarchy (Slurm removes a job's cgroup but not its own
// slurm_<node>/uid_<uid> tree). A cgroup directory can only be removed
// empty, deepest first, and rmdir is all it takes: its files are virtual.
func removeCgroups(node string) error {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/slurm_" + node)
	var errs []error
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("slurmtest: remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}
