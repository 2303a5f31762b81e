package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/interrupt"
	"github.com/zkdog/zkdog/internal/job"
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

	envItems       = "ZKDOG_ITEMS"
	envTimer       = "ZKDOG_TIMER_LIMIT"
	envSyncTimeout = "ZKDOG_SYNC_TIMEOUT"
	envRetries     = "ZKDOG_RETRIES"
	envExpect      = "ZKDOG_EXPECT_WORKERS"

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

const waitExitCodes = "Exit codes: 0 all items done; 1 some item failed; 2 bad flags; 3 a timer went un-kicked longer\n" +
	"than the job's timer (running workers are stopped); 4 no worker started within --sync-timeout; 5\n" +
	"items lost (their workers vanished more often than the retries allow); 6 ZooKeeper unreachable or\n" +
	"the job removed; 130 or 143 interrupted (the job is kept, so that workers go on)."

func createFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagItems, EnvVars: envs(envItems), TakesFile: true,
			Usage: "File with one work item per line, - for standard input. Without it the job has no queue: workers run with --no-queue."},
		durationFlag(flagTimer, envTimer, defaultTimer,
			"How long a worker's timer may go un-kicked before the worker counts as hung. Seconds or a Go duration."),
		&cli.BoolFlag{Name: flagSync,
			Usage: "Create a start barrier; the first worker to start releases it, and the master waits for that."},
		&cli.IntFlag{Name: flagRetries, EnvVars: envs(envRetries), Value: 0,
			Usage: "How many more times an item is handed out after its worker vanished without a result."},
		&cli.BoolFlag{Name: flagPublicRead,
			Usage: "Let everyone read the job (zkdog status), never change it; without it, only the credentials' owner can read it."},
		&cli.IntFlag{Name: flagExpect, EnvVars: envs(envExpect), Value: 0,
			Usage: "Without --items: the job is finished once this many workers have come and gone (default: one)."},
	}
}

func waitFlags() []cli.Flag {
	return []cli.Flag{
		durationFlag(flagSyncTimeout, envSyncTimeout, 0,
			"If the job has a start barrier, give up (exit 4) if no worker starts within this time; 0 waits for ever."),
		&cli.BoolFlag{Name: flagKeep,
			Usage: "Leave the job tree in ZooKeeper at the end, for inspection with zkdog status."},
		&cli.BoolFlag{Name: flagJSON,
			Usage: "Print the final report as JSON on standard output."},
	}
}

// masterAction creates the job (doCreate), waits for it (doWait), or both.
func masterAction(c *cli.Context, doCreate, doWait bool) error {
	if c.Args().Len() > 0 {
		return usagef("%s takes no arguments, got %q", c.Command.Name, c.Args().First())
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
	if doCreate {
		if err := fill(ctx, t, j, spec); err != nil {
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
func fill(ctx context.Context, t target, j *job.Job, spec master.Spec) error {
	started := time.Now()
	progress := master.NewProgress(os.Stderr, isTerminal(os.Stderr))
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

// waitJob waits for the job, removes it unless --keep, and prints the
// report.
func waitJob(c *cli.Context, ctx context.Context, t target, j *job.Job) error {
	progress := master.NewProgress(os.Stderr, isTerminal(os.Stderr))
	report, err := master.Wait(ctx, j, master.WaitConfig{
		SyncTimeout: durationOf(c, flagSyncTimeout),
		Log:         t.log,
		OnStatus:    progress.Update,
	})
	progress.Done()
	if ctx.Err() != nil {
		t.log.Warn("interrupted; the job stays in ZooKeeper and its workers go on; zkdog wait takes over", "root", t.layout.Root)
		return context.Cause(ctx)
	}
	if err != nil {
		return err
	}
	if !c.Bool(flagKeep) {
		if err := j.Remove(); err != nil {
			t.log.Warn("could not remove the job", "err", err)
		}
	}
	report.Exit = endCodes[report.End]
	if c.Bool(flagJSON) {
		if err := writeJSON(report, true); err != nil {
			t.log.Error("could not print the report", "err", err)
		}
	} else {
		report.Print(os.Stderr)
	}
	return exitStatus(report.Exit)
}

// largeItemsFile is the size from which reading the items is worth a
// line: about a second's reading.
const largeItemsFile = 64 << 20

// createSpec reads and checks everything a new job needs before ZooKeeper
// is touched, so that bad input changes nothing.
func createSpec(c *cli.Context, log *slog.Logger) (master.Spec, error) {
	limit := durationOf(c, flagTimer)
	if limit < 100*time.Millisecond {
		return master.Spec{}, usagef("--%s %v is too short; give at least 100ms (the default is %v)", flagTimer, limit, defaultTimer)
	}
	if c.Int(flagRetries) < 0 {
		return master.Spec{}, usagef("--%s %d is negative", flagRetries, c.Int(flagRetries))
	}
	if c.Int(flagExpect) < 0 {
		return master.Spec{}, usagef("--%s %d is negative", flagExpect, c.Int(flagExpect))
	}
	spec := master.Spec{Timer: limit, Retries: c.Int(flagRetries), Sync: c.Bool(flagSync), Master: hostPid(),
		ExpectWorkers: c.Int(flagExpect)}
	if name := c.String(flagItems); name != "" {
		if spec.ExpectWorkers > 0 {
			return master.Spec{}, usagef("--%s is for jobs without --%s: a job with items ends when every item has a result", flagExpect, flagItems)
		}
		started := time.Now()
		if fi, err := os.Stat(name); err == nil && fi.Size() >= largeItemsFile {
			log.Info("reading and checking the items", "file", name, "MiB", fi.Size()>>20)
		}
		items, err := master.ReadItemsFile(name)
		if err != nil {
			// Whatever is wrong with the items is the caller's input.
			return master.Spec{}, marked{fmt.Errorf("--%s: %w", flagItems, err), errUsage}
		}
		if time.Since(started) > time.Second {
			log.Info("items read", "items", len(items), "in", time.Since(started).Round(time.Millisecond))
		}
		spec.Items = items
	}
	return spec, nil
}
