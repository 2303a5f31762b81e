package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/duration"
	"github.com/zkdog/zkdog/internal/interrupt"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/walltime"
	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/supervise"
	"github.com/zkdog/zkdog/worker"
)

const (
	flagStdin          = "stdin"
	flagNoQueue        = "no-queue"
	flagLoop           = "loop"
	flagUntilDone      = "until-done"
	flagID             = "id"
	flagKickInterval   = "kick-interval"
	flagProgress       = "progress"
	flagSampleInterval = "sample-interval"
	flagProgressFile   = "progress-file"
	flagKillOnStall    = "kill-on-stall"
	flagKillTimeout    = "kill-timeout"
	flagWaitForJob     = "wait-for-job"
	flagKeepStderr     = "keep-stderr"
	flagOnTerm         = "on-term"
	flagLifetime       = "lifetime"
	flagItemTime       = "item-time"

	envWorkerID       = "ZKDOG_WORKER_ID"
	envKickInterval   = "ZKDOG_KICK_INTERVAL"
	envProgress       = "ZKDOG_PROGRESS"
	envSampleInterval = "ZKDOG_SAMPLE_INTERVAL"
	envKillTimeout    = "ZKDOG_KILL_TIMEOUT"
	envWaitForJob     = "ZKDOG_WAIT_FOR_JOB"
	envKeepStderr     = "ZKDOG_KEEP_STDERR"
	envOnTerm         = "ZKDOG_ON_TERM"
	envLifetime       = "ZKDOG_LIFETIME"
	envItemTime       = "ZKDOG_ITEM_TIME"

	lifetimeAuto = "auto"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "Take a work item and run a command on it, kicking a timer while the command makes progress.",
		ArgsUsage: "-- COMMAND [ARGS...]",
		Description: "The item reaches the command as $ZKDOG_ITEM, in place of every {} argument, and on standard\n" +
			"input with --stdin. zkdog exits with the command's status (128+N if signal N killed it, a TERM\n" +
			"or INT from outside included); 124 if zkdog itself stopped it (its ZooKeeper session or timer\n" +
			"lost, the job aborted, --kill-on-stall, the job's --item-timeout), with a line saying why; 125\n" +
			"if zkdog failed before the command started; 126 if the command is not executable, 127 if not\n" +
			"found. The command is found and checked before anything is taken, so a misspelt one takes no\n" +
			"item (a program that a shell's -c script or a wrapper runs is found only when it runs); one that\n" +
			"stops starting mid-run gives its item back uncharged. With --loop the status is 0 if every command run succeeded, else that\n" +
			"of the last one that did not. An empty queue, or a job that is finished, is exit 0 without\n" +
			"running the command. An item whose command a TERM or INT from outside ended goes back to the\n" +
			"queue uncharged (--on-term), and no further item is taken; an attempt that ended as the job's\n" +
			"--retry-on names is handed out again while retries are left. With --lifetime, a task with too\n" +
			"little time left for another item exits as if the queue were empty.",
		Flags: append(commonFlags(),
			&cli.BoolFlag{Name: flagStdin, Usage: "Also write the item, and a newline, to the command's standard input."},
			&cli.BoolFlag{Name: flagNoQueue, Usage: "Take no item: run the command once under a timer (a watchdog only)."},
			&cli.BoolFlag{Name: flagLoop, Usage: "Take items one after another until the queue is empty, under one timer."},
			&cli.BoolFlag{Name: flagUntilDone,
				Usage: "With --loop, when the queue is empty wait until every item has a result, taking items that come back from vanished workers."},
			&cli.StringFlag{Name: flagID, EnvVars: envs(envWorkerID),
				Usage: "`NAME` of this worker in reports; default from the scheduler's job and array task ids, else host:pid."},
			withDefaultText(durationFlag(flagKickInterval, envKickInterval, 0,
				"Kick the timer at most this often, a `DURATION`; at most half the job's timer."), "a quarter of the job's timer"),
			&cli.StringFlag{Name: flagProgress, EnvVars: envs(envProgress), Value: "all",
				Usage: "What counts as progress, `KINDS` comma-separated: cpu, io, output, file, kick; all, or alive (kick while the command runs)."},
			withDefaultText(durationFlag(flagSampleInterval, envSampleInterval, 0,
				"How often (a `DURATION`) the command's process tree is sampled for progress; at most the kick interval."), "1s, or half the kick interval if shorter"),
			&cli.StringSliceFlag{Name: flagProgressFile, TakesFile: true,
				Usage: "A `FILE` whose modification time changing counts as progress (repeatable)."},
			&cli.BoolFlag{Name: flagKillOnStall,
				Usage: "Stop the command (TERM, grace, KILL) once it has made no progress for the job's timer, and record it as stalled."},
			durationFlag(flagKillTimeout, envKillTimeout, supervise.DefaultKillTimeout,
				"After TERM or INT reaches the command, how long (a `DURATION`) it gets before KILL."),
			durationFlag(flagWaitForJob, envWaitForJob, 0,
				"If the job does not exist yet, wait this `DURATION` for its master to create it; 0 fails at once."),
			&cli.IntFlag{Name: flagKeepStderr, EnvVars: envs(envKeepStderr), Value: protocol.DefaultStderrBytes,
				Usage: fmt.Sprintf("Keep the last `BYTES` of the command's standard error in a result that is not ok, with the item "+
					"(ok results keep neither); 0 keeps none, %d at most.", protocol.MaxStderrBytes)},
			&cli.StringFlag{Name: flagOnTerm, EnvVars: envs(envOnTerm), Value: string(worker.OnTermRequeue),
				Usage: "When a TERM or INT from outside (a time limit, preemption, scancel) ends the command, after its grace: " +
					"requeue hands the item out again, not charged against --retries; fail records it failed. `POLICY`: requeue or fail."},
			&cli.StringFlag{Name: flagLifetime, EnvVars: envs(envLifetime),
				Usage: "How long this task may run, a `DURATION`, or auto for the end of the batch allocation (Slurm, PBS); " +
					"no item is taken when less is left than an item is expected to need (--item-time), and zkdog exits 0."},
			withDefaultText(durationFlag(flagItemTime, envItemTime, 0,
				"What an item is expected to need, a `DURATION`, for --lifetime."),
				"the median of the job's items that succeeded, else of this worker's own"),
		),
		Action: runAction,
	}
}

func runAction(c *cli.Context) error {
	command := c.Args().Slice()
	if len(command) == 0 {
		return usagef("no command to run; give it after --, as in: zkdog run --%s /job -- ./work {}", flagRoot)
	}
	t, err := parseTarget(c)
	if err != nil {
		return err
	}
	cfg, err := workerConfig(c, command, t)
	if err != nil {
		return err
	}
	// Before any session, timer or item: a typo must not fail the queue.
	if err := worker.CheckCommand(command); err != nil {
		return err
	}
	ctx, stop := interrupt.Context(c.Context)
	defer stop()
	if c.String(flagLifetime) == lifetimeAuto {
		cfg.Deadline = allocationEnd(ctx, t.log)
	}
	// The command must be dead before the server can expire the session:
	// the session warns a kill timeout ahead (capped, see StopLeadFor).
	a, err := t.access(useWork, false)
	if err != nil {
		return err
	}
	sess, j, err := t.dial(ctx, a, useWork, true, zkconn.WithStopLead(cfg.KillTimeout))
	if err != nil {
		return err
	}
	defer sess.Close()
	res, err := worker.Run(ctx, sess, j, cfg)
	return runEnd(c, res, err)
}

// runEnd turns how the worker ended into the exit status, and says so
// where the status alone would mislead: a finished job is success with
// nothing run, and a command zkdog stopped is not the command's failure.
func runEnd(c *cli.Context, res worker.Result, err error) error {
	var fe *job.FinishedError
	switch {
	case errors.As(err, &fe):
		sayLast(c, slog.LevelInfo, fmt.Sprintf("nothing more to run: %v", fe), res.Status)
	case err != nil:
		return err
	case res.Stopped != nil:
		sayLast(c, slog.LevelError, fmt.Sprintf("stopped the command (exit %d): %v", res.Status, res.Stopped), res.Status)
	}
	return exitStatus(res.Status)
}

// sayLast prints zkdog's last line as an error that ends it would be
// printed: one "zkdog: " line, or a JSON object with --log-format json.
func sayLast(c *cli.Context, level slog.Level, msg string, code int) {
	if strings.EqualFold(c.String(flagLogFormat), "json") {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Log(c.Context, level, "zkdog: "+msg, "exit", code)
		return
	}
	fmt.Fprintf(os.Stderr, "zkdog: %s\n", msg)
}

// workerConfig checks run's own flags.
func workerConfig(c *cli.Context, command []string, t target) (worker.Config, error) {
	progress, err := supervise.ParseActivity(c.String(flagProgress))
	if err != nil {
		return worker.Config{}, usagef("--%s: %w", flagProgress, err)
	}
	if c.Bool(flagNoQueue) && (c.Bool(flagLoop) || c.Bool(flagStdin)) {
		return worker.Config{}, usagef("--%s takes no item, so --%s and --%s make no sense with it", flagNoQueue, flagLoop, flagStdin)
	}
	if c.Bool(flagUntilDone) && !c.Bool(flagLoop) {
		return worker.Config{}, usagef("--%s goes with --%s", flagUntilDone, flagLoop)
	}
	sample := durationOf(c, flagSampleInterval)
	if c.IsSet(flagSampleInterval) && sample < 10*time.Millisecond {
		return worker.Config{}, usagef("--%s %v is too short; give at least 10ms", flagSampleInterval, sample)
	}
	keep := c.Int(flagKeepStderr)
	if keep < 0 || keep > protocol.MaxStderrBytes {
		return worker.Config{}, usagef("--%s %d: give from 0 (keep none) to %d bytes, the most a result keeps", flagKeepStderr, keep, protocol.MaxStderrBytes)
	}
	onTerm, err := worker.ParseOnTerm(c.String(flagOnTerm))
	if err != nil {
		return worker.Config{}, usagef("--%s %q: give requeue (hand the item out again, uncharged) or fail", flagOnTerm, c.String(flagOnTerm))
	}
	deadline, err := lifetimeEnd(c.String(flagLifetime), time.Now())
	if err != nil {
		return worker.Config{}, err
	}
	itemTime := durationOf(c, flagItemTime)
	if itemTime < 0 {
		return worker.Config{}, usagef("--%s %v is negative; give how long an item is expected to take, such as 10m", flagItemTime, itemTime)
	}
	kill := durationOf(c, flagKillTimeout)
	if kill <= 0 {
		kill = supervise.DefaultKillTimeout
	}
	return worker.Config{
		Command:        command,
		ItemOnStdin:    c.Bool(flagStdin),
		NoQueue:        c.Bool(flagNoQueue),
		Loop:           c.Bool(flagLoop),
		UntilDone:      c.Bool(flagUntilDone),
		ID:             c.String(flagID),
		KickInterval:   durationOf(c, flagKickInterval),
		Progress:       progress,
		SampleInterval: sample,
		ProgressFiles:  c.StringSlice(flagProgressFile),
		KillOnStall:    c.Bool(flagKillOnStall),
		KillTimeout:    kill,
		WaitForJob:     durationOf(c, flagWaitForJob),
		KeepStderr:     keep,
		OnTerm:         onTerm,
		Deadline:       deadline,
		ItemTime:       itemTime,
		Stdin:          os.Stdin,
		Stdout:         os.Stdout,
		Stderr:         os.Stderr,
		Log:            t.log,
	}, nil
}

// lifetimeEnd reads --lifetime D as a deadline from now; auto is worked
// out once the signals are watched (allocationEnd), and "" is no limit.
func lifetimeEnd(s string, now time.Time) (time.Time, error) {
	if s == "" || s == lifetimeAuto {
		return time.Time{}, nil
	}
	d, err := duration.Parse(s)
	if err != nil || d <= 0 {
		return time.Time{}, usagef("--%s %q: give a duration such as 4h, or auto for the end of the batch allocation", flagLifetime, s)
	}
	return now.Add(d), nil
}

// allocationEnd is --lifetime auto: the batch allocation's end, or no
// limit, with one warning, when the scheduler cannot say.
func allocationEnd(ctx context.Context, log *slog.Logger) time.Time {
	end, source, err := walltime.End(ctx, walltime.Env{Getenv: os.Getenv})
	if err != nil {
		log.Warn(fmt.Sprintf("--%s %s: %v; no lifetime limit applies", flagLifetime, lifetimeAuto, err))
		return time.Time{}
	}
	log.Info("lifetime ends with the batch allocation", "end", end.Format(time.RFC3339), "left", time.Until(end).Round(time.Second), "from", source)
	return end
}
