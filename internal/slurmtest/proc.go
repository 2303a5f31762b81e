package slurmtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/zkdog/zkdog/internal/procs"
)

// daemon is one run of slurmctld or slurmd, in the foreground (-D) so that
// it is our child: we hold its pid, reap it, and it dies with us.
type daemon struct {
	name string
	*procs.Proc
}

// launch starts cmd and reaps it in the background (see procs.Launch:
// Setpgid, and Pdeathsig from a thread that lives as long as the daemon).
func launch(name string, cmd *exec.Cmd) (*daemon, error) {
	p, err := procs.Launch(cmd, nil)
	if err != nil {
		return nil, fmt.Errorf("slurmtest: start %s: %w", name, err)
	}
	return &daemon{name: name, Proc: p}, nil
}

// Slurm's daemons bind the wildcard address: that is what is probed, or a
// port used on another address would be handed out.
func allocPorts(n int) ([]int, error) { return procs.AllocPorts("tcp4", ":0", n) }

func releasePorts(ports ...int) { procs.ReleasePorts(ports...) }

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
