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
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/heartbeat"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/supervise"
)

// Exit codes of zkdog run besides the child's own, as timeout(1) and
// env(1) use them: a child's code passes through unchanged, so zkdog's
// own failures use codes a command rarely does.
const (
	ExitFailed        = 125 // zkdog failed before the command started
	ExitNotExecutable = 126
	ExitNotFound      = 127
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

// ErrAborted: the master gave up on the job.
var ErrAborted = errors.New("worker: job aborted")

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
	Progress       supervise.Activity
	SampleInterval time.Duration
	ProgressFiles  []string
	// KillOnStall stops a command once its timer would have expired.
	KillOnStall bool
	KillTimeout time.Duration
	// WaitForJob is how long to wait for a job that does not exist yet,
	// for tasks that may start before their master has created the job.
	WaitForJob time.Duration

	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Log            *slog.Logger
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
	abort <-chan struct{}

	kickFile    string
	abortReason atomic.Pointer[string]
	// stopping holds the signal (TERM or INT) that asked zkdog to stop, 0
	// if none: no item is taken after it. While a child runs, supervise
	// relays the same signal to it and stops it. stopped is closed then.
	stopping atomic.Int32
	stopped  chan struct{}
}

// Run does the whole zkdog run and returns the process exit code. A
// non-nil error with ExitFailed means zkdog could not start the work.
func Run(ctx context.Context, sess *zkconn.Session, j *job.Job, cfg Config) (int, error) {
	if len(cfg.Command) == 0 {
		return ExitFailed, errors.New("worker: no command given; put it after --")
	}
	w := &Worker{sess: sess, j: j, cfg: cfg, log: cfg.Log, stopped: make(chan struct{})}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.host, _ = os.Hostname()
	if w.cfg.ID == "" {
		w.cfg.ID = Identity(os.Getenv, w.host, os.Getpid())
	}
	spec, err := w.waitReady(ctx)
	if err != nil {
		return ExitFailed, err
	}
	w.spec = spec
	if spec.Items == 0 && !cfg.NoQueue {
		return ExitFailed, fmt.Errorf("worker: the job at %s has no queue; run with --no-queue", j.L.Root)
	}
	if reason, aborted, err := j.AbortReason(); err != nil {
		return ExitFailed, err
	} else if aborted {
		return ExitFailed, fmt.Errorf("%w: %s", ErrAborted, reason)
	}

	kick := cfg.KickInterval
	if kick <= 0 {
		kick = spec.Timer() / 4
	}
	w.timer, err = heartbeat.Start(sess, j, protocol.Timer{ID: w.cfg.ID, Host: w.host, Pid: os.Getpid()},
		heartbeat.WithKickInterval(kick), heartbeat.WithLogger(w.log))
	if err != nil {
		return ExitFailed, err
	}
	defer w.timer.Close()
	w.log.Info("worker started", "id", w.cfg.ID, "timer", w.timer.Name(), "root", j.L.Root)
	w.log.Debug("timer settings", "kick_interval", kick, "limit", spec.Timer())
	if spec.Sync {
		if err := j.ReleaseBarrier(); err != nil {
			return ExitFailed, err
		}
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.abort = w.watchAbort(actx)
	stopSigs := make(chan os.Signal, 1)
	signal.Notify(stopSigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(stopSigs)
	go func() {
		select {
		case s := <-stopSigs:
			w.stopping.Store(int32(s.(syscall.Signal)))
			close(w.stopped)
		case <-actx.Done():
		}
	}()

	kf, err := os.CreateTemp("", "zkdog-kick-*")
	if err != nil {
		return ExitFailed, fmt.Errorf("worker: creating the kick file: %w", err)
	}
	kf.Close()
	w.kickFile = kf.Name()
	defer os.Remove(w.kickFile)

	if cfg.NoQueue {
		return w.runOne(ctx, nil), nil
	}
	return w.drain(ctx)
}

// drain takes items, one or (with Loop) until none is left.
func (w *Worker) drain(ctx context.Context) (int, error) {
	lease := protocol.Lease{Timer: w.timer.Name(), ID: w.cfg.ID, Host: w.host, Pid: os.Getpid()}
	status, ran := 0, 0
	for {
		if sig := w.stopping.Load(); sig != 0 {
			w.log.Info("stopping on a signal; no more items taken", "signal", syscall.Signal(sig))
			return 128 + int(sig), nil
		}
		if err := w.lost(); err != nil {
			if ran == 0 {
				return ExitFailed, err
			}
			w.log.Error("stopping: no more items taken", "err", err)
			return status, nil
		}
		c, err := w.take(lease)
		if errors.Is(err, job.ErrEmpty) && w.cfg.Loop && w.cfg.UntilDone {
			more, werr := w.awaitRetries(ctx)
			if sig := w.stopping.Load(); sig != 0 {
				return 128 + int(sig), nil
			}
			if werr != nil {
				w.log.Error("stopping: no more items taken", "err", werr)
				return status, nil
			}
			if more {
				continue
			}
		}
		if errors.Is(err, job.ErrEmpty) {
			if ran == 0 {
				w.log.Info("the queue is empty; nothing to do", "root", w.j.L.Root)
			}
			return status, nil
		}
		if err != nil {
			if ran == 0 {
				return ExitFailed, err
			}
			w.log.Error("could not take another item", "err", err)
			return status, nil
		}
		w.timer.Progress() // taking an item is progress
		w.log.Info("took item", "item", c.Index, "attempt", c.Attempt, "label", protocol.Label(c.Data))
		if code := w.runOne(ctx, &c); code != 0 {
			status = code
		}
		ran++
		if !w.cfg.Loop {
			return status, nil
		}
	}
}

// take takes an item, riding out a ZooKeeper outage (a leader election
// takes under a second) for as long as the session holds.
func (w *Worker) take(lease protocol.Lease) (job.Claim, error) {
	deadline := time.Now().Add(recordPatience)
	for {
		c, err := w.j.Take(w.spec, lease)
		if err == nil || !job.Transient(err) || w.sess.Err() != nil || time.Now().After(deadline) {
			return c, err
		}
		w.log.Warn("taking an item failed; retrying", "err", err)
		select {
		case <-w.sess.Lost():
		case <-time.After(retryPause):
		}
	}
}

// awaitRetries waits, with the queue empty, until an item comes back for
// another attempt (true) or every item has a result (false). Waiting is a
// sign of health, not a hang, so the timer is kept kicked meanwhile.
func (w *Worker) awaitRetries(ctx context.Context) (bool, error) {
	tick := time.NewTicker(max(w.spec.Timer()/8, 10*time.Millisecond))
	defer tick.Stop()
	logged := false
	for {
		retry, _, retryW, err := w.j.Conn().ChildrenW(w.j.L.Retry())
		if err != nil {
			return false, err
		}
		if len(retry) > 0 {
			return true, nil
		}
		ok, done, doneW, err := w.j.Conn().ExistsW(w.j.L.Done())
		if err != nil {
			return false, err
		}
		if !ok {
			return false, fmt.Errorf("%w at %s (it was removed)", job.ErrNoJob, w.j.L.Root)
		}
		if int(done.Version) >= w.spec.Items {
			return false, nil
		}
		if !logged {
			w.log.Info("the queue is empty; waiting for the other workers' items to finish or come back", "left", w.spec.Items-int(done.Version))
			logged = true
		}
		for waiting := true; waiting; {
			select {
			case <-retryW:
				waiting = false
			case <-doneW:
				waiting = false
			case <-tick.C:
				w.timer.Progress()
			case <-w.stopped:
				return false, fmt.Errorf("signal %v", syscall.Signal(w.stopping.Load()))
			case <-ctx.Done():
				return false, ctx.Err()
			case <-w.abort:
				return false, fmt.Errorf("%w: %s", ErrAborted, w.aborted())
			case <-w.timer.Done():
				return false, w.timer.Err()
			}
		}
	}
}

// lost says whether the worker may no longer work: job aborted or timer
// gone.
func (w *Worker) lost() error {
	select {
	case <-w.abort:
		return fmt.Errorf("%w: %s", ErrAborted, w.aborted())
	case <-w.timer.Done():
		return w.timer.Err()
	default:
		return nil
	}
}

func (w *Worker) waitReady(ctx context.Context) (protocol.Job, error) {
	// A job that does not exist is waited for only as long as asked, since
	// it is usually a wrong --root; one being filled, for as long as its
	// master lives (its filler node says so).
	giveUp := time.Now().Add(w.cfg.WaitForJob)
	for {
		b, _, ch, err := w.j.Conn().GetW(w.j.L.Root)
		if errors.Is(err, zk.ErrNoNode) {
			var ok bool
			ok, _, ch, err = w.j.Conn().ExistsW(w.j.L.Root)
			if err == nil && !ok {
				left := time.Until(giveUp)
				if left <= 0 {
					return protocol.Job{}, fmt.Errorf("%w at %s: it was never created there, or it finished and was removed; check --root", job.ErrNoJob, w.j.L.Root)
				}
				w.log.Debug("no job yet; waiting for its master", "root", w.j.L.Root, "for", left)
				select {
				case <-ch:
				case <-time.After(left):
				case <-ctx.Done():
					return protocol.Job{}, ctx.Err()
				}
				continue
			}
		}
		if err != nil {
			return protocol.Job{}, fmt.Errorf("worker: reading the job at %s: %w", w.j.L.Root, err)
		}
		if b == nil {
			continue // created between the two reads
		}
		spec, err := protocol.DecodeJob(b)
		if err != nil {
			return protocol.Job{}, fmt.Errorf("%s: %w", w.j.L.Root, err)
		}
		if spec.State == protocol.StateReady {
			return spec, nil
		}
		filling, _, fillerW, err := w.j.Conn().ExistsW(w.j.L.Filler())
		if err != nil {
			return protocol.Job{}, fmt.Errorf("worker: reading the job at %s: %w", w.j.L.Root, err)
		}
		if !filling {
			// Read the state again: the master may just have finished.
			if b2, _, err := w.j.Conn().Get(w.j.L.Root); err == nil {
				if s2, err := protocol.DecodeJob(b2); err == nil && s2.State == protocol.StateReady {
					return s2, nil
				}
			}
			return protocol.Job{}, fmt.Errorf("worker: the job at %s was left %s by a master that died while filling it; remove it with zkdog clear", w.j.L.Root, spec.State)
		}
		w.log.Debug("the job is still being filled; waiting", "state", spec.State)
		select {
		case <-ch:
		case <-fillerW:
		case <-ctx.Done():
			return protocol.Job{}, ctx.Err()
		}
	}
}

// watchAbort returns a channel closed once the master aborts the job; the
// reason is read first, since the master may remove the job right after.
func (w *Worker) watchAbort(ctx context.Context) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		for {
			ok, _, ch, err := w.j.Conn().ExistsW(w.j.L.Abort())
			if err == nil && ok {
				reason, _, _ := w.j.AbortReason()
				w.abortReason.Store(&reason)
				close(out)
				return
			}
			var retry <-chan time.Time
			if err != nil {
				// No watch is set: look again shortly.
				ch, retry = nil, time.After(retryPause)
			}
			select {
			case <-ctx.Done():
				return
			case <-ch:
				// Fired: the node was created, or the session was lost
				// (EventNotWatching); either way, look again.
			case <-retry:
			}
		}
	}()
	return out
}

// aborted says why the master aborted the job, once w.abort is closed.
func (w *Worker) aborted() string {
	if r := w.abortReason.Load(); r != nil && *r != "" {
		return *r
	}
	return "no reason given"
}

func (w *Worker) childEnv(c *job.Claim) []string {
	env := os.Environ()
	env = append(env,
		EnvRoot+"="+w.j.L.Root,
		EnvTimer+"="+w.timer.Path(),
		EnvID+"="+w.cfg.ID,
		EnvKickFile+"="+w.kickFile,
	)
	if c != nil {
		env = append(env,
			EnvItem+"="+string(c.Data),
			EnvIndex+"="+strconv.Itoa(c.Index),
			EnvAttempt+"="+strconv.Itoa(c.Attempt),
		)
	}
	return env
}

// Args replaces every {} in the command's arguments (not its name) with
// the item, the way find -exec and xargs -I do.
func Args(command []string, item string) []string {
	out := make([]string, len(command))
	out[0] = command[0]
	for i, a := range command[1:] {
		out[i+1] = strings.ReplaceAll(a, Placeholder, item)
	}
	return out
}

func (w *Worker) stdin(c *job.Claim) io.Reader {
	if w.cfg.ItemOnStdin && c != nil {
		return bytes.NewReader(append(append([]byte(nil), c.Data...), '\n'))
	}
	return w.cfg.Stdin
}
