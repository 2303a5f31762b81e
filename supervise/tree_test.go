//go:build linux

package supervise

// Descendants that leave the child's process group, and the reaping of
// orphans. The first Start makes the test binary itself a child subreaper,
// as it makes zkdog one: orphans of every test's commands are re-parented
// to the test binary, and the package's reaper reaps them. So "gone" here
// means no /proc entry at all, not even a zombie: that is also what shows
// they were reaped.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// statOf returns the ppid and session of pid from /proc/PID/stat.
func statOf(t testing.TB, pid int) (ppid, sid int, ok bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	st, err := parseStat(b)
	if err != nil {
		t.Fatalf("stat of %d: %v", pid, err)
	}
	return st.ppid, st.sid, true
}

// gone reports whether pid has no /proc entry: it exited and was reaped.
func gone(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return errors.Is(err, os.ErrNotExist)
}

// waitLeftSession waits until pid runs comm, asleep, as the leader of a
// session of its own: past the setsid, out of the child's group.
func waitLeftSession(t testing.TB, pid int, comm string) {
	t.Helper()
	waitAsleep(t, pid, comm)
	if _, sid, ok := statOf(t, pid); !ok || sid != pid {
		t.Fatalf("pid %d: session %d, want a session of its own", pid, sid)
	}
}

func stopCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	t.Cleanup(cancel)
	return ctx
}

// The bug: a stop signalled the process group only, and a `setsid`
// descendant went on running under init.
func TestStopKillsSetsidDescendant(t *testing.T) {
	out := newOutput()
	c := startSh(t, `setsid sleep 1000 & echo $!; wait`, Config{Stdout: out, KillTimeout: guard})
	escaped := atoiT(t, out.lines(t, 1)[0])
	waitLeftSession(t, escaped, "sleep")
	if err := c.Stop(stopCtx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, fmt.Sprintf("setsid'd pid %d killed and reaped", escaped), func() bool { return gone(escaped) })
	if e := c.Exit(); e.Signal != syscall.SIGTERM || !e.Stopped || e.Killed || e.Orphans {
		t.Fatalf("exit = %#v, want SIGTERM, Stopped", e)
	}
}

// One that ignores TERM is KILLed once the leader has died of it.
func TestStopSweepsSetsidDescendant(t *testing.T) {
	out := newOutput()
	c := startSh(t, `setsid sh -c 'trap "" TERM; exec sleep 1000' & echo $!; wait`, Config{Stdout: out, KillTimeout: guard})
	escaped := atoiT(t, out.lines(t, 1)[0])
	waitLeftSession(t, escaped, "sleep") // past the trap: TERM is ignored now
	if err := c.Stop(stopCtx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, fmt.Sprintf("setsid'd pid %d killed and reaped", escaped), func() bool { return gone(escaped) })
	if e := c.Exit(); e.Signal != syscall.SIGTERM || e.Killed {
		t.Fatalf("exit = %#v: the shell should have died of TERM, within its grace", e)
	}
}

// What the tree forks after the TERM dies with it at the KILL: the KILL
// phase reads the process table again. StopWithin brings the KILL
// forward from the hour-long grace the first stop set.
func TestStopKillsWhatForksAfterTerm(t *testing.T) {
	out := newOutput()
	// The shell ignores TERM only after the fork: a shell started with it
	// ignored could not trap it.
	script := `setsid sh -c 'trap "sleep 1000 & echo forked \$!" TERM; echo outsider $$; while :; do sleep 1000 & wait $!; done' &
trap "" TERM
echo ready >&2
wait`
	errOut := newOutput()
	c := startSh(t, script, Config{Stdout: out, Stderr: errOut, KillTimeout: time.Hour})
	errOut.waitFor(t, "ready")
	outsider := atoiT(t, strings.TrimPrefix(out.lines(t, 1)[0], "outsider "))
	waitLeftSession(t, outsider, "sh")

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Stop(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop = %v, want the context's error", err)
	}
	out.waitFor(t, "forked ")
	forked := atoiT(t, strings.TrimPrefix(out.lines(t, 2)[1], "forked "))
	waitAsleep(t, forked, "sleep")

	if err := c.StopWithin(stopCtx(t), 0); err != nil {
		t.Fatal(err)
	}
	if e := c.Exit(); e.Signal != syscall.SIGKILL || !e.Killed || !e.Stopped {
		t.Fatalf("exit = %#v, want SIGKILL after an early KILL", e)
	}
	for _, pid := range []int{outsider, forked} {
		eventually(t, fmt.Sprintf("pid %d killed and reaped", pid), func() bool { return gone(pid) })
	}
}

// A command that exits by itself leaving a setsid'd process has it counted
// in Exit.Orphans and left running, adopted by us; when it exits in its
// own time, it is reaped.
func TestSetsidOrphanLeftThenReaped(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	stdin, release, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	defer release.Close()
	out := newOutput()
	// The shell waits for a line, so that it exits only once the orphan
	// has left its group.
	c := startSh(t, `setsid sh -c 'read x < "$F"' </dev/null >/dev/null 2>&1 & echo $!; read x`, Config{
		Stdin: stdin, Stdout: out, Env: []string{"F=" + fifo, "PATH=" + os.Getenv("PATH")},
	})
	orphan := atoiT(t, out.lines(t, 1)[0])
	waitLeftSession(t, orphan, "sh")
	if _, err := release.WriteString("\n"); err != nil {
		t.Fatal(err)
	}
	e := waitDone(t, c)
	if !e.Success() || !e.Orphans || e.Stopped {
		t.Fatalf("exit = %#v, want success with orphans", e)
	}
	if dead(orphan) {
		t.Fatal("the orphan was killed although its command exited by itself")
	}
	if ppid, _, _ := statOf(t, orphan); ppid != os.Getpid() {
		t.Fatalf("orphan's parent is %d, want us (%d), a subreaper", ppid, os.Getpid())
	}
	// Let it finish: opening the FIFO's other end ends its read.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	eventually(t, fmt.Sprintf("orphan %d reaped", orphan), func() bool { return gone(orphan) })
}

// A Stop after the command exited by itself sweeps the setsid'd orphans it
// left, as it does the ones in its group.
func TestSetsidOrphanSweptByLaterStop(t *testing.T) {
	stdin, release, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	defer release.Close()
	out := newOutput()
	c := startSh(t, `setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!; read x`, Config{Stdin: stdin, Stdout: out})
	orphan := atoiT(t, out.lines(t, 1)[0])
	waitLeftSession(t, orphan, "sleep")
	release.WriteString("\n")
	e := waitDone(t, c)
	if !e.Success() || !e.Orphans {
		t.Fatalf("exit = %#v, want success with orphans", e)
	}
	if err := c.Stop(stopCtx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, fmt.Sprintf("orphan %d swept and reaped", orphan), func() bool { return gone(orphan) })
	if e2 := c.Exit(); e2 != e {
		t.Fatalf("Exit changed after Stop: %+v → %+v", e, e2)
	}
}

// The orphans one command leaves are its own: they are not the next
// command's orphans, and a stop of the next command leaves them alone.
func TestOrphansStayWithTheirCommand(t *testing.T) {
	stdin, release, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	defer release.Close()
	out := newOutput()
	first := startSh(t, `setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $!; read x`, Config{Stdin: stdin, Stdout: out})
	orphan := atoiT(t, out.lines(t, 1)[0])
	waitLeftSession(t, orphan, "sleep")
	release.WriteString("\n")
	if e := waitDone(t, first); !e.Orphans {
		t.Fatalf("first exit = %#v, want orphans", e)
	}

	if e := waitDone(t, startSh(t, "exit 0", Config{})); e.Orphans {
		t.Fatalf("second exit = %#v: the first command's orphan counted as the second's", e)
	}
	third := startSh(t, "exec sleep 1000", Config{})
	waitAsleep(t, third.Pid(), "sleep")
	if err := third.Stop(stopCtx(t)); err != nil {
		t.Fatal(err)
	}
	if dead(orphan) {
		t.Fatal("stopping the third command killed the first one's orphan")
	}

	if err := first.Stop(stopCtx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, fmt.Sprintf("orphan %d swept and reaped", orphan), func() bool { return gone(orphan) })
}

// Children the program started itself, with os/exec, in its own session,
// are neither signalled by a stop nor reaped behind os/exec's back: their
// Wait must report how they ended.
func TestOtherChildrenUntouched(t *testing.T) {
	for name, attr := range map[string]*syscall.SysProcAttr{
		"plain":   nil,
		"setpgid": {Setpgid: true}, // as internal/procs starts a test's ZooKeeper
	} {
		t.Run(name, func(t *testing.T) {
			other := exec.Command("sleep", "1000")
			other.SysProcAttr = attr
			if err := other.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- other.Wait() }()
			defer other.Process.Kill()

			out := newOutput()
			c := startSh(t, `setsid sleep 1000 & echo $!; wait`, Config{Stdout: out})
			waitLeftSession(t, atoiT(t, out.lines(t, 1)[0]), "sleep")
			if err := c.Stop(stopCtx(t)); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-waited:
				t.Fatalf("the program's own child ended with the stop: %v", err)
			default:
			}
			if dead(other.Process.Pid) {
				t.Fatal("the program's own child was killed by the stop")
			}

			// Its exit makes the reaper look (SIGCHLD): it must leave it to
			// os/exec.
			other.Process.Signal(syscall.SIGUSR1)
			var err error
			select {
			case err = <-waited:
			case <-time.After(guard):
				t.Fatal("Wait did not return")
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGUSR1 {
				t.Fatalf("Wait = %v, want the child's own death by SIGUSR1", err)
			}
		})
	}
}

// StopWithin gives a shorter grace than KillTimeout.
func TestStopWithinShortensGrace(t *testing.T) {
	out := newOutput()
	c := startSh(t, `trap "" TERM; echo ready; sleep 1000`, Config{Stdout: out, KillTimeout: time.Hour})
	out.waitFor(t, "ready")
	if err := c.StopWithin(stopCtx(t), 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if e := c.Exit(); e.Signal != syscall.SIGKILL || !e.Killed || !e.Stopped {
		t.Fatalf("exit = %#v", e)
	}
}

// A later call brings the KILL forward; it never puts it off.
func TestStopWithinNeverPutsOff(t *testing.T) {
	out := newOutput()
	c := startSh(t, `trap "" TERM; echo ready; sleep 1000`, Config{Stdout: out, KillTimeout: time.Hour})
	out.waitFor(t, "ready")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.StopWithin(cancelled, 20*time.Millisecond); !errors.Is(err, context.Canceled) {
		t.Fatalf("StopWithin = %v, want the context's error", err)
	}
	// Were the KILL put off by an hour, this would return ctx's error.
	if err := c.StopWithin(stopCtx(t), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(stopCtx(t)); err != nil {
		t.Fatal(err)
	}
	if e := c.Exit(); e.Signal != syscall.SIGKILL || !e.Killed {
		t.Fatalf("exit = %#v", e)
	}
}

// A busy orphan that left the group before any sample saw it, and whose
// parent is gone, is still the child's: it was re-parented to us.
func TestMonitorOrphanOutOfGroupCPU(t *testing.T) {
	forEachSource(t, func(t *testing.T, src func() procSource) {
		out := newOutput()
		c := startSh(t, `(setsid sh -c 'echo $$; while :; do :; done' &); exec sleep 1000`, Config{Stdout: out})
		busy := atoiT(t, out.lines(t, 1)[0])
		waitAsleep(t, c.Pid(), "sleep")
		eventually(t, "busy orphan adopted", func() bool {
			ppid, sid, _ := statOf(t, busy)
			return ppid == os.Getpid() && sid == busy
		})
		r := startMonitor(t, newTestMonitor(c.Pid(), MonitorConfig{Kinds: ActivityCPU}, src()), nil)
		r.waitActivity(t, ActivityCPU)
	})
}

// A busy child the program started itself is no part of the tree.
func TestMonitorIgnoresOtherChildren(t *testing.T) {
	forEachSource(t, func(t *testing.T, src func() procSource) {
		other := exec.Command("sh", "-c", "while :; do :; done")
		other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := other.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			other.Process.Kill()
			other.Wait()
		}()
		c := startSh(t, "exec sleep 1000", Config{})
		waitAsleep(t, c.Pid(), "sleep")
		r := startMonitor(t, newTestMonitor(c.Pid(), MonitorConfig{Kinds: ActivityCPU | ActivityIO}, src()), nil)
		if u := union(r.waitSamples(t, 8)); u != 0 {
			t.Fatalf("idle child reported %v: another child of ours was counted", u)
		}
	})
}
