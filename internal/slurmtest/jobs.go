package slurmtest

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Sbatch submits a batch job with sbatch --parsable and returns its id (for
// an array, the array's id). Unless args set --output (-o), the job's
// output, and its error unless args set --error, go to
// OutputDir()/slurm-<jobid>.out; note that sbatch's options, this one
// included, override a script's #SBATCH lines. The job runs in the
// caller's working directory, sbatch's default, unless args set --chdir.
func (c *Cluster) Sbatch(args ...string) (jobID string, err error) {
	full := []string{"--parsable"}
	if !hasOption(args, "-o", "--output") {
		full = append(full, "--output="+filepath.Join(c.OutputDir(), "slurm-%j.out"))
	}
	out, err := c.runShort("sbatch", append(full, args...)...)
	if err != nil {
		return "", err
	}
	// --parsable prints "id" or, in a federation, "id;cluster".
	id, _, _ := strings.Cut(strings.TrimSpace(out), ";")
	if !isJobID(id) {
		return "", fmt.Errorf("slurmtest: sbatch %s: no job id in its output %q", strings.Join(args, " "), out)
	}
	return id, nil
}

// Qsub submits a job with slurm-wlm-torque's qsub, a Perl wrapper that
// translates Torque's options to sbatch's (-t 1-3 to --array=1-3, -W
// depend=afterany:ID to --dependency=afterany:ID, which therefore takes
// Slurm's dependency types) and returns the job's id: a plain number, also
// for an array (not Torque's "ID[]"). The script must be a file: this qsub
// does not read one from standard input, and it runs sbatch through a
// shell, so arguments must not need quoting.
//
// Unless args set -o and -e, output and error go to
// OutputDir()/qsub-<jobid>.out and .err instead of the submission
// directory.
func (c *Cluster) Qsub(args ...string) (jobID string, err error) {
	var full []string
	if !hasOption(args, "-o") {
		full = append(full, "-o", filepath.Join(c.OutputDir(), "qsub-%j.out"))
	}
	if !hasOption(args, "-e") && !hasOption(args, "-j") {
		full = append(full, "-e", filepath.Join(c.OutputDir(), "qsub-%j.err"))
	}
	out, err := c.runShort("qsub", append(full, args...)...)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(out)
	if !isJobID(id) {
		// qsub reports sbatch's failures on standard output.
		return "", fmt.Errorf("slurmtest: qsub %s: %s", strings.Join(args, " "), id)
	}
	return id, nil
}

// Squeue runs squeue with args and returns its output.
func (c *Cluster) Squeue(args ...string) (string, error) {
	return c.runShort("squeue", args...)
}

// Scancel runs scancel with flags on job id. Without flags it cancels the
// job, which ends CANCELLED: SIGCONT and SIGTERM to the processes the
// process tracking plugin signals (see the package documentation), SIGKILL
// to all it tracks about max(KillWait, 5s) later or as soon as the batch
// script exits. --signal=SIG alone signals only srun job steps, never the
// batch script, and leaves the job running; add --full to signal the batch
// script and its children, or --batch for the batch shell alone.
func (c *Cluster) Scancel(id string, flags ...string) error {
	_, err := c.runShort("scancel", append(flags, id)...)
	return err
}

// Job is one job record as scontrol shows it: a job, one task of an array,
// or the array's tasks that have not started yet.
type Job struct {
	ID          string // JobId: the record's own id; each started array task has its own
	ArrayJobID  string // ArrayJobId: the array's id, or "" outside an array
	ArrayTaskID string // ArrayTaskId: the task's index, or a range ("2-3") of tasks not started yet
	Name        string // JobName
	State       string // JobState: PENDING, RUNNING, COMPLETING, COMPLETED, CANCELLED, FAILED, TIMEOUT, ...
	Reason      string // Reason: why it is pending, or None
	ExitCode    string // ExitCode: "status:signal" of the batch script
	// Fields holds every field scontrol shows, by name (NodeList, WorkDir,
	// StdOut, ...).
	Fields map[string]string
}

// State is a snapshot of a job, or of every task of an array job.
type State struct {
	Jobs []Job // ordered by array task index, then by id
}

// terminalStates are the states of a job that is over, processes gone.
// A job whose processes are still being killed is COMPLETING.
var terminalStates = []string{
	"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED",
	"NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT",
}

func terminal(state string) bool { return slices.Contains(terminalStates, state) }

// Done reports whether every job in the snapshot is over.
func (s State) Done() bool {
	for _, j := range s.Jobs {
		if !terminal(j.State) {
			return false
		}
	}
	return len(s.Jobs) > 0
}

// Expect returns nil if every job is in state want, and otherwise an error
// listing the jobs that are not.
func (s State) Expect(want string) error {
	var bad []string
	for _, j := range s.Jobs {
		if j.State != want {
			bad = append(bad, j.String())
		}
	}
	if len(bad) > 0 || len(s.Jobs) == 0 {
		return fmt.Errorf("slurmtest: want every job %s, have %s", want, s)
	}
	return nil
}

func (s State) String() string {
	if len(s.Jobs) == 0 {
		return "no jobs"
	}
	parts := make([]string, len(s.Jobs))
	for i, j := range s.Jobs {
		parts[i] = j.String()
	}
	return strings.Join(parts, ", ")
}

func (j Job) String() string {
	id := j.ID
	if j.ArrayJobID != "" {
		id = fmt.Sprintf("%s_%s(%s)", j.ArrayJobID, j.ArrayTaskID, j.ID)
	}
	s := id + " " + j.State
	if j.ExitCode != "" && j.ExitCode != "0:0" {
		s += " exit " + j.ExitCode
	}
	if j.Reason != "" && j.Reason != "None" {
		s += " (" + j.Reason + ")"
	}
	return s
}

// Job returns the current state of job id: a job, an array (all its
// tasks), or one task ("ID_INDEX"). Finished jobs stay visible for an hour
// (MinJobAge).
func (c *Cluster) Job(id string) (State, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	return c.job(ctx, id)
}

func (c *Cluster) job(ctx context.Context, id string) (State, error) {
	// scontrol, not squeue: squeue hides finished jobs by default and its
	// --json ignores the job filter in 22.05; sacct needs slurmdbd.
	out, err := c.run(ctx, "scontrol", "--oneliner", "show", "job", id)
	if err != nil {
		return State{}, err
	}
	var s State
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := fields(line)
		arrayJobID := f["ArrayJobId"]
		if arrayJobID == "0" { // never shown so far, but cheap to be sure
			arrayJobID = ""
		}
		s.Jobs = append(s.Jobs, Job{
			ID:          f["JobId"],
			ArrayJobID:  arrayJobID,
			ArrayTaskID: f["ArrayTaskId"],
			Name:        f["JobName"],
			State:       f["JobState"],
			Reason:      f["Reason"],
			ExitCode:    f["ExitCode"],
			Fields:      f,
		})
	}
	slices.SortStableFunc(s.Jobs, func(a, b Job) int {
		if d := leadingInt(a.ArrayTaskID) - leadingInt(b.ArrayTaskID); d != 0 {
			return d
		}
		return leadingInt(a.ID) - leadingInt(b.ID)
	})
	if len(s.Jobs) == 0 {
		return s, fmt.Errorf("slurmtest: scontrol shows no job %s", id)
	}
	return s, nil
}

// WaitJob waits until job id (a job, an array: every task, or one task) is
// over, processes gone, and returns its final state. It returns the last
// state seen and an error if ctx ends first.
func (c *Cluster) WaitJob(ctx context.Context, id string) (State, error) {
	var s State
	var lastErr error
	err := c.poll(ctx, "job "+id+" to end", func() (bool, error) {
		st, err := c.job(ctx, id)
		if err != nil {
			if strings.Contains(err.Error(), "Invalid job id") {
				return false, err
			}
			// A busy or restarting slurmctld; ctx bounds the retries.
			lastErr = err
			return false, nil
		}
		s, lastErr = st, nil
		return s.Done(), nil
	})
	if err != nil {
		if lastErr != nil {
			err = fmt.Errorf("%w (last error: %w)", err, lastErr)
		}
		return s, fmt.Errorf("%w; last state: %s", err, s)
	}
	return s, nil
}

// fieldStart matches the start of a "Key=" token in scontrol's one-line
// output; keys include ':' and '/' (AllocNode:Sid, CPUs/Task).
var fieldStart = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_:/]*=`)

// fields parses one line of scontrol --oneliner output. A value may contain
// spaces (a command's path): words that do not start a new field belong to
// the previous value.
func fields(line string) map[string]string {
	f := map[string]string{}
	var last string
	for _, w := range strings.Split(strings.TrimSpace(line), " ") {
		if fieldStart.MatchString(w) {
			k, v, _ := strings.Cut(w, "=")
			f[k] = v
			last = k
		} else if last != "" {
			f[last] += " " + w
		}
	}
	return f
}

var jobIDRE = regexp.MustCompile(`^[0-9]+$`)

func isJobID(s string) bool { return jobIDRE.MatchString(s) }

func leadingInt(s string) int {
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(s[:end])
	return n
}

// hasOption reports whether args contain one of the options, alone
// ("-o", "--output"), with its value attached ("-ofile", "--output=file").
func hasOption(args []string, opts ...string) bool {
	for _, a := range args {
		for _, o := range opts {
			if a == o || (strings.HasPrefix(o, "--") && strings.HasPrefix(a, o+"=")) ||
				(!strings.HasPrefix(o, "--") && strings.HasPrefix(a, o)) {
				return true
			}
		}
	}
	return false
}
