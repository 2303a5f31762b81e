package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/job"
)

const flagForce = "force"

func clearCommand() *cli.Command {
	return &cli.Command{
		Name:  "clear",
		Usage: "Remove a job from ZooKeeper.",
		Description: "Refuses while workers' timers are alive, unless --force: then the job is first marked aborted,\n" +
			"so that running workers stop their commands (TERM, grace, KILL) and take no more items. Only a\n" +
			"zkdog job is ever removed. Exit codes: 0 removed, or nothing there; 1 refused, workers still\n" +
			"running; 2 bad flags, or what is at --root is not a zkdog job; 6 ZooKeeper unreachable.\n\n" +
			"With --finished PREFIX it removes instead the finished (sealed) jobs under PREFIX that ended more\n" +
			"than --older-than ago, never a live one; jobs the credentials may not remove are passed over.",
		ArgsUsage: "[--root ROOT | --finished [--older-than D] PREFIX]",
		Flags: append(append(commonFlags(),
			&cli.BoolFlag{Name: flagForce, Usage: "Remove the job even while workers run, stopping them."},
			&cli.BoolFlag{Name: flagJSON, Usage: "Print what was done as JSON."}), pruneFlags()...),
		Action: clearAction,
	}
}

func clearAction(c *cli.Context) error {
	if c.Bool(flagFinished) {
		return clearFinished(c)
	}
	if c.IsSet(flagOlderThan) {
		return usagef("--%s is for --%s PREFIX: zkdog clear --root ROOT removes one job, whatever its age", flagOlderThan, flagFinished)
	}
	type outcome struct {
		Root    string `json:"root"`
		Removed bool   `json:"removed"`
		Stopped int    `json:"workers_stopped"`
		// Set when clear refused: a script reading the JSON learns why.
		Alive   int    `json:"workers_alive,omitempty"`
		Refused string `json:"refused,omitempty"`
	}
	// Only what decodes as a zkdog job is removed (openJob checks),
	// however much of it is left: a removal that was interrupted must not
	// make it unremovable.
	t, sess, j, err := openJob(c, c.Context, useWork)
	if errors.Is(err, job.ErrNoJob) {
		t.log.Info("no job there; nothing to clear", "root", t.layout.Root)
		return printJSON(c, outcome{Root: t.layout.Root})
	}
	if err != nil {
		return err
	}
	defer sess.Close()
	alive, err := j.LiveTimers()
	if err != nil {
		return err
	}
	if alive > 0 {
		if !c.Bool(flagForce) {
			err := refusedf("%d workers still run under %s (zkdog timers lists them); wait for them, or use --%s to stop them and remove the job",
				alive, t.layout.Root, flagForce)
			if jerr := printJSON(c, outcome{Root: t.layout.Root, Alive: alive, Refused: err.Error()}); jerr != nil {
				return jerr
			}
			return err
		}
		if err := j.Abort(fmt.Sprintf("cleared by zkdog clear --force (%s)", hostPid())); err != nil {
			return err
		}
		t.log.Warn("job aborted; its workers stop their commands", "workers", alive)
	}
	if err := j.Remove(); err != nil {
		return err
	}
	t.log.Info("job removed", "root", t.layout.Root)
	return printJSON(c, outcome{Root: t.layout.Root, Removed: true, Stopped: alive})
}
