package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/interrupt"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/tty"
	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/master"
)

const (
	flagItems       = "items"
	flagTimer       = "timer"
	flagSync        = "sync"
	flagSyncTimeout = "sync-timeout"
	flagKeep        = "keep"
	flagRetries     = "retries"
	flagJSON        = "json"
	flagExpect      = "expect-workers"
	flagPublicRead  = "public-read"
	flagRemove      = "remove"
	flagRetryOn     = "retry-on"
	flagNoRetryExit = "no-retry-exit"
	flagRetryDelay  = "retry-delay"
	flagMaxFailures = "max-failures"
	flagOnHang      = "on-hang"
	flagItemTimeout = "item-timeout"
	flagJoblog      = "joblog"
	flagFrom        = "from"
	flagFromJoblog  = "from-joblog"

	envItems       = "ZKDOG_ITEMS"
	envTimer       = "ZKDOG_TIMER_LIMIT"
	envSyncTimeout = "ZKDOG_SYNC_TIMEOUT"
	envRetries     = "ZKDOG_RETRIES"
	envExpect      = "ZKDOG_EXPECT_WORKERS"
	envJoblog      = "ZKDOG_JOBLOG"
	envRetryOn     = "ZKDOG_RETRY_ON"
	envNoRetryExit = "ZKDOG_NO_RETRY_EXIT"
	envRetryDelay  = "ZKDOG_RETRY_DELAY"
	envMaxFailures = "ZKDOG_MAX_FAILURES"
	envOnHang      = "ZKDOG_ON_HANG"
	envItemTimeout = "ZKDOG_ITEM_TIMEOUT"

	defaultTimer = 120 * time.Second
)

func masterCommand() *cli.Command {
	return &cli.Command{
		Name:  "master",
		Usage: "Create a job, fill its queue and wait until every item is done or a worker hangs.",
		Description: "zkdog master is zkdog init followed by zkdog wait.\n\n" + waitExitCodes +
			" 2 also means bad input: nothing was changed.",
		Flags: append(append(commonFlags(), createFlags()...), waitFlags()...),
		Action: func(c *cli.Context) error {
			return masterAction(c, true, true)
		},
	}
}

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "Create a job and fill its queue, then exit; wait for it with zkdog wait.",
		Description: "For jobs created before their tasks are submitted: zkdog init, then submit the array, then\n" +
			"zkdog wait in a dependent job. Exit codes: 0 created; 2 bad input or a job already there (nothing\n" +
			"changed); 6 ZooKeeper unreachable.",
		Flags: append(commonFlags(), createFlags()...),
		Action: func(c *cli.Context) error {
			return masterAction(c, true, false)
		},
	}
}

func waitCommand() *cli.Command {
	return &cli.Command{
		Name:  "wait",
		Usage: "Wait for an existing job until every item is done or a worker hangs.",
		Description: "Also the way to take over from a master that died: the job's state is all in ZooKeeper, and\n" +
			"items whose workers vanished meanwhile are found and handed out again.\n\n" + waitExitCodes,
		Flags: append(commonFlags(), waitFlags()...),
		Action: func(c *cli.Context) error {
			return masterAction(c, false, true)
		},
	}
}

const waitExitCodes = "Exit codes: 0 all items done; 1 some item did not succeed (failed, stalled, timeout), or\n" +
	"--max-failures was spent (the job was aborted); 2 bad flags; 3 a timer went un-kicked longer\n" +
	"than the job's timer (running workers are stopped); 4 no worker started within --sync-timeout; 5\n" +
	"items lost (their workers vanished more often than the retries allow); 6 ZooKeeper unreachable or\n" +
	"the job removed; 130 or 143 interrupted (the job is kept, so that workers go on)."

func createFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagItems, EnvVars: envs(envItems), TakesFile: true,
			Usage: "`FILE` with one work item per line, - for standard input; blank lines (empty, or only spaces and tabs) are skipped, and an item may not hold a NUL byte. Required, unless --no-queue or --from."},
		&cli.BoolFlag{Name: flagNoQueue,
			Usage: "Make a job without items, a watchdog only: its workers run with --no-queue."},
		&cli.StringFlag{Name: flagFrom,
			Usage: "Instead of --items, re-run the items of the job at `ROOT` (live or finished) whose outcome is in --outcome; each keeps its number."},
		&cli.StringFlag{Name: flagFromJoblog, TakesFile: true,
			Usage: "Instead of --items, re-run the items of a joblog `FILE` (zkdog wait --joblog) whose outcome is in --outcome."},
		&cli.StringFlag{Name: flagOutcome,
			Usage: "With --from or --from-joblog: the outcomes to re-run, a comma-separated `LIST` of ok, failed, stalled, lost, unfinished.", DefaultText: "all but ok"},
		durationFlag(flagTimer, envTimer, defaultTimer,
			"How long a worker's timer may go un-kicked before the worker counts as hung, a `DURATION`: seconds or a Go duration. Never less, in effect, than twice the worker's session timeout."),
		&cli.BoolFlag{Name: flagSync,
			Usage: "Create a start barrier; the first worker to start releases it, and the master waits for that."},
		&cli.IntFlag{Name: flagRetries, EnvVars: envs(envRetries), Value: 0,
			Usage: "How many more times (`N`) an item is handed out after its worker vanished without a result."},
		&cli.StringFlag{Name: flagRetryOn, EnvVars: envs(envRetryOn), Value: protocol.RetryVanished,
			Usage: "Which endings of an attempt are retried while --retries allows, a comma-separated `LIST`: vanished, stalled, timeout, signal, failed, and exit codes or ranges such as 75,137-140."},
		&cli.StringFlag{Name: flagNoRetryExit, EnvVars: envs(envNoRetryExit),
			Usage: "Exit `CODES` (such as 2,64-78) never retried, whatever --retry-on says."},
		withDefaultText(durationFlag(flagRetryDelay, envRetryDelay, 0,
			"Keep a retried item out of the queue for this `DURATION` (a full disk, a busy service: give it time)."), "0, at once"),
		&cli.StringFlag{Name: flagMaxFailures, EnvVars: envs(envMaxFailures),
			Usage: "Abort the job once `N` items (or P% of them) have a final result other than ok; running workers stop their commands.", DefaultText: "no limit"},
		&cli.StringFlag{Name: flagOnHang, EnvVars: envs(envOnHang), Value: protocol.OnHangAbort,
			Usage: "What a hung worker costs, `abort|stall`: abort stops every worker (exit 3); stall stops only its command, the item is stalled and the job goes on."},
		&cli.StringFlag{Name: flagItemTimeout, EnvVars: envs(envItemTimeout),
			Usage: "Stop an item's command after this `DURATION`, or P% of the median time of the items that succeeded (once ten have); the item's outcome is timeout.", DefaultText: "none"},
		&cli.BoolFlag{Name: flagPublicRead,
			Usage: "Let everyone read the job (zkdog status), never change it; without it, only the credentials' owner can read it."},
		&cli.IntFlag{Name: flagExpect, EnvVars: envs(envExpect), Value: 0, DefaultText: "one",
			Usage: "With --no-queue: the job is finished once `N` workers have come and gone."},
	}
}

func waitFlags() []cli.Flag {
	return []cli.Flag{
		withDefaultText(durationFlag(flagSyncTimeout, envSyncTimeout, 0,
			"If the job has a start barrier, give up (exit 4) if no worker starts within this `DURATION`; 0 waits for ever."), "0, for ever"),
		&cli.BoolFlag{Name: flagKeep,
			Usage: "At the end, keep the whole job tree in ZooKeeper (it is still marked finished), not only what did not succeed."},
		&cli.BoolFlag{Name: flagRemove,
			Usage: "At the end, remove the job entirely instead of sealing it: no record is left for zkdog results."},
		&cli.StringFlag{Name: flagJoblog, EnvVars: envs(envJoblog), TakesFile: true,
			Usage: "Append a tab-separated row per item to `FILE` as its result is recorded (README: The morning after)."},
		&cli.BoolFlag{Name: flagJSON,
			Usage: "Print the final report as JSON on standard output."},
	}
}

// masterAction creates the job (doCreate), waits for it (doWait), or both.
func masterAction(c *cli.Context, doCreate, doWait bool) error {
	if c.Args().Len() > 0 {
		return usagef("zkdog %s takes no arguments, got %q", c.Command.Name, c.Args().First())
	}
	t, err := parseTarget(c)
	if err != nil {
		return err
	}
	var spec master.Spec
	if doCreate {
		if spec, err = createSpec(c, t.log); err != nil {
			return err
		}
	}
	u := useWork
	if doCreate {
		u = useCreate
	}
	a, err := t.access(u, doCreate && c.Bool(flagPublicRead))
	if err != nil {
		return err
	}
	ctx, stop := interrupt.Context(c.Context)
	defer stop()
	sess, j, err := t.dial(ctx, a, u, false)
	if err != nil {
		return err
	}
	defer sess.Close()
	if doCreate && c.IsSet(flagFrom) {
		if spec, err = rerunFrom(c, ctx, sess, a, spec); err != nil {
			return err
		}
	}
	if doCreate {
		// A percentage counts the items, known only now for --from.
		if spec.Policy.MaxFailures, err = maxFailures(c, len(spec.Items)); err != nil {
			return err
		}
		if err := fill(c, ctx, t, j, spec); err != nil {
			return err
		}
	}
	if !doWait {
		return nil
	}
	return waitJob(c, ctx, t, j)
}

// fill creates the job, showing its progress on a terminal (or at
// intervals in a batch log). Interrupted, it removes what it wrote and
// returns the signal.
func fill(c *cli.Context, ctx context.Context, t target, j *job.Job, spec master.Spec) error {
	started := time.Now()
	progress := newProgress(c)
	err := master.Fill(ctx, j, spec, func(written, total int) {
		progress.Filled(written, total, time.Since(started))
	})
	progress.Done()
	if ctx.Err() != nil {
		t.log.Warn("interrupted while filling; the partial job was removed", "root", t.layout.Root)
		return context.Cause(ctx)
	}
	if err != nil {
		return err
	}
	t.log.Info("job created", "root", t.layout.Root, "items", len(spec.Items), "timer", spec.Timer, "in", time.Since(started).Round(time.Millisecond))
	return nil
}

// waitJob waits for the job, writes the joblog if asked, seals the job
// (or keeps or removes it), and prints the report.
func waitJob(c *cli.Context, ctx context.Context, t target, j *job.Job) error {
	if c.Bool(flagKeep) && c.Bool(flagRemove) {
		return usagef("--%s and --%s exclude each other", flagKeep, flagRemove)
	}
	spec, err := j.Spec()
	if err != nil {
		return err
	}
	jl, err := openJoblog(c)
	if err != nil {
		return err
	}
	if spec.State == protocol.StateFinished {
		return reportSealed(c, ctx, t, j, spec, jl)
	}
	followCtx, stopFollow := context.WithCancel(ctx)
	followed := make(chan error, 1)
	if jl != nil {
		go func() { followed <- jl.Follow(followCtx, j, spec) }()
	}
	progress := newProgress(c)
	report, err := master.Wait(ctx, j, master.WaitConfig{
		SyncTimeout: durationOf(c, flagSyncTimeout),
		Log:         t.log,
		OnStatus:    progress.Update,
	})
	progress.Done()
	stopFollow()
	if jl != nil {
		if ferr := <-followed; ferr != nil {
			t.log.Warn("the joblog stopped following the job", "err", ferr)
		}
	}
	if ctx.Err() != nil {
		closeJoblog(t, j, spec, jl, false)
		t.log.Warn("interrupted; the job stays in ZooKeeper and its workers go on; zkdog wait takes over", "root", t.layout.Root)
		return context.Cause(ctx)
	}
	if err != nil && report.End == "" {
		closeJoblog(t, j, spec, jl, false)
		return err
	}
	report.Exit = endCodes[report.End]
	// A job gone or out of reach (err with a report) has nothing to seal.
	closeJoblog(t, j, spec, jl, err == nil)
	if err == nil {
		endJob(c, ctx, t, j, report)
	}
	return printReport(c, t, report)
}

// endJob seals the job, or keeps or removes it as the flags say.
func endJob(c *cli.Context, ctx context.Context, t target, j *job.Job, report master.Report) {
	if c.Bool(flagRemove) {
		if err := j.Remove(); err != nil {
			t.log.Warn("could not remove the job", "err", err)
		}
		return
	}
	if _, err := master.Seal(ctx, j, report, c.Bool(flagKeep)); err != nil {
		t.log.Warn("could not seal the job; zkdog clear removes it", "err", err)
	}
}

func printReport(c *cli.Context, t target, report master.Report) error {
	if c.Bool(flagJSON) {
		if err := writeJSON(report, true); err != nil {
			t.log.Error("could not print the report", "err", err)
		}
	} else if jsonLogs(c) {
		t.log.Info("zkdog: the job ended", "report", report)
	} else {
		report.Print(tty.Stderr)
	}
	return exitStatus(report.Exit)
}

// jsonLogs: --log-format json, under which every line on standard error
// is a JSON object.
func jsonLogs(c *cli.Context) bool { return strings.EqualFold(c.String(flagLogFormat), "json") }

// newProgress is the master's progress line on standard error: none under
// --log-format json, whose lines are the log's own.
func newProgress(c *cli.Context) *master.Progress {
	if jsonLogs(c) {
		return master.NewProgress(io.Discard, false)
	}
	return master.NewProgress(tty.Stderr, isTerminal(os.Stderr))
}

// reportSealed is zkdog wait on a job that had already ended: its report
// from the summary, and its exit code.
func reportSealed(c *cli.Context, ctx context.Context, t target, j *job.Job, spec protocol.Job, jl *master.Joblog) error {
	closeJoblog(t, j, spec, jl, true)
	t.log.Info("the job had already ended", "root", t.layout.Root)
	if s := spec.Summary; s == nil || s.Outcomes == nil {
		// Its master died while sealing it: finish the seal, which is
		// safe to repeat, so that the summary counts.
		sum := protocol.Summary{End: string(master.EndFailed), Exit: exitFailed}
		if s != nil {
			sum = *s
		}
		var err error
		if sum, err = j.Seal(ctx, sum, sum.Kept); err != nil {
			return err
		}
		spec.Summary = &sum
	}
	report, err := master.SealedReport(ctx, j, spec)
	if err != nil {
		return err
	}
	return printReport(c, t, report)
}

// openJoblog opens --joblog, if given.
func openJoblog(c *cli.Context) (*master.Joblog, error) {
	if c.String(flagJoblog) == "" {
		return nil, nil
	}
	jl, err := master.OpenJoblog(c.String(flagJoblog))
	if err != nil {
		return nil, marked{err, errUsage}
	}
	return jl, nil
}

// closeJoblog writes the rows still missing (with the items left without
// a result, once the job has ended) and closes the joblog.
func closeJoblog(t target, j *job.Job, spec protocol.Job, jl *master.Joblog, ended bool) {
	if jl == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), joblogPatience)
	defer cancel()
	err := jl.CatchUp(ctx, j, spec)
	if ended && err == nil {
		err = jl.Finish(ctx, j, spec)
	}
	if cerr := jl.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.log.Warn("the joblog may lack rows; zkdog results lists them", "err", err)
	}
}

// joblogPatience bounds the joblog's last catch-up: a master interrupted
// or out of reach of ZooKeeper must still exit.
const joblogPatience = 30 * time.Second

// rerunFrom reads the items of the job --from names, once the session is
// open: the outcomes --outcome asks for (all but ok by default).
func rerunFrom(c *cli.Context, ctx context.Context, sess *zkconn.Session, a job.Access, spec master.Spec) (master.Spec, error) {
	want, err := outcomesFlag(c, master.NotOK())
	if err != nil {
		return spec, err
	}
	l, err := protocol.NewLayout(c.String(flagFrom))
	if err != nil {
		return spec, marked{fmt.Errorf("--%s: %w", flagFrom, err), errUsage}
	}
	old := job.New(sess.Conn(), l, job.WithAccess(a))
	if err := old.CheckAccess(false); err != nil {
		return spec, fmt.Errorf("--%s: %w", flagFrom, err)
	}
	rerun, err := master.RerunFromJob(ctx, old, want)
	if err != nil {
		return spec, fmt.Errorf("--%s: %w", flagFrom, err)
	}
	spec.Items, spec.Origins = rerun.Items, rerun.Origins
	return spec, nil
}

// largeItemsFile is the size from which reading the items is worth a
// line: about a second's reading.
const largeItemsFile = 64 << 20

// createSpec reads and checks everything a new job needs before ZooKeeper
// is touched, so that bad input changes nothing.
func createSpec(c *cli.Context, log *slog.Logger) (master.Spec, error) {
	limit := durationOf(c, flagTimer)
	if limit < 100*time.Millisecond {
		return master.Spec{}, usagef("--%s %v is too short; give at least 100ms (the default is %v)", flagTimer, limit, durationText(defaultTimer))
	}
	if c.Int(flagRetries) < 0 {
		return master.Spec{}, usagef("--%s %d is negative", flagRetries, c.Int(flagRetries))
	}
	if c.Int(flagExpect) < 0 {
		return master.Spec{}, usagef("--%s %d is negative", flagExpect, c.Int(flagExpect))
	}
	if err := checkQueueFlags(c); err != nil {
		return master.Spec{}, err
	}
	policy, err := policyFlags(c)
	if err != nil {
		return master.Spec{}, err
	}
	if _, err := maxFailures(c, 1); err != nil {
		return master.Spec{}, err
	}
	noteLimit(c, log, limit)
	spec := master.Spec{Timer: limit, Retries: c.Int(flagRetries), Sync: c.Bool(flagSync), Master: hostPid(),
		ExpectWorkers: c.Int(flagExpect), Policy: policy}
	switch {
	case c.Bool(flagNoQueue):
		return spec, nil
	case c.IsSet(flagFrom):
		// Read once the session is open (rerunFrom).
		if err := protocol.CheckRoot(c.String(flagFrom)); err != nil {
			return master.Spec{}, marked{fmt.Errorf("--%s: %w", flagFrom, err), errUsage}
		}
		spec.From = c.String(flagFrom)
		return spec, nil
	case c.IsSet(flagFromJoblog):
		want, err := outcomesFlag(c, master.NotOK())
		if err != nil {
			return master.Spec{}, err
		}
		rerun, err := master.RerunFromJoblog(c.String(flagFromJoblog), want)
		if err != nil {
			return master.Spec{}, marked{fmt.Errorf("--%s: %w", flagFromJoblog, err), errUsage}
		}
		spec.Items, spec.Origins, spec.From = rerun.Items, rerun.Origins, c.String(flagFromJoblog)
		return spec, nil
	}
	items, err := readItems(c.String(flagItems), log)
	if err != nil {
		return master.Spec{}, err
	}
	spec.Items = items
	return spec, nil
}

// checkQueueFlags asks for a job without items to be said so: a
// forgotten --items would otherwise make a watchdog whose workers are all
// refused.
func checkQueueFlags(c *cli.Context) error {
	var given []string
	for _, f := range []string{flagItems, flagNoQueue, flagFrom, flagFromJoblog} {
		if c.IsSet(f) {
			given = append(given, "--"+f)
		}
	}
	switch {
	case len(given) > 1:
		return usagef("%s exclude each other: a job's items come from one place, or it has none", strings.Join(given, " and "))
	case len(given) == 0:
		return usagef("give --%s FILE, or --%s for a job without items", flagItems, flagNoQueue)
	case !c.Bool(flagNoQueue) && c.Int(flagExpect) > 0:
		return usagef("--%s is for jobs with --%s: a job with items ends when every item has a result", flagExpect, flagNoQueue)
	case c.IsSet(flagOutcome) && !c.IsSet(flagFrom) && !c.IsSet(flagFromJoblog):
		return usagef("--%s is for --%s and --%s: it picks the items to re-run", flagOutcome, flagFrom, flagFromJoblog)
	}
	return nil
}

// noteLimit says what the timer's limit is in effect when --timer is
// shorter: a worker counts as hung only after twice its session timeout,
// since a worker killed outright keeps its timer that long.
func noteLimit(c *cli.Context, log *slog.Logger, limit time.Duration) {
	session := durationOf(c, flagSessionTimeout)
	if effective := (protocol.Timer{SessionMillis: session.Milliseconds()}).Limit(limit); effective > limit {
		log.Info("--"+flagTimer+" is shorter than twice the session timeout; a worker counts as hung after the longer of the two",
			"timer", limit, "session_timeout", session, "effective_limit", effective)
	}
}

func readItems(name string, log *slog.Logger) ([][]byte, error) {
	started := time.Now()
	if fi, err := os.Stat(name); err == nil && fi.Size() >= largeItemsFile {
		log.Info("reading and checking the items", "file", name, "MiB", fi.Size()>>20)
	}
	items, err := master.ReadItemsFile(name)
	if err != nil {
		// Whatever is wrong with the items is the caller's input.
		return nil, marked{fmt.Errorf("--%s: %w", flagItems, err), errUsage}
	}
	if time.Since(started) > time.Second {
		log.Info("items read", "items", len(items), "in", time.Since(started).Round(time.Millisecond))
	}
	return items, nil
}
