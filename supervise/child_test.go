//go:build linux

package supervise

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestExitCodes(t *testing.T) {
	for _, code := range []int{0, 1, 7, 255} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			c := startSh(t, fmt.Sprintf("exit %d", code), Config{})
			e := waitDone(t, c)
			if e.Code != code || e.Signal != 0 || e.Status() != code {
				t.Fatalf("exit = %#v, status %d; want code %d", e, e.Status(), code)
			}
			if e.Success() != (code == 0) {
				t.Errorf("Success() = %v", e.Success())
			}
			if e.Stopped || e.Killed || e.Orphans || e.OutputCut {
				t.Errorf("unexpected flags: %+v", e)
			}
		})
	}
}

func TestKilledBySignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			c := startSh(t, fmt.Sprintf("kill -%d $$", int(sig)), Config{})
			e := waitDone(t, c)
			if e.Signal != sig || e.Code != -1 || e.Status() != 128+int(sig) {
				t.Fatalf("exit = %#v, status %d; want signal %v", e, e.Status(), sig)
			}
			if want := "signal: " + sig.String(); e.String() != want {
				t.Errorf("String() = %q, want %q", e.String(), want)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	for _, path := range []string{"zkdog-no-such-command-3141", "/nonexistent/zkdog", "./zkdog-no-such-file", ""} {
		_, err := Start(Config{Path: path})
		if !errors.Is(err, ErrNotFound) || ExitCodeFor(err) != 127 {
			t.Errorf("Start(%q) = %v (exit code %d), want ErrNotFound/127", path, err, ExitCodeFor(err))
		}
	}
}

func TestNotExecutable(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]string{
		"no x bit":        write("plain", "#!/bin/sh\nexit 0\n", 0o644),
		"exec format":     write("garbage", "\x01\x02 this is not a program\n", 0o755),
		"bad interpreter": write("badinterp", "#!/nonexistent/interpreter\n", 0o755),
		"directory":       dir,
	}
	for name, path := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := Start(Config{Path: path, sigs: make(chan os.Signal)})
			if err == nil {
				c.Wait()
				t.Fatalf("Start(%s) succeeded", path)
			}
			if !errors.Is(err, ErrNotExecutable) || errors.Is(err, ErrNotFound) || ExitCodeFor(err) != 126 {
				t.Fatalf("Start = %v (exit code %d), want ErrNotExecutable/126", err, ExitCodeFor(err))
			}
		})
	}
}

func TestStartOtherErrors(t *testing.T) {
	_, err := Start(Config{Path: "true", Dir: "/nonexistent/dir"})
	if err == nil || ExitCodeFor(err) != 125 {
		t.Fatalf("Start with a bad Dir = %v (exit code %d), want 125", err, ExitCodeFor(err))
	}
	if ExitCodeFor(nil) != 0 {
		t.Fatal("ExitCodeFor(nil) != 0")
	}
}

func TestPathRelativeToDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("#!/bin/sh\necho \"$0 $1 $(pwd) $ZKDOG_T\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := newOutput()
	c, err := Start(Config{
		Path: "./hello", Args: []string{"arg"}, Dir: dir,
		Env:    []string{"ZKDOG_T=env"},
		Stdout: out, sigs: make(chan os.Signal),
	})
	if err != nil {
		t.Fatal(err)
	}
	if e := waitDone(t, c); !e.Success() {
		t.Fatalf("exit = %v", e)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if got, want := out.String(), "./hello arg "+real+" env\n"; got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
}

func TestPassThrough(t *testing.T) {
	var counter Counter
	stdout, stderr := newOutput(), newOutput()
	c := startSh(t, "seq 1 20000; seq 1 3000 >&2; printf tail", Config{
		Stdout: stdout, Stderr: stderr, Output: &counter,
	})
	if e := waitDone(t, c); !e.Success() || e.OutputCut {
		t.Fatalf("exit = %#v", e)
	}
	seq := func(n int) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			fmt.Fprintln(&b, i)
		}
		return b.String()
	}
	if got, want := stdout.String(), seq(20000)+"tail"; got != want {
		t.Errorf("stdout: %d bytes, want %d", len(got), len(want))
	}
	if got, want := stderr.String(), seq(3000); got != want {
		t.Errorf("stderr: %d bytes, want %d", len(got), len(want))
	}
	if got, want := counter.Load(), uint64(len(stdout.String())+len(stderr.String())); got != want {
		t.Errorf("counted %d bytes, want %d", got, want)
	}
}

func TestPassThroughSameWriter(t *testing.T) {
	var buf bytes.Buffer // not safe for concurrent writes: Start must serialise
	c := startSh(t, "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done", Config{Stdout: &buf, Stderr: &buf})
	if e := waitDone(t, c); !e.Success() {
		t.Fatalf("exit = %#v", e)
	}
	for i := 1; i <= 5; i++ {
		for _, s := range []string{"out", "err"} {
			if !strings.Contains(buf.String(), fmt.Sprintf("%s%d\n", s, i)) {
				t.Errorf("missing %s%d in %q", s, i, buf.String())
			}
		}
	}
}

func TestInheritedFile(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Both outputs are files (stderr is the test binary's) and Output is
	// nil: the child writes to them itself.
	c := startSh(t, "echo direct", Config{Stdout: f})
	if e := waitDone(t, c); !e.Success() {
		t.Fatalf("exit = %#v", e)
	}
	if len(c.copiers) != 0 {
		t.Errorf("%d copiers for file outputs without Output", len(c.copiers))
	}
	b, _ := os.ReadFile(f.Name())
	if string(b) != "direct\n" {
		t.Fatalf("file holds %q", b)
	}
}

func TestStdin(t *testing.T) {
	out := newOutput()
	c := startSh(t, "cat", Config{Stdin: strings.NewReader("fed through stdin"), Stdout: out})
	if e := waitDone(t, c); !e.Success() {
		t.Fatalf("exit = %#v", e)
	}
	if out.String() != "fed through stdin" {
		t.Fatalf("output %q", out.String())
	}
}

// A descendant holding the output pipe open must not keep Done from
// closing forever.
func TestDrainTimeout(t *testing.T) {
	out := newOutput()
	c := startSh(t, "echo before; sleep 1000 & echo $! >&2", Config{
		Stdout: out, Stderr: out, DrainTimeout: 50 * time.Millisecond,
	})
	e := waitDone(t, c)
	if !e.Success() || !e.OutputCut || !e.Orphans {
		t.Fatalf("exit = %#v, want success, OutputCut and Orphans", e)
	}
	if !strings.Contains(out.String(), "before\n") {
		t.Fatalf("output %q lost what the child wrote", out.String())
	}
}

// The brief's plain case: TERM kills the shell and its jobs alike.
func TestStopKillsTree(t *testing.T) {
	out := newOutput()
	c := startSh(t, "sleep 1000 & echo $!; sleep 1000 & echo $!; wait", Config{Stdout: out})
	pids := []int{c.Pid()}
	for _, l := range out.lines(t, 2) {
		pids = append(pids, atoiT(t, l))
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Stop returned before the child exited")
	}
	for _, pid := range pids {
		eventually(t, fmt.Sprintf("pid %d gone", pid), func() bool { return dead(pid) })
	}
	if e := c.Exit(); e.Signal != syscall.SIGTERM || !e.Stopped || e.Killed || e.Orphans {
		t.Fatalf("exit = %#v, want SIGTERM, Stopped", e)
	}
}

// Grandchildren that survive TERM are KILLed once the leader has exited.
func TestStopSweepsGroup(t *testing.T) {
	out := newOutput()
	script := `(trap "" TERM; exec sleep 1000) & echo $!; (trap "" TERM; exec sleep 1000) & echo $!; wait`
	c := startSh(t, script, Config{Stdout: out, KillTimeout: guard})
	var pids []int
	for _, l := range out.lines(t, 2) {
		pids = append(pids, atoiT(t, l))
	}
	for _, pid := range pids {
		waitAsleep(t, pid, "sleep") // past the trap: TERM is ignored now
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		eventually(t, fmt.Sprintf("pid %d gone", pid), func() bool { return dead(pid) })
	}
	if e := c.Exit(); e.Signal != syscall.SIGTERM || e.Killed {
		t.Fatalf("exit = %#v: the shell should have died of TERM, within its grace", e)
	}
}

func TestStopGraceful(t *testing.T) {
	out := newOutput()
	flag := filepath.Join(t.TempDir(), "cleaned")
	c := startSh(t, `trap 'echo done > "$F"; exit 0' TERM; echo ready; sleep 1000 & wait`, Config{
		Stdout: out, Env: []string{"F=" + flag, "PATH=" + os.Getenv("PATH")}, KillTimeout: guard,
	})
	out.waitFor(t, "ready")
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e := c.Exit()
	if !e.Success() || !e.Stopped || e.Killed {
		t.Fatalf("exit = %#v, want 0 after a clean-up", e)
	}
	if b, err := os.ReadFile(flag); err != nil || string(b) != "done\n" {
		t.Fatalf("clean-up file: %q, %v", b, err)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	out := newOutput()
	c := startSh(t, `trap "" TERM; echo ready; sleep 1000`, Config{Stdout: out, KillTimeout: 50 * time.Millisecond})
	out.waitFor(t, "ready")
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if e := c.Exit(); e.Signal != syscall.SIGKILL || !e.Killed || !e.Stopped || e.Status() != 137 {
		t.Fatalf("exit = %#v", e)
	}
}

func TestStopConcurrent(t *testing.T) {
	out := newOutput()
	c := startSh(t, `trap "" TERM; echo ready; sleep 1000`, Config{Stdout: out, KillTimeout: 50 * time.Millisecond})
	out.waitFor(t, "ready")
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- c.Stop(ctx) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if e := c.Exit(); e.Signal != syscall.SIGKILL {
		t.Fatalf("exit = %#v", e)
	}
}

func TestStopContextDone(t *testing.T) {
	out := newOutput()
	c := startSh(t, `trap "" TERM; echo ready; sleep 1000`, Config{Stdout: out, KillTimeout: guard})
	out.waitFor(t, "ready")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with a done context = %v", err)
	}
	if err := c.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if e := waitDone(t, c); e.Signal != syscall.SIGKILL || !e.Stopped || e.Killed {
		t.Fatalf("exit = %#v", e)
	}
}

// On a natural exit, background jobs are left alone; a later Stop
// sweeps them.
func TestOrphansLeftThenSwept(t *testing.T) {
	out := newOutput()
	c := startSh(t, "sleep 1000 >/dev/null 2>&1 & echo $!", Config{Stdout: out})
	e := waitDone(t, c)
	if !e.Success() || !e.Orphans || e.OutputCut {
		t.Fatalf("exit = %#v, want success with orphans", e)
	}
	orphan := atoiT(t, out.lines(t, 1)[0])
	if dead(orphan) {
		t.Fatal("orphan died with its parent")
	}
	if err := c.Signal(syscall.SIGTERM); !errors.Is(err, ErrExited) {
		t.Fatalf("Signal after exit = %v, want ErrExited", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "orphan swept", func() bool { return dead(orphan) })
	if e2 := c.Exit(); e2 != e {
		t.Fatalf("Exit changed after Stop: %+v → %+v", e, e2)
	}
}

func TestSignalGroup(t *testing.T) {
	out := newOutput()
	c := startSh(t, `trap 'echo usr1; exit 5' USR1; sleep 1000 & echo $!; wait`, Config{Stdout: out})
	// The job must be sleep already: a signal that reaches it between fork
	// and exec is the shell's to handle, and is lost.
	waitAsleep(t, atoiT(t, out.lines(t, 1)[0]), "sleep")
	if err := c.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	// Not Orphans: the job may still be dying of the signal as the shell exits.
	if e := waitDone(t, c); e.Code != 5 || e.Stopped || e.OutputCut {
		t.Fatalf("exit = %#v", e)
	}
	if !strings.Contains(out.String(), "usr1") {
		t.Fatalf("output %q", out.String())
	}
}

// signalRecorder collects what OnSignal reports.
type signalRecorder struct {
	mu   sync.Mutex
	sigs []os.Signal
}

func (r *signalRecorder) record(s os.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sigs = append(r.sigs, s)
}

func (r *signalRecorder) get() []os.Signal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]os.Signal(nil), r.sigs...)
}

func TestForwardRelays(t *testing.T) {
	out := newOutput()
	sigs := make(chan os.Signal, 1)
	var rec signalRecorder
	c := startSh(t, `trap 'echo got-usr1' USR1; trap 'echo got-hup' HUP; echo ready; while :; do sleep 0.05; done`, Config{
		Stdout: out, Stderr: out, sigs: sigs, OnSignal: rec.record,
	})
	out.waitFor(t, "ready")
	sigs <- syscall.SIGUSR1
	out.waitFor(t, "got-usr1")
	sigs <- syscall.SIGHUP
	out.waitFor(t, "got-hup")
	sigs <- syscall.SIGURG // not relayed
	sigs <- syscall.SIGKILL
	if err := c.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e := waitDone(t, c)
	if e.Signal != syscall.SIGKILL || e.Stopped {
		t.Fatalf("exit = %#v", e)
	}
	if got := fmt.Sprint(rec.get()); got != fmt.Sprint([]os.Signal{syscall.SIGUSR1, syscall.SIGHUP}) {
		t.Fatalf("OnSignal saw %s", got)
	}
}

// A relayed TERM starts the grace period: a child that ignores it is
// KILLed, and the caller hears of the TERM.
func TestForwardTermThenKill(t *testing.T) {
	out := newOutput()
	sigs := make(chan os.Signal, 1)
	var rec signalRecorder
	c := startSh(t, `trap "" TERM; echo ready; sleep 1000`, Config{
		Stdout: out, sigs: sigs, OnSignal: rec.record, KillTimeout: 50 * time.Millisecond,
	})
	out.waitFor(t, "ready")
	sigs <- syscall.SIGTERM
	e := waitDone(t, c)
	if e.Signal != syscall.SIGKILL || !e.Killed || !e.Stopped {
		t.Fatalf("exit = %#v", e)
	}
	if got := rec.get(); len(got) != 1 || got[0] != syscall.SIGTERM {
		t.Fatalf("OnSignal saw %v", got)
	}
}

// A relayed INT lets a child that handles it finish in its own time, and
// orphans it leaves behind are swept as after a Stop.
func TestForwardIntGraceful(t *testing.T) {
	out := newOutput()
	sigs := make(chan os.Signal, 1)
	c := startSh(t, `trap 'echo bye; exit 0' INT; (trap "" INT TERM; exec sleep 1000) & echo $!; echo ready; while :; do sleep 0.05; done`, Config{
		Stdout: out, sigs: sigs, KillTimeout: guard,
	})
	out.waitFor(t, "ready")
	orphan := atoiT(t, out.lines(t, 1)[0])
	waitAsleep(t, orphan, "sleep")
	sigs <- syscall.SIGINT
	e := waitDone(t, c)
	if !e.Success() || !e.Stopped || e.Killed || e.Orphans {
		t.Fatalf("exit = %#v", e)
	}
	eventually(t, "orphan swept", func() bool { return dead(orphan) })
}

// Real delivery, through signal.Notify, of a signal that cannot hurt the
// test binary while Start is relaying it. TERM and INT are left to the
// end-to-end tests of the built binary.
func TestForwardRealSignal(t *testing.T) {
	out := newOutput()
	var rec signalRecorder
	c := startSh(t, `trap 'echo got-usr2; exit 0' USR2; sleep 1000 & echo $!; wait`, Config{
		Stdout: out, Signals: []os.Signal{syscall.SIGUSR2}, OnSignal: rec.record,
	})
	waitAsleep(t, atoiT(t, out.lines(t, 1)[0]), "sleep")
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if e := waitDone(t, c); !e.Success() || e.OutputCut {
		t.Fatalf("exit = %#v", e)
	}
	if !strings.Contains(out.String(), "got-usr2") {
		t.Fatalf("output %q", out.String())
	}
	if got := rec.get(); len(got) != 1 || got[0] != syscall.SIGUSR2 {
		t.Fatalf("OnSignal saw %v", got)
	}
}

func TestDefaultSignals(t *testing.T) {
	for _, s := range DefaultSignals() {
		switch s {
		case syscall.SIGCHLD, syscall.SIGURG, syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGPIPE,
			syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGPROF:
			t.Errorf("%v must not be relayed", s)
		}
	}
}

// errWriter fails every write, as a stdout whose reader went away does.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, syscall.EPIPE }

// When our stdout breaks, the child gets the broken pipe it would have
// got writing there itself.
func TestBrokenOutput(t *testing.T) {
	var counter Counter
	c := startSh(t, "exec yes", Config{Stdout: errWriter{}, Output: &counter})
	if e := waitDone(t, c); e.Signal != syscall.SIGPIPE || e.OutputCut {
		t.Fatalf("exit = %#v, want SIGPIPE", e)
	}
	if counter.Load() == 0 {
		t.Fatal("nothing counted")
	}
}

// A stopped child still gets its TERM: Stop sends SIGCONT after it.
func TestStopStoppedChild(t *testing.T) {
	c := startSh(t, "exec sleep 1000", Config{KillTimeout: guard})
	waitAsleep(t, c.Pid(), "sleep")
	if err := c.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "child stopped", func() bool { s, _ := procStateOf(c.Pid()); return s == "T" })
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if e := c.Exit(); e.Signal != syscall.SIGTERM || e.Killed {
		t.Fatalf("exit = %#v, want SIGTERM within the grace period", e)
	}
}

func TestNoFDLeak(t *testing.T) {
	count := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, []byte("not a program\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func() {
		var counter Counter
		c := startSh(t, "echo out; echo err >&2", Config{Stdout: newOutput(), Stderr: newOutput(), Output: &counter})
		waitDone(t, c)
		if _, err := Start(Config{Path: "/nonexistent/zkdog", Output: &counter}); err == nil {
			t.Fatal("started a nonexistent command")
		}
		// Fails in execve, after the pipes were made.
		if _, err := Start(Config{Path: garbage, Output: &counter, sigs: make(chan os.Signal)}); err == nil {
			t.Fatal("started garbage")
		}
	}
	run() // warm up whatever the runtime opens once
	before := count()
	for range 5 {
		run()
	}
	if after := count(); after > before {
		t.Fatalf("%d descriptors open before, %d after", before, after)
	}
}
