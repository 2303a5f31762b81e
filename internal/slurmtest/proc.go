package slurmtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// daemon is one run of slurmctld or slurmd, in the foreground (-D) so that
// it is our child: we hold its pid, reap it, and it dies with us.
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the daemon has exited and been reaped
	err  error         // cmd.Wait's result; read it only after done
}

// launch starts cmd and reaps it in the background.
//
// Pdeathsig fires when the forking *thread* exits, not the process, and the
// Go runtime exits a thread whenever a goroutine returns while locked to it
// (https://go.dev/issue/27505). So the daemon is forked from a goroutine
// locked to its thread, which then waits for the daemon there: the thread
// runs nothing else and lives exactly as long as the daemon.
//
// Setpgid keeps a terminal's Ctrl-C, meant for go test, from reaching the
// daemons directly: they die through Pdeathsig when the test binary does.
func launch(name string, cmd *exec.Cmd) (*daemon, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	d := &daemon{name: name, cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Unlocking after Wait is safe: the child is gone.
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		d.err = cmd.Wait()
		close(d.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("slurmtest: start %s: %w", name, err)
	}
	return d, nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop ends the daemon and waits until it is reaped: SIGTERM, which both
// daemons handle with an orderly shutdown, then SIGKILL after grace.
// Signals go through os.Process, which on Linux uses a pidfd, so a
// recycled pid can never be hit.
func (d *daemon) stop(grace time.Duration) {
	if d.cmd.Process.Signal(syscall.SIGTERM) == nil {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-d.done:
			return
		case <-t.C:
		}
	}
	_ = d.cmd.Process.Kill()
	<-d.done
}

// handedOut holds the ports given to clusters of this process that have not
// been stopped. The kernel knows nothing of a port between our probe
// listener closing and a daemon binding it, so without this two clusters
// started by parallel tests could be given the same port. Other processes
// can still race us; Start retries when a daemon finds its port taken.
var (
	portsMu   sync.Mutex
	handedOut = map[int]bool{}
)

// allocPorts returns n distinct free loopback ports. All probe listeners
// stay open until every port is chosen so the kernel cannot return one
// twice.
func allocPorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for len(ports) < n {
		if len(held) > n+1000 {
			return nil, fmt.Errorf("slurmtest: no free loopback port among %d tried", len(held))
		}
		// Slurm's daemons bind the wildcard address: probe that, not only
		// loopback, or a port used on another address would be handed out.
		l, err := net.Listen("tcp4", ":0")
		if err != nil {
			return nil, fmt.Errorf("slurmtest: find a free port: %w", err)
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		if !handedOut[port] {
			ports = append(ports, port)
		}
	}
	for _, p := range ports {
		handedOut[p] = true
	}
	return ports, nil
}

func releasePorts(ports ...int) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for _, p := range ports {
		delete(handedOut, p)
	}
}

// errPortInUse marks a start that failed because another process took a
// port between allocPorts and the daemon's bind.
var errPortInUse = errors.New("port already in use")

// Alive reports whether process pid exists and has not exited. A zombie
// counts as gone: where init does not reap orphans (some containers), a
// job's killed processes stay zombies for ever.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain ") ".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	switch s[i+2] {
	case 'Z', 'X', 'x':
		return false
	}
	return true
}

// stderrOf returns the standard error captured in an *exec.ExitError, as a
// suffix for an error message.
func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// tail returns the last n lines of the file at path, or a note saying why
// there are none.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return "(empty)"
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lastLine returns the last non-empty line of the file at path, or "".
func lastLine(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimRight(string(b), "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
