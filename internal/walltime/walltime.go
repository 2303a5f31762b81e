// Package walltime works out when the batch allocation zkdog runs in
// ends, for `zkdog run --lifetime auto`. It knows the schedulers, not
// ZooKeeper.
//
// What is read, in this order:
//
//   - Slurm (SLURM_JOB_ID set): SLURM_JOB_END_TIME, the end in seconds
//     since the epoch, which Slurm 21.08 and later give every job; else
//     the end time of `squeue -h -o %e -j $SLURM_JOB_ID`, which squeue
//     prints in local time (2026-12-02T01:23:45).
//   - PBS Pro and Torque (PBS_JOBID set): the job's walltime, from
//     PBS_WALLTIME (seconds) when set, else Resource_List.walltime of
//     `qstat -f $PBS_JOBID`, added to the job's start_time (or stime)
//     there. When PBS_WALLTIME is set but qstat gives no start, the start
//     is taken as now: zkdog run starts with its task.
//
// Anywhere else (no scheduler, SGE, LSF), and when a command fails or
// prints nothing usable (a job without a time limit), End returns an
// error matching ErrUnknown, and the caller runs without a limit.
package walltime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ErrUnknown: the allocation's end could not be found out.
var ErrUnknown = errors.New("the batch allocation's end is unknown")

// commandPatience bounds a scheduler command: a slow controller must not
// hold up the task for longer than the answer is worth.
const commandPatience = 15 * time.Second

// Env is what End reads: the environment, a way to run a scheduler
// command, and the clock. Its zero fields are the process's own.
type Env struct {
	Getenv func(string) string
	// Run runs a command and returns its standard output.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	Now func() time.Time
	// Location is where squeue's local times are read; nil is time.Local.
	Location *time.Location
}

// End returns when the allocation ends, and what said so (for the log).
func End(ctx context.Context, e Env) (time.Time, string, error) {
	e = e.withDefaults()
	switch {
	case e.Getenv("SLURM_JOB_ID") != "" || e.Getenv("SLURM_JOB_END_TIME") != "":
		return e.slurm(ctx)
	case e.Getenv("PBS_JOBID") != "":
		return e.pbs(ctx)
	}
	return time.Time{}, "", fmt.Errorf("%w: not in a Slurm or PBS job (neither SLURM_JOB_ID nor PBS_JOBID is set)", ErrUnknown)
}

func (e Env) withDefaults() Env {
	if e.Getenv == nil {
		e.Getenv = func(string) string { return "" }
	}
	if e.Run == nil {
		e.Run = runCommand
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Location == nil {
		e.Location = time.Local
	}
	return e
}

func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, commandPatience)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("%w: %s", err, firstLine(msg))
		}
		return nil, err
	}
	return out, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func (e Env) slurm(ctx context.Context) (time.Time, string, error) {
	if s := strings.TrimSpace(e.Getenv("SLURM_JOB_END_TIME")); s != "" {
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil || secs <= 0 {
			return time.Time{}, "", fmt.Errorf("%w: SLURM_JOB_END_TIME=%q is not seconds since the epoch", ErrUnknown, s)
		}
		return time.Unix(secs, 0), "SLURM_JOB_END_TIME", nil
	}
	id := e.Getenv("SLURM_JOB_ID")
	out, err := e.Run(ctx, "squeue", "-h", "-o", "%e", "-j", id)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: squeue -j %s: %v", ErrUnknown, id, err)
	}
	s := strings.TrimSpace(string(out))
	end, err := time.ParseInLocation("2006-01-02T15:04:05", s, e.Location)
	if err != nil {
		// "N/A", "Unknown": a job without a time limit.
		return time.Time{}, "", fmt.Errorf("%w: squeue gives job %s the end time %q", ErrUnknown, id, s)
	}
	return end, "squeue", nil
}

func (e Env) pbs(ctx context.Context) (time.Time, string, error) {
	id := e.Getenv("PBS_JOBID")
	var wall time.Duration
	source := "qstat"
	if s := strings.TrimSpace(e.Getenv("PBS_WALLTIME")); s != "" {
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil || secs <= 0 {
			return time.Time{}, "", fmt.Errorf("%w: PBS_WALLTIME=%q is not seconds", ErrUnknown, s)
		}
		wall, source = time.Duration(secs)*time.Second, "PBS_WALLTIME"
	}
	out, err := e.Run(ctx, "qstat", "-f", id)
	if err != nil && wall == 0 {
		return time.Time{}, "", fmt.Errorf("%w: qstat -f %s: %v", ErrUnknown, id, err)
	}
	attrs := qstatAttributes(out)
	if wall == 0 {
		if wall, err = parseWalltime(attrs["Resource_List.walltime"]); err != nil {
			return time.Time{}, "", fmt.Errorf("%w: qstat -f %s: Resource_List.walltime: %v", ErrUnknown, id, err)
		}
	}
	start, ok := parseStart(attrs["start_time"], e.Location)
	if !ok {
		start, ok = parseStart(attrs["stime"], e.Location)
	}
	if !ok {
		if source == "qstat" {
			return time.Time{}, "", fmt.Errorf("%w: qstat -f %s gives no start_time", ErrUnknown, id)
		}
		start, source = e.Now(), "PBS_WALLTIME from now"
	} else if source == "PBS_WALLTIME" {
		source = "PBS_WALLTIME and qstat's start_time"
	}
	return start.Add(wall), source, nil
}

// qstatAttributes reads the "name = value" lines of qstat -f.
func qstatAttributes(out []byte) map[string]string {
	attrs := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " = ")
		if ok {
			attrs[strings.TrimSpace(name)] = strings.TrimSpace(value)
		}
	}
	return attrs
}

// parseWalltime reads [[[DD:]HH:]MM:]SS, as PBS prints a walltime.
func parseWalltime(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("not given (a job without a time limit)")
	}
	fields := strings.Split(s, ":")
	if len(fields) > 4 {
		return 0, fmt.Errorf("%q is not a walltime", s)
	}
	units := []time.Duration{time.Second, time.Minute, time.Hour, 24 * time.Hour}
	var d time.Duration
	for i, f := range fields {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a walltime", s)
		}
		d += time.Duration(n) * units[len(fields)-1-i]
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not a walltime", s)
	}
	return d, nil
}

// parseStart reads a start time as Torque (seconds since the epoch, or
// a ctime-style date) or PBS Pro (a ctime-style date) print it.
func parseStart(s string, loc *time.Location) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil && secs > 0 {
		return time.Unix(secs, 0), true
	}
	// Fields drops the padding of a one-digit day ("Dec  2").
	t, err := time.ParseInLocation("Mon Jan 2 15:04:05 2006", strings.Join(strings.Fields(s), " "), loc)
	return t, err == nil
}
