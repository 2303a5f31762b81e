package zkserver

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long Stop and Restart let ZooKeeper shut down after
// SIGTERM before they SIGKILL it.
const stopGrace = 5 * time.Second

// proc is one run of a JVM.
type proc struct {
	cmd      *exec.Cmd
	logStart int64         // offset of this run's output in the log file
	done     chan struct{} // closed once the JVM has exited and been reaped
	err      error         // cmd.Wait's result; read it only after done
}

// launch starts cmd and reaps it in the background. afterWait runs once the
// process has exited and its output has been copied.
//
// Pdeathsig fires when the forking *thread* exits, not the process, and the
// Go runtime exits a thread whenever a goroutine returns while locked to it
// (some libraries lock threads on purpose; so may our caller). Forked from
// an arbitrary thread, the JVM could thus be killed at any moment by
// unrelated code (https://go.dev/issue/27505). So the child is forked from
// a goroutine locked to its thread, which then waits for the child there:
// the thread runs nothing else and lives exactly as long as the child. The
// cost is one parked thread per JVM.
func launch(cmd *exec.Cmd, logStart int64, afterWait func()) (*proc, error) {
	p := &proc{cmd: cmd, logStart: logStart, done: make(chan struct{})}
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

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process and waits until it is reaped: with SIGTERM first if
// grace > 0, then SIGKILL. Signals go through os.Process, which on Linux
// uses a pidfd, so a recycled pid can never be hit.
func (p *proc) stop(grace time.Duration) {
	if grace > 0 {
		if p.cmd.Process.Signal(syscall.SIGTERM) == nil {
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-p.done:
				return
			case <-t.C:
			}
		}
	}
	// An error means the process has already exited; done is then closed
	// or about to be.
	_ = p.cmd.Process.Kill()
	<-p.done
}

// logMu serialises writes to every Config.Log, which may be shared by the
// members of an ensemble or by servers of parallel tests and need not be
// safe for concurrent use.
var logMu sync.Mutex

// logWriter copies JVM output to the log file and to Config.Log. It writes
// only whole lines to Config.Log, each with prefix, so that the output of
// several JVMs sharing it does not interleave mid-line.
//
// Write never fails: an error would make os/exec stop draining the pipe and
// the JVM would block once the pipe is full.
type logWriter struct {
	file    *os.File
	log     io.Writer
	prefix  string
	partial []byte // only touched by os/exec's copying goroutine, then by flush
}

func (w *logWriter) Write(p []byte) (int, error) {
	_, _ = w.file.Write(p)
	w.partial = append(w.partial, p...)
	i := bytes.LastIndexByte(w.partial, '\n')
	if i < 0 {
		return len(p), nil
	}
	w.emit(w.partial[:i+1])
	w.partial = append(w.partial[:0], w.partial[i+1:]...)
	return len(p), nil
}

func (w *logWriter) emit(lines []byte) {
	if w.prefix != "" {
		var b bytes.Buffer
		for line := range bytes.Lines(lines) {
			b.WriteString(w.prefix)
			b.Write(line)
		}
		lines = b.Bytes()
	}
	logMu.Lock()
	defer logMu.Unlock()
	_, _ = w.log.Write(lines)
}

// flush writes an unterminated last line, once the process has exited.
func (w *logWriter) flush() {
	if len(w.partial) > 0 {
		w.emit(append(w.partial, '\n'))
		w.partial = nil
	}
}
