package supervise

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults for the zero values of Config's durations.
const (
	DefaultKillTimeout  = 10 * time.Second
	DefaultDrainTimeout = 2 * time.Second
)

// Config describes the child to run.
type Config struct {
	// Path names the program. Without a slash it is looked up in zkdog's
	// own $PATH with exec.LookPath; with one, it is taken as a path
	// (relative to Dir when Dir is set). The child sees Path, as given,
	// as its argv[0], like a shell would pass it.
	Path string
	// Args are the arguments after argv[0].
	Args []string
	// Env is the child's environment; nil inherits zkdog's.
	Env []string
	// Dir is the child's working directory; empty inherits zkdog's.
	Dir string

	// Stdin, Stdout and Stderr default to zkdog's own. An *os.File is
	// handed to the child as is (it inherits the descriptor); any other
	// value is served through a pipe by a goroutine of ours.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Output, if non-nil, makes stdout and stderr pass through pipes even
	// when they are files, and counts every byte copied, so that a
	// Monitor can see the child writing (ActivityOutput). The bytes are
	// copied unchanged and each stream keeps its order.
	Output *Counter
	// StderrTail, if non-nil, makes stderr pass through a pipe even when
	// it is a file, and keeps the end of it there as it is copied: what a
	// failing command last said.
	StderrTail *Tail

	// KillTimeout is the grace period between SIGTERM (or a forwarded
	// SIGINT) and SIGKILL, unless StopWithin shortens it. Zero means
	// DefaultKillTimeout.
	KillTimeout time.Duration
	// DrainTimeout bounds how long, after the child has exited, Done waits
	// for the passed-through output to reach end of file. A descendant
	// that inherited the pipes and outlives the child keeps them open
	// forever; once the time is up the pipes are closed (the descendant
	// gets EPIPE, as it would once zkdog exits) and Exit.OutputCut is set.
	// Zero means DefaultDrainTimeout.
	DrainTimeout time.Duration

	// Signals lists the signals relayed to the child's process group while
	// it runs; nil means DefaultSignals(), an empty non-nil slice relays
	// none. See Start for what happens with SIGTERM and SIGINT.
	Signals []os.Signal
	// OnSignal, if non-nil, is called with each signal after it has been
	// relayed, so the caller can log it and note that the child is being
	// stopped from outside. It runs on the relaying goroutine: it must
	// return quickly or later signals wait.
	OnSignal func(os.Signal)

	// sigs replaces signal.Notify in tests, which cannot send SIGTERM to
	// the test binary itself.
	sigs <-chan os.Signal
}

// Child is a running command: the only owner of its life. Its methods are
// safe for concurrent use.
type Child struct {
	cmd          *exec.Cmd
	pid          int
	start        uint64 // the leader's start time in /proc (Linux): tells it from a recycled pid
	killTimeout  time.Duration
	drainTimeout time.Duration
	copiers      []*copier
	copying      sync.WaitGroup
	onSignal     func(os.Signal)

	done chan struct{}
	exit Exit // written once, before done is closed

	// mu may be held while taking the registry's lock (Linux), never the
	// other way round.
	mu        sync.Mutex
	reaping   bool // the leader is reaped or about to be: its pid is no longer ours to signal
	stopping  bool // Stop was called or SIGTERM/SIGINT relayed
	killed    bool // the grace period ran out and SIGKILL was sent
	swept     bool // the tree was SIGKILLed after the leader exited
	killAt    time.Time
	killTimer *time.Timer // nil until a stop arms it

	// What stopping and killed were when the leader exited; a Stop that
	// comes afterwards does not make the exit a stopped one.
	stoppedAtExit, killedAtExit bool
	orphansAtExit               bool
}

// Exit is how the child ended.
type Exit struct {
	// Code is the exit status, or -1 if the child was killed by a signal
	// (or, never seen in practice, its status could not be read).
	Code int
	// Signal is the signal that killed the child, 0 if it exited.
	Signal syscall.Signal
	// CoreDumped: the signal made the child dump core.
	CoreDumped bool
	// Stopped: a stop was under way when the child exited (Stop was
	// called, or SIGTERM or SIGINT was relayed to it).
	Stopped bool
	// Killed: the child outlasted its grace period and zkdog sent SIGKILL.
	Killed bool
	// Orphans: processes the child started were still running when it
	// exited by itself: members of its process group (background jobs)
	// or, on Linux, descendants that left the group (setsid, a daemon's
	// double fork). They were left running. Always false after a stop,
	// which kills them.
	Orphans bool
	// OutputCut: the passed-through output did not reach end of file
	// within DrainTimeout (a descendant kept the pipe open) and the rest
	// of it was dropped.
	OutputCut bool
}

// Status is the child's status as a shell reports it in $?: the exit code,
// or 128+N for a child killed by signal N. A status that could not be
// read gives ExitCannotRun.
func (e Exit) Status() int {
	switch {
	case e.Signal != 0:
		return 128 + int(e.Signal)
	case e.Code < 0:
		return ExitCannotRun
	default:
		return e.Code
	}
}

// Success reports whether the child exited with status 0.
func (e Exit) Success() bool { return e.Signal == 0 && e.Code == 0 }

// String describes the exit the way os.ProcessState does.
func (e Exit) String() string {
	switch {
	case e.Signal != 0 && e.CoreDumped:
		return "signal: " + e.Signal.String() + " (core dumped)"
	case e.Signal != 0:
		return "signal: " + e.Signal.String()
	case e.Code < 0:
		return "exit status unknown"
	default:
		return fmt.Sprintf("exit status %d", e.Code)
	}
}

// Start starts the child in a process group of its own, so that signals
// reach every process of a `sh -c` pipeline and not zkdog, and a Ctrl-C on
// a terminal reaches zkdog only (which relays it).
//
// Signal relaying is set up before the child is forked, so that no
// SIGTERM sent to zkdog can kill it while its child is left running
// unsupervised. Every signal in Config.Signals that reaches zkdog is sent
// to the child's process group. SIGTERM and SIGINT also begin a stop, as
// Stop does: if the child has not exited KillTimeout after the first of
// them, its group is SIGKILLed, and once it has exited the rest of its
// group is SIGKILLed. Signals zkdog was started with ignored (nohup, a
// non-interactive shell's `&`) are neither caught nor relayed, so the
// child inherits them ignored as it would without zkdog. While the child
// runs, SIGPIPE and SIGXFSZ are caught and not relayed: they are about
// zkdog's own writes, and must not kill zkdog before its child.
// Relaying stops (signal.Stop) once the child has exited.
//
// On Linux the child also gets SIGKILL if zkdog dies (PR_SET_PDEATHSIG):
// a child nobody supervises any more would go on holding its work item
// while the coordinator hands that item to someone else.
//
// On Linux the first Start also makes zkdog a child subreaper
// (PR_SET_CHILD_SUBREAPER) for the rest of its life: a descendant whose
// parent exits is re-parented to zkdog instead of init. A stop can then
// still find, by its parent links, a descendant that left the group
// (setsid), and zkdog reaps such orphans when they exit; it never reaps a
// process it did not adopt that way (see reaper_linux.go). A program
// using this package should not start children of its own with Setsid.
//
// Errors satisfy errors.Is(err, ErrNotFound) or ErrNotExecutable when the
// command cannot be run; see ExitCodeFor.
func Start(cfg Config) (*Child, error) {
	resolved, err := lookup(cfg)
	if err != nil {
		return nil, err
	}
	c := newChild(cfg)
	c.cmd = newCmd(cfg, resolved, c.drainTimeout)
	parentEnds, err := c.setOutput(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.launch(cfg, parentEnds); err != nil {
		return nil, startError(cfg.Path, resolved, err)
	}
	return c, nil
}

// lookup resolves cfg.Path as a shell would, or says why it cannot: a bad
// working directory is zkdog's failure (125), not a missing command.
func lookup(cfg Config) (string, error) {
	return Lookup(cfg.Path, cfg.Dir)
}

// Lookup finds the program that Start would run for name and dir, and
// checks that it can be executed, without starting anything: a name
// without a slash in $PATH, any other path as given (relative to dir when
// dir is set). A directory, or a file without the execute permission, is
// not executable. What it cannot see is whether the program's
// interpreter or loader exists, nor anything about a program that the
// one named runs in turn (the script of sh -c): Start finds those.
func Lookup(name, dir string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty command name", ErrNotFound)
	}
	path := name
	if dir != "" {
		if err := checkDir(dir); err != nil {
			return "", err
		}
		// The child enters dir before exec, so a relative path is dir's.
		if strings.ContainsRune(name, '/') && !filepath.IsAbs(name) {
			path = filepath.Join(dir, name)
		}
	}
	resolved, err := exec.LookPath(path)
	if err != nil {
		return "", lookupError(name, err)
	}
	return resolved, nil
}

func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("working directory %s: %w", dir, syscall.ENOTDIR)
	}
	return nil
}

func newChild(cfg Config) *Child {
	c := &Child{
		killTimeout:  cfg.KillTimeout,
		drainTimeout: cfg.DrainTimeout,
		onSignal:     cfg.OnSignal,
		done:         make(chan struct{}),
	}
	if c.killTimeout <= 0 {
		c.killTimeout = DefaultKillTimeout
	}
	if c.drainTimeout <= 0 {
		c.drainTimeout = DefaultDrainTimeout
	}
	return c
}

// newCmd builds the command but for its stdout and stderr, which are
// setOutput's.
func newCmd(cfg Config, resolved string, waitDelay time.Duration) *exec.Cmd {
	// A path the user spelled out is exec'd as spelled (relative to Dir,
	// which the child enters first), so a script's $0 is what the user
	// typed, as under a shell.
	path := resolved
	if strings.ContainsRune(cfg.Path, '/') {
		path = cfg.Path
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        append([]string{cfg.Path}, cfg.Args...),
		Env:         cfg.Env,
		Dir:         cfg.Dir,
		Stdin:       cfg.Stdin,
		SysProcAttr: sysProcAttr(),
		// Only stdin can still have an os/exec copying goroutine (for a
		// non-file Reader); it must not hold Wait up forever either.
		WaitDelay: waitDelay,
	}
	if cmd.Stdin == nil {
		cmd.Stdin = os.Stdin
	}
	return cmd
}

// setOutput gives the child its stdout and stderr. It returns our copies
// of the pipes' write ends, which run closes once the child has its own:
// while we hold them the pipes never reach EOF.
func (c *Child) setOutput(cfg Config) ([]*os.File, error) {
	var ends []*os.File
	var files [2]*os.File
	tails := [2]*Tail{nil, cfg.StderrTail}
	for i, w := range destinations(cfg) {
		f, err := c.stream(w, cfg.Output, tails[i], &ends)
		if err != nil {
			closeFiles(ends)
			c.closeReadEnds()
			return nil, err
		}
		files[i] = f
	}
	c.cmd.Stdout, c.cmd.Stderr = files[0], files[1]
	return ends, nil
}

// destinations returns where stdout and stderr go. One writer for both is
// shared by two copiers, which must then take turns, unless it is a file
// the child writes to itself.
func destinations(cfg Config) [2]io.Writer {
	stdout, stderr := cfg.Stdout, cfg.Stderr
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	if sameWriter(stdout, stderr) {
		if _, isFile := stdout.(*os.File); !isFile || cfg.Output != nil {
			lw := &lockedWriter{w: stdout}
			return [2]io.Writer{lw, lw}
		}
	}
	return [2]io.Writer{stdout, stderr}
}

// stream returns the file the child is to write w's stream to. A file
// goes to the child as is, so that it writes there itself at no cost to
// us; anything else, or anything at all when output is counted or its
// tail kept, needs a pipe and a copier of ours. ends collects the pipes'
// write ends.
func (c *Child) stream(w io.Writer, count *Counter, tail *Tail, ends *[]*os.File) (*os.File, error) {
	if f, ok := w.(*os.File); ok && count == nil && tail == nil {
		return f, nil
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating an output pipe: %w", err)
	}
	*ends = append(*ends, pw)
	c.copiers = append(c.copiers, &copier{r: r, w: w, count: count, tail: tail})
	return pw, nil
}

// launch forks the child and hands it over to the goroutines that own it
// from then on: run waits for it, forward relays signals to it. On
// failure it leaves nothing behind: no goroutine, no descriptor, no
// signal subscription.
func (c *Child) launch(cfg Config, parentEnds []*os.File) error {
	sigs, relay, stopNotify := c.catchSignals(cfg)

	// Copiers run from now on so that no Wait can miss them; if the start
	// fails they see EOF as soon as our write ends are closed.
	c.copying.Add(len(c.copiers))
	for _, cp := range c.copiers {
		go func() {
			defer c.copying.Done()
			cp.run()
		}()
	}

	started := make(chan error, 1)
	go c.run(started, parentEnds)
	if err := <-started; err != nil {
		stopNotify()
		c.closeReadEnds()
		return err
	}
	if sigs == nil {
		stopNotify()
		return nil
	}
	go c.forward(sigs, relay, stopNotify)
	return nil
}

func (c *Child) closeReadEnds() {
	for _, cp := range c.copiers {
		cp.r.Close()
	}
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// run starts the child and then owns the wait for it.
func (c *Child) run(started chan<- error, parentEnds []*os.File) {
	err := startOnForker(c)
	// The child has its copies now; ours would keep the pipes from ever
	// reaching EOF.
	closeFiles(parentEnds)
	if err != nil {
		started <- err
		return
	}
	started <- nil

	// Where the platform can wait without reaping, the leader is a zombie
	// while atExit runs: its pid, and with it the process group id,
	// cannot have been reused by an unrelated process we would then
	// signal, and the orphans it left are told apart from those of a
	// command started later.
	zombie := waitExited(c.pid)
	if zombie {
		c.atExit(true)
	}
	werr := c.cmd.Wait()
	c.forget()
	if !zombie {
		c.atExit(false)
	}
	exit := exitFrom(c.cmd.ProcessState, werr)

	c.mu.Lock()
	exit.Stopped, exit.Killed, exit.Orphans = c.stoppedAtExit, c.killedAtExit, c.orphansAtExit
	c.mu.Unlock()

	exit.OutputCut = !c.drain()
	c.exit = exit
	close(c.done)
}

// atExit marks the leader's pid as no longer ours to signal and, if a
// stop is under way, SIGKILLs whatever is left of its tree: orphaned
// grandchildren would otherwise keep running (and holding the batch
// allocation, and the output pipes) after their job has been stopped.
// What a child that exited by itself leaves is only counted.
func (c *Child) atExit(zombie bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killTimer != nil {
		c.killTimer.Stop()
	}
	if c.stopping {
		_ = syscall.Kill(-c.pid, syscall.SIGKILL)
		c.killTree()
		c.swept = true
	} else {
		c.orphansAtExit = c.orphaned(zombie)
	}
	c.reaping = true
	c.stoppedAtExit, c.killedAtExit = c.stopping, c.killed
}

// drain waits for the output copiers to reach EOF, at most drainTimeout.
// It reports whether they did.
func (c *Child) drain() bool {
	if len(c.copiers) == 0 {
		return true
	}
	drained := make(chan struct{})
	go func() {
		c.copying.Wait()
		close(drained)
	}()
	t := time.NewTimer(c.drainTimeout)
	defer t.Stop()
	select {
	case <-drained:
		return true
	case <-t.C:
		// Closing the read ends wakes the copiers; one stuck writing to a
		// stalled stdout of ours is not waited for.
		c.closeReadEnds()
		return false
	}
}

func exitFrom(ps *os.ProcessState, _ error) Exit {
	if ps == nil {
		return Exit{Code: -1}
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok {
		return Exit{Code: ps.ExitCode()}
	}
	if ws.Signaled() {
		return Exit{Code: -1, Signal: ws.Signal(), CoreDumped: ws.CoreDump()}
	}
	return Exit{Code: ws.ExitStatus()}
}

// forks carries start requests to the forker goroutine.
var (
	forkerOnce sync.Once
	forks      chan forkRequest
)

type forkRequest struct {
	c    *Child
	done chan error
}

// startOnForker starts c's command from one goroutine locked, for the
// life of the process, to an OS thread of its own. The kernel delivers
// PR_SET_PDEATHSIG when the *thread* that forked the child exits, and the
// Go runtime does end threads (golang/go#27505), so a child forked from an
// arbitrary thread could be killed at any moment. Locking a thread per
// child instead would make every wait for a child a hand-off between
// threads, which for a loop over short commands costs more than the
// commands themselves.
func startOnForker(c *Child) error {
	forkerOnce.Do(func() {
		forks = make(chan forkRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must outlive every child
			for r := range forks {
				r.done <- startChild(r.c)
			}
		}()
	})
	r := forkRequest{c: c, done: make(chan error, 1)}
	forks <- r
	return <-r.done
}

// Pid returns the child's process id, which is also its process group id.
func (c *Child) Pid() int { return c.pid }

// Done is closed when the child has exited, been reaped, and its
// passed-through output has been copied (or DrainTimeout has run out).
func (c *Child) Done() <-chan struct{} { return c.done }

// Exit returns how the child ended. It is valid only once Done is closed;
// before that it returns the zero Exit.
func (c *Child) Exit() Exit {
	select {
	case <-c.done:
		return c.exit
	default:
		return Exit{}
	}
}

// Wait blocks until the child has exited and returns Exit.
func (c *Child) Wait() Exit {
	<-c.done
	return c.exit
}

// Signal sends sig to the child's whole process group. Once the child has
// exited it returns ErrExited and sends nothing: the group id may no
// longer be the child's. Descendants that left the group are not reached:
// they meant to leave the job's signals behind; only a stop goes after
// them.
func (c *Child) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("supervise: unsupported signal %v", sig)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.killLocked(s)
}

func (c *Child) killLocked(s syscall.Signal) error {
	if c.reaping {
		return ErrExited
	}
	if err := syscall.Kill(-c.pid, s); err != nil {
		return fmt.Errorf("supervise: signal %v: %w", s, err)
	}
	return nil
}

// Stop stops the child and every process it started: SIGTERM to its
// process group and, on Linux, to its descendants that left the group;
// SIGKILL to all of them if the child has not exited KillTimeout later;
// and once the child has exited, SIGKILL to whatever is left of them, so
// no orphaned grandchild survives a stop. If the child has already exited
// by itself, Stop only does the last step.
//
// Stop returns nil once the child has exited, or ctx.Err() if ctx is done
// first; the stop goes on regardless. It is safe to call concurrently and
// repeatedly; only the first call, or a relayed SIGTERM or SIGINT before
// it, sends a signal and starts the grace period, which a later
// StopWithin can only shorten.
func (c *Child) Stop(ctx context.Context) error {
	return c.StopWithin(ctx, c.killTimeout)
}

// StopWithin is Stop with a grace period of its own: SIGTERM, unless a
// stop already sent it, and SIGKILL at now+grace or at the time an
// earlier stop set, whichever comes first. A call can bring the SIGKILL
// forward but never put it off. It is for a deadline that is not the
// child's, such as zkdog's ZooKeeper session about to expire: the child
// must be dead before its item can be handed to someone else. A grace of
// zero or less means SIGKILL right after the SIGTERM.
func (c *Child) StopWithin(ctx context.Context, grace time.Duration) error {
	c.beginStop(syscall.SIGTERM, false, grace)
	select {
	case <-c.done:
	case <-ctx.Done():
		select {
		case <-c.done:
		default:
			return ctx.Err()
		}
	}
	c.sweepOrphans()
	return nil
}

// beginStop marks the child as being stopped and has it SIGKILLed grace
// from now at the latest. It sends sig on the first request, or on every
// one if always is set (a relayed signal is relayed each time it
// arrives).
func (c *Child) beginStop(sig syscall.Signal, always bool, grace time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := !c.stopping
	c.stopping = true
	if (first || always) && c.killLocked(sig) == nil {
		// SIGCONT after, as systemd does: a stopped process (SIGTSTP,
		// a debugger) acts on nothing until it runs again.
		_ = c.killLocked(syscall.SIGCONT)
		c.signalOutsiders(sig, syscall.SIGCONT)
	}
	c.killWithinLocked(grace)
}

// killWithinLocked has the child SIGKILLed grace from now, or at the
// earlier time a stop already set.
func (c *Child) killWithinLocked(grace time.Duration) {
	if c.reaping {
		return
	}
	grace = max(grace, 0)
	at := time.Now().Add(grace)
	switch {
	case c.killTimer == nil:
		c.killTimer = time.AfterFunc(grace, c.killAfterGrace)
	case at.Before(c.killAt):
		// The timer has not fired, as timers never fire early and killAt
		// is still ahead: Reset moves it rather than adding a run.
		c.killTimer.Reset(grace)
	default:
		return
	}
	c.killAt = at
}

func (c *Child) killAfterGrace() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.killLocked(syscall.SIGKILL) == nil {
		c.killed = true
		c.killTree()
	}
}

// sweepOrphans kills what a child that exited by itself left behind when
// a stop comes afterwards. The leader is reaped by now, so this is the one
// place that signals a group id no zombie holds; it only does so if
// orphans were seen as the leader exited, and a group id stays reserved
// for as long as any member lives. The remaining hazard needs every
// orphan to die, the pid to be recycled and its new owner to make itself
// a group leader, all before Stop is called. Orphans that left the group
// are known by pid and start time since the leader exited (Linux).
func (c *Child) sweepOrphans() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.swept || !c.exit.Orphans {
		return
	}
	c.swept = true
	_ = syscall.Kill(-c.pid, syscall.SIGKILL)
	c.killTree()
}
