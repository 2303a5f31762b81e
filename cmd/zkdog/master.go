package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

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

	envItems       = "ZKDOG_ITEMS"
	envTimer       = "ZKDOG_TIMER_LIMIT"
	envSyncTimeout = "ZKDOG_SYNC_TIMEOUT"
	envRetries     = "ZKDOG_RETRIES"

	defaultTimer = 120 * time.Second
)

func masterCommand() *cli.Command {
	return &cli.Command{
		Name:  "master",
		Usage: "Create a job, fill its queue and wait until every item is done or a worker hangs.",
		Description: "Exit codes: 0 all items done; 1 some item failed; 2 bad input (nothing changed); 3 a timer\n" +
			"went un-kicked longer than --timer (running workers are stopped); 4 no worker started within\n" +
			"--sync-timeout; 5 items lost (their workers vanished more often than --retries allows); 6 ZooKeeper\n" +
			"unreachable; 130 or 143 interrupted (the job is kept, so that workers go on).",
		Flags: append(commonFlags(),
			&cli.StringFlag{Name: flagItems, EnvVars: envs(envItems), TakesFile: true,
				Usage: "File with one work item per line, - for standard input. Without it the job has no queue: workers run with --no-queue."},
			durationFlag(flagTimer, envTimer, defaultTimer,
				"How long a worker's timer may go un-kicked before the worker counts as hung. Seconds or a Go duration."),
			&cli.BoolFlag{Name: flagSync,
				Usage: "Create a start barrier and wait until the first worker releases it."},
			durationFlag(flagSyncTimeout, envSyncTimeout, 0,
				"With --sync, give up (exit 4) if no worker starts within this time; 0 waits for ever."),
			&cli.IntFlag{Name: flagRetries, EnvVars: envs(envRetries), Value: 0,
				Usage: "How many more times an item is handed out after its worker vanished without a result."},
			&cli.BoolFlag{Name: flagKeep,
				Usage: "Leave the job tree in ZooKeeper at the end, for inspection with zkdog status."},
			&cli.BoolFlag{Name: flagJSON,
				Usage: "Print the final report as JSON on standard output."},
		),
		OnUsageError: usageError(exitUsage),
		Action:       masterAction,
	}
}

func masterAction(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return exitWith(exitUsage, fmt.Errorf("master takes no arguments, got %q; give items with --%s FILE", c.Args().First(), flagItems))
	}
	t, err := parseTarget(c)
	if err != nil {
		return exitWith(exitUsage, err)
	}
	limit := durationOf(c, flagTimer)
	if limit < 100*time.Millisecond {
		return exitWith(exitUsage, fmt.Errorf("--%s %v is too short; give at least 100ms (the default is %v)", flagTimer, limit, defaultTimer))
	}
	if c.Int(flagRetries) < 0 {
		return exitWith(exitUsage, fmt.Errorf("--%s %d is negative", flagRetries, c.Int(flagRetries)))
	}
	spec := master.Spec{Timer: limit, Retries: c.Int(flagRetries), Sync: c.Bool(flagSync), Master: hostPid()}
	// Items are read and checked before ZooKeeper is touched, so that bad
	// input changes nothing.
	if name := c.String(flagItems); name != "" {
		if spec.Items, err = master.ReadItemsFile(name); err != nil {
			return exitWith(exitUsage, fmt.Errorf("--%s: %w", flagItems, err))
		}
		if err := job.CheckItems(spec.Items); err != nil {
			return exitWith(exitUsage, fmt.Errorf("--%s: %w", flagItems, err))
		}
	}

	ctx, caught, stop := interruptible(c.Context)
	defer stop()
	sess, j, err := t.dial(ctx)
	if err != nil {
		return exitWith(exitZooKeeper, err)
	}
	defer sess.Close()

	started := time.Now()
	if err := master.Create(j, spec); err != nil {
		if errors.Is(err, job.ErrExists) {
			return exitWith(exitUsage, err)
		}
		return exitWith(exitZooKeeper, err)
	}
	t.log.Info("job created", "root", t.layout.Root, "items", len(spec.Items), "timer", limit, "in", time.Since(started).Round(time.Millisecond))

	report, err := master.Wait(ctx, j, master.WaitConfig{SyncTimeout: durationOf(c, flagSyncTimeout), Log: t.log})
	if err != nil {
		if ctx.Err() != nil {
			t.log.Warn("interrupted; the job stays in ZooKeeper and its workers go on", "root", t.layout.Root)
			return exitWith(128+int(caught()), nil)
		}
		return exitWith(exitZooKeeper, err)
	}
	if !c.Bool(flagKeep) {
		if err := j.Remove(); err != nil {
			t.log.Warn("could not remove the job", "err", err)
		}
	}
	if err := printReport(c, report); err != nil {
		return exitWith(exitZooKeeper, err)
	}
	return exitWith(report.Exit, nil)
}

func printReport(c *cli.Context, r master.Report) error {
	if c.Bool(flagJSON) {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	r.Print(os.Stderr)
	return nil
}
