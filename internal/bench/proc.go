package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Spec describes a child process to start.
type Spec struct {
	Path string
	Args []string
	// Env is added to the driver's environment, from which every ZKDOG_*
	// variable is removed first: the benchmark passes what it means with
	// flags, and a ZKDOG_ZK left in the caller's shell must not send a
	// worker to another server.
	Env []string
	// Log receives the child's standard error (and standard output when
	// Stdout is nil). A file rather than a pipe, so that Wait returns as
	// soon as the process is reaped, not when the last holder of a pipe
	// (a grandchild) lets go of it: exit times are what some benchmarks
	// measure.
	Log string
	// Stdout, if set, receives standard output instead of Log.
	Stdout io.Writer
	// Stdin, if set, is the child's standard input.
	Stdin io.Reader
	// OwnCPU measures the process's own CPU (OwnCPU), without that of the
	// children it reaped, which its rusage includes.
	OwnCPU bool
}

// Proc is a started child process. Started is taken just before the fork
// and Exited just after the reaping, by a goroutine that waits from the
// start, so several processes' exit times are stamped independently of
// the order in which the driver looks at them.
type Proc struct {
	Started time.Time
	Exited  time.Time

	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
	// own is the process's own CPU read just before it was reaped, ownErr
	// why it could not be.
	own    time.Duration
	ownErr error
}

// Start starts the process. It is killed (SIGKILL) if ctx ends first,
// and, on Linux, if the driver dies.
func Start(ctx context.Context, s Spec) (*Proc, error) {
	cmd := exec.CommandContext(ctx, s.Path, s.Args...)
	cmd.Env = append(cleanEnv(), s.Env...)
	cmd.SysProcAttr = sysProcAttr()
	f, err := os.OpenFile(s.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer f.Close() // the child holds its own descriptor
	cmd.Stdout, cmd.Stderr = f, f
	if s.Stdout != nil {
		cmd.Stdout = s.Stdout
	}
	cmd.Stdin = s.Stdin
	p := &Proc{cmd: cmd, log: s.Log, done: make(chan struct{})}
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting %s: %w", s.Path, err)
	}
	p.ownErr = errNotAsked
	go func() {
		if s.OwnCPU {
			p.own, p.ownErr = ownCPUAtExit(cmd.Process.Pid)
		}
		err := cmd.Wait()
		p.Exited = time.Now()
		p.err = err
		close(p.done)
	}()
	return p, nil
}

// Run starts the process and waits for it.
func Run(ctx context.Context, s Spec) (*Proc, error) {
	p, err := Start(ctx, s)
	if err != nil {
		return nil, err
	}
	return p, p.Wait()
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ZKDOG_") {
			env = append(env, kv)
		}
	}
	return env
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process and returns nil if it exited 0; otherwise
// the error carries the exit status and the end of its log.
func (p *Proc) Wait() error {
	<-p.done
	if p.err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w%s", strings.Join(p.cmd.Args, " "), p.err, p.logTail())
}

// ExitCode is the exit status once reaped (-1 when killed by a signal).
func (p *Proc) ExitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// Elapsed is the time from just before the start to the reaping.
func (p *Proc) Elapsed() time.Duration {
	<-p.done
	return p.Exited.Sub(p.Started)
}

// CPU is the user and system time of the process and of the children it
// reaped (wait4 reports both), once it has been reaped.
func (p *Proc) CPU() time.Duration {
	<-p.done
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
}

// errNotAsked: the Spec did not ask for OwnCPU.
var errNotAsked = errors.New("bench: own CPU not measured (Spec.OwnCPU)")

// OwnCPU is the CPU time (user + system) of the process itself, without
// its children's, once it has been reaped.
func (p *Proc) OwnCPU() (time.Duration, error) {
	<-p.done
	return p.own, p.ownErr
}

// ownCPUAtExit waits for pid to exit and reads its own CPU while it is a
// zombie, before anything reaps it.
func ownCPUAtExit(pid int) (time.Duration, error) {
	if err := awaitExit(pid); err != nil {
		return 0, fmt.Errorf("%w: waiting for %d: %v", ErrNoProc, pid, err)
	}
	return ProcCPU(pid)
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// LogTail is the end of the process's log, for error messages.
func (p *Proc) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	const keep = 1500
	if len(b) > keep {
		b = b[len(b)-keep:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return "\n--- " + p.log + ":\n" + strings.TrimRight(string(b), "\n")
}

// userHZ is the unit of the times in /proc/PID/stat. It is part of the
// kernel's user ABI (USER_HZ), 100 on every architecture Go runs Linux on,
// whatever the kernel's own tick rate; reading it properly would need
// sysconf(_SC_CLK_TCK), that is cgo.
const userHZ = 100

// ErrNoProc is wrapped when a /proc entry cannot be read: the process is
// gone, or this is not Linux.
var ErrNoProc = errors.New("bench: process not readable in /proc")

// ProcCPU is the CPU time (user + system, all threads, not children) that
// process pid has used so far, from /proc/PID/stat.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNoProc, err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime, fields 14 and 15 of
// /proc/PID/stat. The command name (field 2) is in parentheses and may
// hold spaces and parentheses itself, so fields are counted from its
// last closing parenthesis.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: malformed /proc stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: short /proc stat %q", stat)
	}
	var ticks uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: malformed /proc stat %q: %v", stat, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// Memory is a process's resident set as /proc/PID/status reports it.
type Memory struct {
	RSS int64 // VmRSS, bytes
	HWM int64 // VmHWM, the peak of VmRSS, bytes
}

// ProcMemory reads the resident set size and its peak.
func ProcMemory(pid int) (Memory, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Memory{}, fmt.Errorf("%w: %v", ErrNoProc, err)
	}
	return parseStatusMemory(string(b))
}

func parseStatusMemory(status string) (Memory, error) {
	var m Memory
	found := 0
	for _, line := range strings.Split(status, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("bench: malformed /proc status line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, fmt.Errorf("bench: malformed /proc status line %q", line)
		}
		if key == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
		found++
	}
	if found != 2 {
		return m, errors.New("bench: /proc status has no VmRSS or VmHWM (a kernel thread?)")
	}
	return m, nil
}

// Terminate sends SIGTERM and waits up to grace for the process to exit,
// then kills it.
func (p *Proc) Terminate(grace time.Duration) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
