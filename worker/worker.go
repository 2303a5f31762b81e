// Package worker is `zkdog run`: it leases an item, keeps a timer, runs
// the command on the item under supervision, and records the result. It
// owns the order of those steps and the rules that tie them together: the
// child is stopped before anything is cleaned up when the timer, the lease
// or the job is lost, and a result is recorded only while the lease holds.
package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/zkdog/zkdog/heartbeat"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/supervise"
)

// Environment the child gets.
const (
	EnvItem     = "ZKDOG_ITEM"
	EnvIndex    = "ZKDOG_ITEM_INDEX"
	EnvAttempt  = "ZKDOG_ATTEMPT"
	EnvRoot     = "ZKDOG_ROOT"
	EnvTimer    = "ZKDOG_TIMER"
	EnvID       = "ZKDOG_ID"
	EnvKickFile = "ZKDOG_KICK_FILE"
	Placeholder = "{}"
)

// Sentinel errors.
var (
	// ErrAborted: the master gave up on the job.
	ErrAborted = errors.New("the job was aborted")
	// ErrNoCommand: nothing to run was given.
	ErrNoCommand = errors.New("no command given; put it after --")
	// ErrNoQueue: the job has no items, and the worker was not told to
	// run without one.
	ErrNoQueue = errors.New("the job has no queue")
	// ErrSettings: the worker's settings cannot work with the job's.
	ErrSettings = errors.New("settings that cannot work")
	// ErrEndangered: the session may expire before the command could be
	// stopped, so it was stopped first.
	ErrEndangered = errors.New("the ZooKeeper session is endangered")
)

// ExitStopped is the status of a command that zkdog itself stopped (its
// session or timer lost, the job aborted, no progress with KillOnStall),
// as timeout(1) exits when it stopped its command: the command's own
// status, 143 after the TERM, would read as a scancel.
const ExitStopped = 124

// Config is what zkdog run was asked to do.
type Config struct {
	Command []string
	// ItemOnStdin feeds the item, and a newline, to the command's stdin.
	ItemOnStdin bool
	// NoQueue runs the command once under a timer, with no item.
	NoQueue bool
	// Loop takes items until the queue is empty.
	Loop bool
	// UntilDone, with Loop, waits when the queue is empty until every item
	// has a result, taking the items of vanished workers as they come back.
	UntilDone bool
	ID        string
	// KickInterval is the most often the timer is kicked; zero means a
	// quarter of the job's timer.
	KickInterval time.Duration
	// Progress says what counts as the command making progress.
	Progress supervise.Activity
	// SampleInterval is how often progress is sampled; zero means
	// supervise.DefaultInterval, or half the kick interval if that is
	// shorter: progress seen later than a kick is due is a kick missed.
	SampleInterval time.Duration
	ProgressFiles  []string
	// KillOnStall stops a command once its timer would have expired.
	KillOnStall bool
	KillTimeout time.Duration
	// WaitForJob is how long to wait for a job that does not exist yet,
	// for tasks that may start before their master has created the job.
	WaitForJob time.Duration
	// KeepStderr is how many bytes of the end of the command's standard
	// error a result that is not ok keeps, with the item; 0 keeps none,
	// and protocol.MaxStderrBytes is the most. An ok result keeps
	// neither: a job of a million items must not cost ZooKeeper a copy
	// of each.
	KeepStderr int
	// OnTerm is what becomes of the item when a TERM or INT from outside
	// ends its command; empty is OnTermRequeue.
	OnTerm OnTerm
	// Deadline is when the worker's lifetime (--lifetime) ends; zero is
	// no limit. No item is taken when less time is left than an item is
	// expected to need (see expected).
	Deadline time.Time
	// ItemTime is what an item is expected to need (--item-time); zero
	// leaves it to the job's statistics, or this worker's own.
	ItemTime time.Duration

	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Log            *slog.Logger
}

// Result is how zkdog run ended when it could run: Status is the status
// to exit with (the last failing command's, 0 if all succeeded or none
// ran, ExitStopped if zkdog stopped that command, 128+N if signal N
// stopped zkdog between items); Ran counts the commands run; Stopped says
// why zkdog stopped the command whose ExitStopped is Status, nil when
// Status is not that.
type Result struct {
	Status  int
	Ran     int
	Stopped error
}

// Worker runs one zkdog run.
type Worker struct {
	sess  *zkconn.Session
	j     *job.Job
	cfg   Config
	log   *slog.Logger
	spec  protocol.Job
	timer *heartbeat.Timer
	host  string
	kick  time.Duration

	kickFile string
	// took holds how long the latest commands this worker ran took (with
	// a Deadline), for expected when the job has no statistics yet.
	took []time.Duration
	// recent holds how long its latest prefetchWindow commands took, for
	// mayPrefetch.
	recent []time.Duration
	// baseEnv is what every command's environment starts with.
	baseEnv []string
}

// Run does the whole zkdog run. ctx is cancelled, with an
// *interrupt.Error cause, when zkdog is asked to stop: no item is taken
// after it, and a running command, which gets the signal from supervise,
// is waited for and its result recorded.
//
// A command that cannot be found or executed is an error matching
// supervise.ErrNotFound or ErrNotExecutable: found before anything is
// taken (CheckCommand), or, should it stop starting later (deleted under
// a looping worker), once its item is given back uncharged. A job that is
// finished is a *job.FinishedError, with the Result of what ran before.
func Run(ctx context.Context, sess *zkconn.Session, j *job.Job, cfg Config) (Result, error) {
	if err := CheckCommand(cfg.Command); err != nil {
		return Result{}, err
	}
	w := &Worker{sess: sess, j: j, cfg: cfg, log: cfg.Log}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.host, _ = os.Hostname()
	if w.cfg.ID == "" {
		w.cfg.ID = Identity(os.Getenv, w.host, os.Getpid())
	}
	if err := w.join(ctx); err != nil {
		return Result{}, err
	}
	defer w.timer.Close()
	ctx, stop := w.stopWhenLost(ctx)
	defer stop()
	defer w.closeWhenLost()()

	kf, err := os.CreateTemp("", "zkdog-kick-*")
	if err != nil {
		return Result{}, fmt.Errorf("creating the kick file: %w", err)
	}
	kf.Close()
	w.kickFile = kf.Name()
	defer os.Remove(w.kickFile)

	if cfg.NoQueue {
		status, why := w.runOne(ctx, nil)
		if didNotStart(why) {
			return Result{}, why
		}
		return Result{Status: status, Ran: 1, Stopped: why}, nil
	}
	return w.drain(ctx)
}

// CheckCommand finds the command's program, as it will be started, and
// checks that it can be executed: a misspelt command must fail at once,
// before a timer is made or an item taken, not fail every item of the
// queue with 127. What a shell or another wrapper runs in turn (the
// script of sh -c) is found only when it runs.
func CheckCommand(command []string) error {
	if len(command) == 0 {
		return ErrNoCommand
	}
	if _, err := supervise.Lookup(command[0], ""); err != nil {
		return fmt.Errorf("%w%s (nothing was taken from the queue)", err, remedy(err))
	}
	return nil
}

// remedy says what to do about a command that cannot be run, after a
// "; "; nothing for a failure that is not the command's (fork failed).
func remedy(err error) string {
	switch {
	case errors.Is(err, syscall.EISDIR):
		return "; name the program, not its directory"
	case errors.Is(err, supervise.ErrNotExecutable):
		return "; make it executable (chmod +x), or name its interpreter before it"
	case errors.Is(err, supervise.ErrNotFound):
		return "; check its name, or give its path"
	}
	return ""
}

// closeWhenLost closes the session once it is lost: nothing can be done
// with it any more, and a request waiting on it (the give-back of an
// item, say) would otherwise wait for the client's next connection, which
// a partition puts off for minutes, and keep zkdog from exiting. It
// returns the function that stops watching.
func (w *Worker) closeWhenLost() func() {
	done := make(chan struct{})
	go func() {
		select {
		case <-w.sess.Lost():
			w.sess.Close()
		case <-done:
		}
	}()
	return func() { close(done) }
}

// join waits for the job, checks the settings against it, starts the timer
// and releases the barrier.
func (w *Worker) join(ctx context.Context) error {
	spec, err := w.j.AwaitReady(ctx, w.cfg.WaitForJob)
	if err != nil {
		return err
	}
	if err := finished(w.j.L.Root, spec); err != nil {
		return err
	}
	if err := w.j.CheckAccess(true); err != nil {
		return err
	}
	w.spec = spec
	if spec.Items == 0 && !w.cfg.NoQueue {
		return fmt.Errorf("%w at %s: it was created without --items; run with --no-queue", ErrNoQueue, w.j.L.Root)
	}
	if reason, aborted, err := w.j.AbortReason(); err != nil {
		return err
	} else if aborted {
		return fmt.Errorf("%w: %s", ErrAborted, reason)
	}
	if err := w.derive(); err != nil {
		return err
	}
	w.timer, err = heartbeat.Start(w.sess, w.j, protocol.Timer{ID: w.cfg.ID, Host: w.host, Pid: os.Getpid()},
		heartbeat.WithKickInterval(w.kick), heartbeat.WithLogger(w.log))
	if err != nil {
		return err
	}
	w.log.Info("worker started", "id", w.cfg.ID, "timer", w.timer.Name(), "root", w.j.L.Root)
	w.log.Debug("timer settings", "kick_interval", w.kick, "sample_interval", w.cfg.SampleInterval, "limit", spec.Timer())
	if spec.Sync {
		if err := w.j.ReleaseBarrier(); err != nil {
			w.timer.Close()
			return err
		}
	}
	return nil
}

// derive derives the kick and sample intervals from the job's timer and
// refuses the combinations that cannot work: a timer kicked less than
// twice per limit has no slack for one late kick, and progress sampled
// less often than kicks are due is progress seen too late.
func (w *Worker) derive() error {
	limit := w.spec.Timer()
	w.kick = w.cfg.KickInterval
	if w.kick <= 0 {
		w.kick = limit / 4
	}
	if w.kick > limit/2 {
		return fmt.Errorf("%w: --kick-interval %v is more than half the job's %v timer; a single late kick would make this worker look hung; give at most %v", ErrSettings, w.kick, limit, limit/2)
	}
	if w.cfg.SampleInterval == 0 {
		w.cfg.SampleInterval = min(supervise.DefaultInterval, w.kick/2)
	}
	if w.cfg.SampleInterval > w.kick {
		return fmt.Errorf("%w: --sample-interval %v is longer than the kick interval %v (the job's timer is %v): progress would be seen after the kick was due; give at most %v", ErrSettings, w.cfg.SampleInterval, w.kick, limit, w.kick)
	}
	return nil
}

// childEnv is the command's environment: zkdog's own and the worker's,
// made once (baseEnv), then the item's.
func (w *Worker) childEnv(c *job.Claim) []string {
	if w.baseEnv == nil {
		w.baseEnv = append(os.Environ(),
			EnvRoot+"="+w.j.L.Root,
			EnvTimer+"="+w.timer.Path(),
			EnvID+"="+w.cfg.ID,
			EnvKickFile+"="+w.kickFile,
		)
	}
	env := slices.Clip(w.baseEnv)
	if c != nil {
		env = append(env,
			EnvItem+"="+string(c.Data),
			EnvIndex+"="+strconv.Itoa(c.Origin),
			EnvAttempt+"="+strconv.Itoa(c.Attempt),
		)
	}
	return env
}

// Args replaces every {} in the command's arguments (not its name) with
// the item, the way find -exec and xargs -I do. Each argument stays one
// argument whatever the item holds, so no shell ever reads the item as
// code. The script of a shell's -c (sh -c '... {} ...') is the exception
// made safe: a shell would run the item's text there, so {} becomes a
// reference to $ZKDOG_ITEM instead, quoted for where it stands. The
// shell expands a parameter without ever parsing its value, so the item
// is data, never code, whatever quotes, $( ) or backquotes surround it.
func Args(command []string, item string) []string {
	out := make([]string, len(command))
	out[0] = command[0]
	script := shellScript(command)
	for i, a := range command[1:] {
		if i+1 == script {
			out[i+1] = scriptWithItem(a)
			continue
		}
		out[i+1] = strings.ReplaceAll(a, Placeholder, item)
	}
	return out
}

// shells are the programs whose -c takes a script in the POSIX shell's
// language.
var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "ash": true, "ksh": true, "mksh": true, "zsh": true}

// wrappers are the programs that run another command given after their
// own options (env VAR=x sh -c ..., nice -n 5 sh -c ..., timeout 60 sh
// -c ...), so that the shell behind them is found too.
var wrappers = map[string]bool{"env": true, "nice": true, "nohup": true, "timeout": true, "stdbuf": true,
	"setsid": true, "ionice": true, "chrt": true, "taskset": true, "time": true, "exec": true, "command": true}

// shellScript is the index of the script argument when command runs a
// shell with -c, directly or through wrappers, or -1: the first operand after options that include c
// (-c, -ec, -euc). Every o or O in an option cluster takes the next
// argument (-o NAME, +o NAME, -euo NAME, -oc NAME SCRIPT), as do bash's
// --rcfile and --init-file, and a lone - ends the options like --.
func shellScript(command []string) int {
	if wrappers[filepath.Base(command[0])] {
		// env, nice, timeout ... run their last operands as a command:
		// the shell is the first argument that names one.
		// A wrapper's own arguments may name a shell too (env -u sh):
		// every one that does is tried.
		for k := 1; k < len(command); k++ {
			if shells[filepath.Base(command[k])] {
				if i := shellScript(command[k:]); i >= 0 {
					return k + i
				}
			}
		}
		return -1
	}
	if !shells[filepath.Base(command[0])] {
		return -1
	}
	withC := false
	for i := 1; i < len(command); i++ {
		a := command[i]
		switch {
		case a == "--" || a == "-":
			if withC && i+1 < len(command) {
				return i + 1
			}
			return -1
		case a == "--rcfile" || a == "--init-file":
			i++
		case len(a) > 1 && (a[0] == '-' || a[0] == '+') && !strings.HasPrefix(a, "--"):
			withC = withC || (a[0] == '-' && strings.ContainsRune(a[1:], 'c'))
			i += strings.Count(a[1:], "o") + strings.Count(a[1:], "O")
		case strings.HasPrefix(a, "--"):
			// a long option (bash --norc)
		default:
			if withC {
				return i
			}
			return -1
		}
	}
	return -1
}

// Where a {} stands in a script, and what stands in for the item there:
// the item's exact text in each case, as one word.
const (
	itemUnquoted = `"${` + EnvItem + `}"`
	itemInDouble = `${` + EnvItem + `}`
	itemInSingle = `'"${` + EnvItem + `}"'` // close, expand in double quotes, reopen
)

// scriptWithItem replaces each {} in a shell script by a reference to the
// item, quoted for the quoting it stands in: outside quotes, inside "..."
// or '...', and afresh inside $( ) and backquotes, which start a new
// context wherever they stand. A \ escapes the next character, so \{}
// stays a literal {}. Where the reading is wrong (a heredoc, a case
// pattern), the reference is still only expanded, never run.
func scriptWithItem(script string) string {
	var b strings.Builder
	var outer []byte // the quotes around each $( or ` being read
	quote := byte(0) // 0, '\'' or '"': the quotes {} would stand in
	for i := 0; i < len(script); i++ {
		c := script[i]
		switch {
		case strings.HasPrefix(script[i:], Placeholder):
			b.WriteString(itemIn(quote))
			i++
			continue
		case c == '\\' && quote != '\'' && i+1 < len(script):
			b.WriteByte(c)
			i++
			c = script[i]
		case quote != '\'' && (strings.HasPrefix(script[i:], "$(") || c == '`' && !closes(outer, '`', quote)):
			outer = append(outer, quote, c)
			quote = 0
		case quote == 0 && len(outer) > 0 && (c == ')' && outer[len(outer)-1] == '$' || c == '`' && outer[len(outer)-1] == '`'):
			quote, outer = outer[len(outer)-2], outer[:len(outer)-2]
		case c == '\'' && quote != '"', c == '"' && quote != '\'':
			if quote == c {
				quote = 0
			} else {
				quote = c
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// closes reports whether c, read in quote, closes the innermost of outer.
func closes(outer []byte, c, quote byte) bool {
	return quote == 0 && len(outer) > 0 && outer[len(outer)-1] == c
}

func itemIn(quote byte) string {
	switch quote {
	case '"':
		return itemInDouble
	case '\'':
		return itemInSingle
	}
	return itemUnquoted
}

func (w *Worker) stdin(c *job.Claim) io.Reader {
	if w.cfg.ItemOnStdin && c != nil {
		return bytes.NewReader(append(append([]byte(nil), c.Data...), '\n'))
	}
	return w.cfg.Stdin
}
