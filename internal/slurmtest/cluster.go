package slurmtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const (
	// pollInterval is how often Start and WaitJob ask Slurm for news.
	pollInterval = 150 * time.Millisecond
	// cmdTimeout bounds one client command run by a helper without a
	// context. slurmctld answers in milliseconds; a hang means it is wedged.
	cmdTimeout = 30 * time.Second
	// daemonGrace is how long Stop lets each daemon shut down after SIGTERM.
	daemonGrace = 5 * time.Second
	// drainSlack is how long Stop waits for cancelled jobs beyond KillWait.
	drainSlack = 15 * time.Second
	// startAttempts bounds Start's retries after losing a port race.
	startAttempts = 3
)

// Cluster is a running single-node Slurm cluster. Its methods are safe for
// concurrent use.
type Cluster struct {
	dir         string
	ownDir      bool     // dir was created by Start and is removed by Stop
	created     []string // what Start created in a caller's Dir
	conf        string
	name        string
	node        string
	proctrack   string
	partition   string
	cpus        int
	killWait    time.Duration
	ports       []int
	bin         map[string]string
	ctld, slurm *daemon

	stopOnce sync.Once
	stopErr  error
}

// Start starts a cluster and returns once its node is idle, ready to run
// jobs. If ctx ends first, or a daemon exits, it stops what it started and
// returns an error that includes the end of the daemons' logs.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	bin, err := findCommands()
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		c, err := start(ctx, cfg, bin)
		if err == nil || !errors.Is(err, errPortInUse) || attempt == startAttempts {
			return c, err
		}
	}
}

func start(ctx context.Context, cfg Config, bin map[string]string) (_ *Cluster, err error) {
	c := &Cluster{bin: bin, partition: cfg.Partition, killWait: cfg.KillWait}
	if c.partition == "" {
		c.partition = DefaultPartition
	}
	if c.killWait <= 0 {
		c.killWait = DefaultKillWait
	}
	killWaitSecs := int((c.killWait + time.Second - 1) / time.Second)
	c.killWait = time.Duration(killWaitSecs) * time.Second

	hw, err := detectHardware(ctx, bin["slurmd"])
	if err != nil {
		return nil, err
	}
	c.cpus = cfg.CPUs
	if c.cpus <= 0 {
		c.cpus = hw.cpus
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("slurmtest: current user: %w", err)
	}
	mailProg, err := exec.LookPath("true")
	if err != nil {
		mailProg = "/bin/true"
	}

	c.dir = cfg.Dir
	if c.dir == "" {
		// Not t.TempDir: its long path would push slurmstepd's Unix socket
		// paths toward the 108-byte limit.
		if c.dir, err = os.MkdirTemp("", "slurmtest-"); err != nil {
			return nil, fmt.Errorf("slurmtest: %w", err)
		}
		c.ownDir = true
	} else if c.dir, err = filepath.Abs(c.dir); err != nil {
		return nil, fmt.Errorf("slurmtest: %w", err)
	}
	if strings.ContainsAny(c.dir, " \t,#\"'") {
		return nil, fmt.Errorf("slurmtest: directory %q: slurm.conf cannot hold a path with spaces, commas, quotes or #", c.dir)
	}
	defer func() {
		if err != nil {
			_ = c.removeFiles()
		}
	}()
	for _, sub := range []string{"state", "spool", "log", "output"} {
		path := filepath.Join(c.dir, sub)
		if err := os.Mkdir(path, 0o755); err != nil {
			// An existing directory would hold a previous cluster's state,
			// which slurmctld would try to recover.
			return nil, fmt.Errorf("slurmtest: %w", err)
		}
		c.created = append(c.created, path)
	}

	if c.ports, err = allocPorts(2); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			releasePorts(c.ports...)
		}
	}()
	// Letters only: Slurm reads trailing digits of a node name as an index
	// in a host list.
	suffix := randomLetters(8)
	c.name = "st" + suffix
	c.node = "st" + suffix + "-node"

	p := confParams{
		dir:         c.dir,
		clusterName: c.name,
		nodeName:    c.node,
		user:        u.Username,
		hw:          hw,
		cpus:        c.cpus,
		ctldPort:    c.ports[0],
		slurmdPort:  c.ports[1],
		killWait:    killWaitSecs,
		proctrack:   cfg.ProctrackType,
		partition:   c.partition,
		debug:       cfg.DebugLevel,
		mailProg:    mailProg,
	}
	if p.proctrack == "" {
		p.proctrack = "proctrack/linuxproc"
		if cgroupV1Usable() {
			p.proctrack = "proctrack/cgroup"
		}
	}
	c.proctrack = p.proctrack
	if p.debug == "" {
		p.debug = "info"
	}
	if cfg.PBSEnv {
		p.plugstack = filepath.Join(c.dir, "plugstack.conf")
		// required: a job without its PBS_* variables would make a test
		// fail far from the cause.
		if err := c.writeFile(p.plugstack, "required spank_pbs.so\n"); err != nil {
			return nil, err
		}
	}
	if p.proctrack == "proctrack/cgroup" {
		if err := c.writeFile(filepath.Join(c.dir, "cgroup.conf"), cgroupConf); err != nil {
			return nil, err
		}
	}
	c.conf = filepath.Join(c.dir, "slurm.conf")
	if err := c.writeFile(c.conf, renderConf(p)); err != nil {
		return nil, err
	}

	defer func() {
		if err != nil {
			c.stopDaemons()
			_ = removeCgroups(c.node)
			err = fmt.Errorf("%w\n%s", err, c.LogTail(30))
		}
	}()
	// slurmd starts once slurmctld answers: before, it would log failed
	// registrations, and a slurmctld that cannot start would show up as a
	// node that never registers.
	if c.ctld, err = c.launchDaemon("slurmctld"); err != nil {
		return nil, err
	}
	if err := c.poll(ctx, "slurmctld to answer", func() (bool, error) {
		_, err := c.run(ctx, "scontrol", "ping")
		return err == nil, nil
	}); err != nil {
		return nil, err
	}
	if c.slurm, err = c.launchDaemon("slurmd"); err != nil {
		return nil, err
	}
	if err := c.poll(ctx, "node "+c.node+" to be idle", func() (bool, error) {
		out, err := c.run(ctx, "scontrol", "-o", "show", "node", c.node)
		if err != nil {
			return false, nil
		}
		// "IDLE" alone: IDLE+NOT_RESPONDING, IDLE+DRAIN and the like
		// cannot run jobs.
		return fields(out)["State"] == "IDLE", nil
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Cluster) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("slurmtest: %w", err)
	}
	c.created = append(c.created, path)
	return nil
}

// launchDaemon starts slurmctld or slurmd. Not under Start's context: the
// daemons live until Stop.
func (c *Cluster) launchDaemon(name string) (*daemon, error) {
	out, err := os.Create(filepath.Join(c.dir, "log", name+".out"))
	if err != nil {
		return nil, fmt.Errorf("slurmtest: %w", err)
	}
	c.created = append(c.created, out.Name())
	defer out.Close() // the child has its own descriptor
	args := []string{"-D", "-f", c.conf}
	if name == "slurmd" {
		args = append(args, "-N", c.node)
	}
	cmd := exec.Command(c.bin[name], args...)
	cmd.Env = c.environ()
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = out, out
	return launch(name, cmd)
}

// poll calls check every pollInterval until it returns true or an error,
// a daemon exits, or ctx ends.
func (c *Cluster) poll(ctx context.Context, what string, check func() (bool, error)) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		ok, err := check()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		for _, d := range []*daemon{c.ctld, c.slurm} {
			if d != nil && d.Exited() {
				err := fmt.Errorf("slurmtest: %s exited (%v) while waiting for %s", d.name, d.Err(), what)
				if bytes.Contains(c.readLog(d.name), []byte("Address already in use")) {
					err = fmt.Errorf("%w: %w", err, errPortInUse)
				}
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("slurmtest: waiting for %s: %w", what, context.Cause(ctx))
		case <-t.C:
		}
	}
}

func (c *Cluster) readLog(name string) []byte {
	var all []byte
	for _, f := range []string{name + ".log", name + ".out"} {
		b, _ := os.ReadFile(filepath.Join(c.dir, "log", f))
		all = append(all, b...)
	}
	return all
}

// LogTail returns the last n lines of slurmctld's and slurmd's logs, and of
// their standard output and error when these hold more (what a daemon says
// before it opens its log file).
func (c *Cluster) LogTail(n int) string {
	var b strings.Builder
	for _, name := range []string{"slurmctld", "slurmd"} {
		log := filepath.Join(c.dir, "log", name+".log")
		out := filepath.Join(c.dir, "log", name+".out")
		fmt.Fprintf(&b, "--- %s\n%s\n", log, tail(log, n))
		// With -D, each log line is also copied to standard output,
		// without a timestamp, as "name: message".
		logLast, outLast := lastLine(log), strings.TrimPrefix(lastLine(out), name+": ")
		if outLast != "" && !strings.HasSuffix(logLast, outLast) {
			fmt.Fprintf(&b, "--- %s\n%s\n", out, tail(out, n))
		}
	}
	return b.String()
}

// Stop cancels every job, waits until they have left the queue (their
// processes killed: about max(KillWait, 5s) after SIGTERM at worst), stops
// slurmd then slurmctld, removes the node's cgroups and what Start created.
// Calls after the first return the first's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		if err := c.cancelAll(); err != nil {
			errs = append(errs, err)
		}
		c.stopDaemons()
		releasePorts(c.ports...)
		if err := removeCgroups(c.node); err != nil {
			errs = append(errs, err)
		}
		if err := c.removeFiles(); err != nil {
			errs = append(errs, err)
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// cancelAll cancels every job and waits until the queue is empty, so that
// no job process outlives the cluster: slurmstepd, not slurmd, is their
// parent, and it keeps running without slurmd.
func (c *Cluster) cancelAll() error {
	if c.ctld == nil || c.ctld.Exited() || c.slurm == nil || c.slurm.Exited() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.killWait+drainSlack)
	defer cancel()
	if _, err := c.run(ctx, "scancel", "--quiet", "--partition="+c.partition); err != nil {
		return err
	}
	var left string
	err := c.poll(ctx, "cancelled jobs to leave the queue", func() (bool, error) {
		out, err := c.run(ctx, "squeue", "--noheader", "--states=all", "--format=%i %T")
		if err != nil {
			return false, nil
		}
		left = ""
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if id, state, ok := strings.Cut(line, " "); ok && !terminal(state) {
				left += " " + id + "(" + state + ")"
			}
		}
		return left == "", nil
	})
	if err != nil {
		return fmt.Errorf("%w; still queued:%s", err, left)
	}
	return nil
}

func (c *Cluster) stopDaemons() {
	// slurmd first: stopped after slurmctld, it would spend its shutdown
	// failing to reach it.
	for _, d := range []*daemon{c.slurm, c.ctld} {
		if d != nil {
			d.Stop(daemonGrace)
		}
	}
}

func (c *Cluster) removeFiles() error {
	if c.ownDir {
		if err := os.RemoveAll(c.dir); err != nil {
			return fmt.Errorf("slurmtest: %w", err)
		}
		return nil
	}
	var errs []error
	for i := len(c.created) - 1; i >= 0; i-- {
		if err := os.RemoveAll(c.created[i]); err != nil {
			errs = append(errs, err)
		}
	}
	c.created = nil
	return errors.Join(errs...)
}

// Name is the cluster's ClusterName, unique to this run.
func (c *Cluster) Name() string { return c.name }

// Dir is the directory holding the cluster's configuration, state and logs.
func (c *Cluster) Dir() string { return c.dir }

// ConfPath is the path of slurm.conf, SLURM_CONF's value.
func (c *Cluster) ConfPath() string { return c.conf }

// NodeName is the node's name (SLURMD_NODENAME in jobs), unique to the
// cluster; its host name is the machine's.
func (c *Cluster) NodeName() string { return c.node }

// ProctrackType is the process tracking plugin in use.
func (c *Cluster) ProctrackType() string { return c.proctrack }

// Partition is the name of the only partition, the default one.
func (c *Cluster) Partition() string { return c.partition }

// CPUs is how many single-CPU jobs can run at once.
func (c *Cluster) CPUs() int { return c.cpus }

// KillWait is slurm.conf's KillWait: Config.KillWait rounded up to whole
// seconds. scancel gives a job about max(KillWait, 5s) between SIGTERM and
// SIGKILL.
func (c *Cluster) KillWait() time.Duration { return c.killWait }

// OutputDir is where Sbatch and Qsub send jobs' standard output and error
// unless told otherwise: slurm-<jobid>.out, one file per array task.
func (c *Cluster) OutputDir() string { return filepath.Join(c.dir, "output") }

// Env returns the variables that Slurm's client commands (sbatch, squeue,
// scontrol, qsub, ...) need to reach this cluster, to add to a command's
// environment.
func (c *Cluster) Env() []string {
	return []string{"SLURM_CONF=" + c.conf}
}

// environ is the environment for commands the cluster runs: ours without
// variables that would steer Slurm's commands elsewhere (a test run inside
// a Slurm or PBS job has plenty), plus Env.
func (c *Cluster) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if hasAnyPrefix(k, "SLURM_", "SBATCH_", "SQUEUE_", "SCANCEL_", "SINFO_", "SCONTROL_", "SALLOC_", "SRUN_", "PBS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, c.Env()...)
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// Command returns a command that runs name (a Slurm command or any other
// program) against this cluster: with Env added to the environment, minus
// any SLURM_*, SBATCH_*, PBS_*, ... variables inherited from ours.
func (c *Cluster) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := name
	if p, ok := c.bin[name]; ok {
		path = p
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = c.environ()
	return cmd
}

// Run runs a command as Command does and returns its standard output. Its
// error includes the command's standard error.
func (c *Cluster) Run(ctx context.Context, name string, args ...string) (string, error) {
	return c.run(ctx, name, args...)
}

func (c *Cluster) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := c.Command(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("slurmtest: %s %s: %w: %s", name, strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()+"\n"+stdout.String()))
	}
	return stdout.String(), nil
}

func (c *Cluster) runShort(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return c.run(ctx, name, args...)
}

func randomLetters(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return string(b)
}
