package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/master"
)

const flagForce = "force"

func clearCommand() *cli.Command {
	return &cli.Command{
		Name:  "clear",
		Usage: "Remove a job from ZooKeeper.",
		Description: "Refuses while workers' timers are alive, unless --force: then the job is first marked aborted,\n" +
			"so that running workers stop their commands (TERM, grace, KILL) and take no more items. Only a\n" +
			"zkdog job is ever removed. Exit codes: 0 removed, or nothing there; 1 refused, workers still\n" +
			"running; 2 bad flags, or what is at --root is not a zkdog job; 6 ZooKeeper unreachable.",
		Flags: append(commonFlags(),
			&cli.BoolFlag{Name: flagForce, Usage: "Remove the job even while workers run, stopping them."},
			&cli.BoolFlag{Name: flagJSON, Usage: "Print what was done as JSON."}),
		OnUsageError: usageError(exitUsage),
		Action:       clearAction,
	}
}

func clearAction(c *cli.Context) error {
	t, sess, j, err := openJob(c, c.Context)
	if err != nil {
		return err
	}
	defer sess.Close()
	type outcome struct {
		Root    string `json:"root"`
		Removed bool   `json:"removed"`
		Stopped int    `json:"workers_stopped"`
	}
	s, err := master.ReadStatus(j)
	if errors.Is(err, job.ErrNoJob) {
		t.log.Info("no job there; nothing to clear", "root", t.layout.Root)
		return printJSON(c, outcome{Root: t.layout.Root})
	}
	if err != nil {
		return exitWith(jobErrorCode(err), err)
	}
	if s.Alive > 0 {
		if !c.Bool(flagForce) {
			return exitWith(1, fmt.Errorf("%d workers still run under %s (zkdog timers lists them); wait for them, or use --%s to stop them and remove the job",
				s.Alive, t.layout.Root, flagForce))
		}
		if err := j.Abort(fmt.Sprintf("cleared by zkdog clear --force (%s)", hostPid())); err != nil {
			return exitWith(exitZooKeeper, err)
		}
		t.log.Warn("job aborted; its workers stop their commands", "workers", s.Alive)
	}
	if err := j.Remove(); err != nil {
		return exitWith(exitZooKeeper, err)
	}
	t.log.Info("job removed", "root", t.layout.Root)
	return printJSON(c, outcome{Root: t.layout.Root, Removed: true, Stopped: s.Alive})
}
