package zkserver

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/zkdog/zkdog/internal/procs"
)

// stopGrace is how long Stop and Restart let ZooKeeper shut down after
// SIGTERM before they SIGKILL it.
const stopGrace = 5 * time.Second

// proc is one run of a JVM.
type proc struct {
	*procs.Proc
	logStart int64 // offset of this run's output in the log file
}

// launch starts cmd and reaps it in the background (see procs.Launch);
// afterWait runs once the process has exited and its output has been
// copied.
func launch(cmd *exec.Cmd, logStart int64, afterWait func()) (*proc, error) {
	p, err := procs.Launch(cmd, afterWait)
	if err != nil {
		return nil, err
	}
	return &proc{Proc: p, logStart: logStart}, nil
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
