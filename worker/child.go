package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/supervise"
)

// recordPatience bounds how long a worker keeps retrying a ZooKeeper
// request through an outage. The session's own deadline ends it sooner if
// the session is lost, so this only matters for a server that answers
// with errors; past it the master accounts the item as vanished.
const recordPatience = time.Minute

// runOne runs the command on one claim (nil with NoQueue) and records the
// result. It returns the status zkdog reports for it, and why zkdog
// stopped it (the status is then ExitStopped), or a startError when it
// could not start, after giving the item back: it did not run, so it
// must cost no attempt.
func (w *Worker) runOne(ctx context.Context, c *job.Claim) (int, error) {
	status, why, settle := w.runItem(ctx, c, nil)
	settle()
	return status, why
}

// runItem is runOne but for the settling of the result, which it returns
// for the caller to do, at once or while the next command runs. started,
// if not nil, is called once the command has started, for what may be
// done while it runs; it is given the channel closed once it has ended.
func (w *Worker) runItem(ctx context.Context, c *job.Claim, started func(ended <-chan struct{})) (int, error, func()) {
	output := w.outputCounter()
	stderr := supervise.NewTail(w.cfg.KeepStderr)
	var limit time.Duration
	var limitWhy string
	if c != nil {
		limit, limitWhy = w.itemTimeout()
	}
	began := time.Now()
	child, err := w.startChild(c, output, stderr)
	if err != nil {
		w.log.Error("cannot run the command; its item is given back", "err", err)
		if c != nil {
			w.giveBack(*c)
		}
		return supervise.ExitCodeFor(err), w.cannotStart(c, err), func() {}
	}
	if started != nil {
		started(child.Done())
	}
	monitored := w.monitor(ctx, child, output)
	why, outcome := w.supervise(ctx, child, limit, limitWhy)
	monitored()
	exit := child.Exit()
	w.logExit(child, exit, began)
	if errors.Is(why, errCoordinationLost) {
		return ExitStopped, why, func() { w.abandon(c) }
	}
	took := time.Since(began)
	w.noteTook(took)
	w.noteRecent(took)
	res := resultOf(exit, why, outcome, took)
	if res.Outcome != protocol.OK && c != nil {
		res.Item, res.Stderr = c.Data, stderr.String()
	}
	settle := func() { w.settle(ctx, c, res, why) }
	if why != nil {
		return ExitStopped, why, settle
	}
	return exit.Status(), nil, settle
}

// errCoordinationLost marks a stop after which the worker records nothing.
var errCoordinationLost = errors.New("coordination lost")

// startError is a command that did not start, with what to do about it;
// it matches supervise's sentinels through its cause.
type startError struct{ error }

func (e startError) Unwrap() error { return e.error }

func didNotStart(err error) bool {
	var se startError
	return errors.As(err, &se)
}

func (w *Worker) cannotStart(c *job.Claim, err error) error {
	given := ""
	if c != nil {
		given = fmt.Sprintf("item %d was given back uncharged, and ", c.Index)
	}
	return startError{fmt.Errorf("%w%s; %sno more items are taken", err, remedy(err), given)}
}

func (w *Worker) outputCounter() *supervise.Counter {
	if w.cfg.Progress.Has(supervise.ActivityOutput) {
		return new(supervise.Counter)
	}
	return nil
}

func (w *Worker) startChild(c *job.Claim, output *supervise.Counter, stderr *supervise.Tail) (*supervise.Child, error) {
	item := ""
	if c != nil {
		item = string(c.Data)
	}
	args := Args(w.cfg.Command, item)
	child, err := supervise.Start(supervise.Config{
		Path: args[0], Args: args[1:], Env: w.childEnv(c),
		Stdin: w.stdin(c), Stdout: w.cfg.Stdout, Stderr: w.cfg.Stderr, Output: output, StderrTail: stderr,
		KillTimeout: w.cfg.KillTimeout,
		OnSignal: func(s os.Signal) {
			w.log.Info("signal relayed to the command", "signal", s)
		},
	})
	if err == nil {
		w.log.Debug("command started", "pid", child.Pid(), "args", args)
	}
	return child, err
}

// monitor samples the command's progress and kicks the timer on it, until
// the command exits or ctx is done. The returned function, called once
// the command has exited, returns once the sampling has stopped.
//
// A command that ends within one sample interval, the common case of a
// loop over small items, costs no goroutine, no monitor and no scan of
// /proc: only a timer, stopped before it fires.
func (w *Worker) monitor(ctx context.Context, child *supervise.Child, output *supervise.Counter) func() {
	done := make(chan struct{})
	t := time.AfterFunc(w.cfg.SampleInterval, func() {
		defer close(done)
		mctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			select {
			case <-child.Done():
			case <-mctx.Done():
			}
			stop()
		}()
		mon := supervise.NewMonitor(child.Pid(), supervise.MonitorConfig{
			Interval: w.cfg.SampleInterval,
			Kinds:    w.cfg.Progress,
			Files:    w.cfg.ProgressFiles,
			KickFile: w.kickFile,
			Output:   output,
		})
		_ = mon.Run(mctx, func(supervise.Activity) { w.timer.Progress() })
	})
	return func() {
		if !t.Stop() {
			<-done
		}
	}
}

// supervise waits for the command to exit, stopping it when ctx ends for
// a reason other than a signal (which supervise relays to it itself),
// when it has run for limit (if positive; limitWhy names the limit) or,
// with KillOnStall, when it stops making progress. It returns why the
// command was stopped (nil if it was not) and the outcome that goes with
// it.
func (w *Worker) supervise(ctx context.Context, child *supervise.Child, limit time.Duration, limitWhy string) (error, protocol.Outcome) {
	var stallCheck, timedOut <-chan time.Time
	if w.cfg.KillOnStall {
		t := time.NewTicker(min(w.spec.Timer()/8, time.Second))
		defer t.Stop()
		stallCheck = t.C
	}
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		timedOut = t.C
	}
	stopped := ctx.Done()
	for {
		select {
		case <-child.Done():
			return nil, protocol.Failed
		case <-stopped:
			stopped = nil
			if why, outcome := w.stopFor(ctx, child); why != nil {
				return w.waitStopped(child, why, outcome)
			}
		case <-timedOut:
			why := fmt.Errorf("ran longer than %s", limitWhy)
			w.log.Error("stopping the command", "reason", why, "pid", child.Pid())
			go child.Stop(context.Background())
			return w.waitStopped(child, why, protocol.Timeout)
		case <-stallCheck:
			if since := w.timer.SinceKick(); since > w.spec.Timer() {
				why := fmt.Errorf("no progress for %v, over the job's %v timer", since.Round(time.Millisecond), w.spec.Timer())
				w.log.Error("stopping the command", "reason", why, "pid", child.Pid())
				go child.Stop(context.Background())
				return w.waitStopped(child, why, protocol.Stalled)
			}
		}
	}
}

// stopFor stops the command for ctx's cause; nil for a signal, which
// supervise has relayed already, so the command's own status tells.
func (w *Worker) stopFor(ctx context.Context, child *supervise.Child) (error, protocol.Outcome) {
	cause := context.Cause(ctx)
	if interrupted(ctx) != 0 {
		return nil, protocol.Failed
	}
	w.log.Error("stopping the command", "reason", cause, "pid", child.Pid())
	switch {
	case errors.Is(cause, ErrAborted):
		go child.Stop(context.Background())
		return cause, protocol.Failed
	case errors.Is(cause, ErrEndangered):
		go child.StopWithin(context.Background(), w.endangeredGrace())
	default:
		go child.Stop(context.Background())
	}
	return fmt.Errorf("%w: %w; another worker may be given this item", errCoordinationLost, cause), protocol.Failed
}

// endangeredGrace is how long the command may take to exit on TERM when
// the session is about to be lost: it must be dead before the server can
// expire the session and hand the item to someone else, so KILL comes
// with a quarter of the time left for the kernel to end the processes.
// The time left is measured to the session's earliest possible expiry,
// which may be nearer than its stop lead when a silent partition was
// noticed late.
func (w *Worker) endangeredGrace() time.Duration {
	left := w.sess.StopLead()
	if at, ok := w.sess.EarliestExpiry(); ok {
		left = min(left, time.Until(at))
	}
	return max(left-left/4, 0)
}

func (w *Worker) waitStopped(child *supervise.Child, why error, o protocol.Outcome) (error, protocol.Outcome) {
	<-child.Done()
	return why, o
}

func resultOf(exit supervise.Exit, why error, o protocol.Outcome, took time.Duration) protocol.Result {
	res := protocol.Result{
		Outcome: protocol.OK, Exit: exit.Status(), Signal: int(exit.Signal),
		DurationMillis: took.Milliseconds(),
	}
	switch {
	case why != nil:
		res.Outcome, res.Reason = o, why.Error()
	case !exit.Success():
		res.Outcome, res.Reason = protocol.Failed, exit.String()
	}
	return res
}

func (w *Worker) logExit(child *supervise.Child, exit supervise.Exit, started time.Time) {
	w.log.Info("command finished", "status", exit.Status(), "exit", exit.String(), "duration", time.Since(started).Round(time.Millisecond))
	if exit.Orphans {
		// Left alone: a batch scheduler ends them with the task, and a
		// command may mean them to outlive it.
		w.log.Warn("the command left processes running", "pgid", child.Pid())
	}
	if exit.OutputCut {
		w.log.Warn("a process the command started kept its output open; the rest of that output was dropped")
	}
}

// giveBack returns an item taken but not started: no attempt was spent.
func (w *Worker) giveBack(c job.Claim) {
	ctx, cancel := w.patient()
	defer cancel()
	if err := w.j.Release(ctx, c); err != nil {
		w.log.Warn("could not give the item back; the master will find it", "item", c.Index+1, "err", err)
	}
}

// abandon drops a claim whose command was stopped because the worker's
// timer or session was lost under it: the item is no longer this
// worker's to account for, and the master charges and hands it out as it
// would for a worker that died.
func (w *Worker) abandon(c *job.Claim) {
	if c == nil {
		return
	}
	ctx, cancel := w.patient()
	defer cancel()
	if err := w.j.Abandon(ctx, *c); err != nil && !errors.Is(err, job.ErrLeaseLost) {
		w.log.Warn("could not drop the item; it is handed out again once this session ends", "item", c.Index+1, "err", err)
	}
}

// patient is the context of the requests that must outlive a stop (a
// result, a give-back): bounded by recordPatience, and by the session,
// whose loss makes them pointless.
func (w *Worker) patient() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), recordPatience)
	go func() {
		select {
		case <-w.sess.Lost():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// record writes the result, retrying through connection trouble for as
// long as the session holds; a retry that finds its own result recorded is
// success.
func (w *Worker) record(c *job.Claim, r protocol.Result) {
	if c == nil {
		return
	}
	r.ID, r.Host = w.cfg.ID, w.host
	ctx, cancel := w.patient()
	defer cancel()
	err := w.j.Record(ctx, *c, r)
	switch {
	case err == nil:
		w.log.Debug("result recorded", "item", c.Index+1, "outcome", r.Outcome)
	case errors.Is(err, job.ErrLeaseLost):
		w.log.Error("result not recorded: this worker no longer holds the item", "item", c.Index+1, "err", err)
	default:
		w.log.Error("result not recorded", "item", c.Index+1, "err", err)
	}
}
