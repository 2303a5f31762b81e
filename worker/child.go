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

// recordPatience bounds how long a finished worker keeps trying to record
// its result through a ZooKeeper outage. The session's own deadline ends
// it sooner if the session is lost, so this only matters for a server that
// answers with errors; past it the master accounts the item as vanished.
const recordPatience = time.Minute

// retryPause spaces out retries of a failed ZooKeeper request; the client
// reconnects meanwhile.
const retryPause = 200 * time.Millisecond

// runOne runs the command on one claim (nil with NoQueue) and records the
// result; it returns the status zkdog run should exit with.
func (w *Worker) runOne(ctx context.Context, c *job.Claim) int {
	if sig := w.stopping.Load(); sig != 0 && c != nil {
		// Asked to stop between taking the item and starting on it: the
		// item goes back untouched, with no attempt used.
		if err := w.j.Release(*c); err != nil {
			w.log.Warn("could not give the item back; the master will find it", "item", c.Index, "err", err)
		}
		return 128 + int(sig)
	}
	item := ""
	if c != nil {
		item = string(c.Data)
	}
	args := Args(w.cfg.Command, item)
	var output *supervise.Counter
	if w.cfg.Progress.Has(supervise.ActivityOutput) {
		output = new(supervise.Counter)
	}
	started := time.Now()
	child, err := supervise.Start(supervise.Config{
		Path: args[0], Args: args[1:], Env: w.childEnv(c),
		Stdin: w.stdin(c), Stdout: w.cfg.Stdout, Stderr: w.cfg.Stderr, Output: output,
		KillTimeout: w.cfg.KillTimeout,
		OnSignal: func(s os.Signal) {
			w.log.Info("signal relayed to the command", "signal", s)
		},
	})
	if err != nil {
		code := supervise.ExitCodeFor(err)
		w.log.Error("cannot run the command", "err", err)
		if c != nil {
			w.record(c, protocol.Result{Outcome: protocol.Failed, Exit: code, Reason: err.Error()})
		}
		return code
	}
	w.log.Debug("command started", "pid", child.Pid(), "args", args)

	mctx, stopMonitor := context.WithCancel(ctx)
	defer stopMonitor()
	mon := supervise.NewMonitor(child.Pid(), supervise.MonitorConfig{
		Interval: w.cfg.SampleInterval,
		Kinds:    w.cfg.Progress,
		Files:    w.cfg.ProgressFiles,
		KickFile: w.kickFile,
		Output:   output,
	})
	go func() {
		// A command that ends within one sample interval, the common case
		// of a loop over small items, never pays for a scan of /proc.
		select {
		case <-child.Done():
			return
		case <-mctx.Done():
			return
		case <-time.After(w.cfg.SampleInterval):
		}
		_ = mon.Run(mctx, func(supervise.Activity) { w.timer.Progress() })
	}()

	var stallCheck <-chan time.Time
	if w.cfg.KillOnStall {
		t := time.NewTicker(min(w.spec.Timer()/8, time.Second))
		defer t.Stop()
		stallCheck = t.C
	}
	reason, outcome := "", protocol.Failed
	stop := func(why string, o protocol.Outcome) {
		if reason != "" {
			return
		}
		reason, outcome = why, o
		w.log.Error("stopping the command", "reason", why, "pid", child.Pid())
		// Stop returns once the child has exited; run it aside so the
		// loop keeps watching.
		go child.Stop(context.Background())
	}
	abort, lost := w.abort, w.timer.Done()
wait:
	for {
		select {
		case <-child.Done():
			break wait
		case <-abort:
			abort = nil
			stop("the master aborted the job: "+w.aborted(), protocol.Failed)
		case <-lost:
			lost = nil
			stop(fmt.Sprintf("the timer is lost (%v); another worker may be given this item", w.timer.Err()), protocol.Failed)
		case <-stallCheck:
			if since := w.timer.SinceKick(); since > w.spec.Timer() {
				stallCheck = nil
				stop(fmt.Sprintf("no progress for %v, over the job's %v timer", since.Round(time.Millisecond), w.spec.Timer()), protocol.Stalled)
			}
		}
	}
	stopMonitor()
	exit := child.Exit()
	res := protocol.Result{
		Outcome: protocol.OK, Exit: exit.Status(), Signal: int(exit.Signal),
		DurationMillis: time.Since(started).Milliseconds(), Reason: reason,
	}
	switch {
	case reason != "":
		res.Outcome = outcome
	case !exit.Success():
		res.Outcome = protocol.Failed
		res.Reason = exit.String()
	}
	w.log.Info("command finished", "status", exit.Status(), "exit", exit.String(), "duration", time.Since(started).Round(time.Millisecond))
	if exit.Orphans {
		// Left alone: a batch scheduler ends them with the task, and a
		// command may mean them to outlive it.
		w.log.Warn("the command left processes of its group running", "pgid", child.Pid())
	}
	if exit.OutputCut {
		w.log.Warn("a process the command started kept its output open; the rest of that output was dropped")
	}
	if c != nil {
		w.record(c, res)
	}
	return exit.Status()
}

// record writes the result, retrying through connection trouble for as
// long as the session holds. A retry after a reply was lost finds the
// lease already gone; the result it wrote is then there.
func (w *Worker) record(c *job.Claim, r protocol.Result) {
	r.ID, r.Host, r.Timer = w.cfg.ID, w.host, w.timer.Name()
	deadline := time.Now().Add(recordPatience)
	for try := 0; ; try++ {
		err := w.j.Record(*c, r)
		if err == nil {
			w.log.Debug("result recorded", "item", c.Index, "outcome", r.Outcome)
			return
		}
		if errors.Is(err, job.ErrLeaseLost) {
			if try > 0 {
				if has, herr := w.j.HasResult(c.Index); herr == nil && has {
					return
				}
			}
			w.log.Error("result not recorded: this worker no longer holds the item", "item", c.Index, "err", err)
			return
		}
		if w.sess.Err() != nil || time.Now().After(deadline) {
			w.log.Error("result not recorded", "item", c.Index, "err", err)
			return
		}
		w.log.Warn("recording the result failed; retrying", "item", c.Index, "err", err)
		select {
		case <-w.sess.Lost():
		case <-time.After(retryPause):
		}
	}
}
