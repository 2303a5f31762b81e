// Package procs starts and owns the long-running helper processes of
// zkdog's tests, benchmarks and demo (ZooKeeper JVMs, Slurm daemons), and
// hands out the loopback ports they listen on. It exists so that every
// such process dies with the Go process that started it, and so that two
// of them started at once in one process never get the same port.
package procs

import (
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Proc is one run of a process we started, reaped in the background.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // cmd.Wait's result; read only after done
}

// Launch starts cmd and reaps it in the background; afterWait, if not nil,
// runs once the process has exited and its output has been copied.
//
// Unless cmd.SysProcAttr is set, the process gets Setpgid (a terminal's
// Ctrl-C, meant for us, does not reach it directly) and, on Linux,
// Pdeathsig SIGKILL, which covers every way the Go process can end (a test
// timeout, a panic, SIGKILL), none of which runs a Stop. Pdeathsig fires
// when the forking *thread* exits, not the process, and the Go runtime
// exits a thread whenever a goroutine returns while locked to it
// (https://go.dev/issue/27505). So the process is forked from a goroutine
// locked to its thread, which then waits for it there: the thread runs
// nothing else and lives exactly as long as the process.
func Launch(cmd *exec.Cmd, afterWait func()) (*Proc, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = sysProcAttr()
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Unlocking after Wait is safe: the child is gone, so the thread
		// may be reused or exited freely.
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		if afterWait != nil {
			afterWait()
		}
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether Done is closed.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is cmd.Wait's result, once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Stop ends the process and waits until it is reaped: SIGTERM first if
// grace > 0, then SIGKILL once grace has passed. Signals go through
// os.Process, which on Linux uses a pidfd, so a recycled pid is never hit.
func (p *Proc) Stop(grace time.Duration) {
	if grace > 0 && p.cmd.Process.Signal(syscall.SIGTERM) == nil {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.done:
			return
		case <-t.C:
		}
	}
	// An error means the process has already exited; done is then closed
	// or about to be.
	_ = p.cmd.Process.Kill()
	<-p.done
}
