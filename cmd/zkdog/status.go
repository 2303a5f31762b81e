package main

import (
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/interrupt"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/master"
)

const (
	flagWatch   = "watch"
	flagExpired = "expired"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "Show a job: items queued, running, done and failed; timers alive and expired.",
		Description: "Ages are measured against ZooKeeper's clock. A finished job is shown by how it ended.\n" +
			"Exit codes: 0 shown (a finished job too); 2 bad flags or no job at --root; 6 ZooKeeper unreachable.",
		Flags: append(commonFlags(),
			&cli.BoolFlag{Name: flagJSON, Usage: "Print the status as JSON."},
			durationFlag(flagWatch, "", 0, "Refresh every this often until interrupted; 0 shows it once."),
		),
		Action: statusAction,
	}
}

func statusAction(c *cli.Context) error {
	ctx, stop := interrupt.Context(c.Context)
	defer stop()
	_, sess, j, err := openJob(c, ctx, useRead)
	if err != nil {
		return err
	}
	defer sess.Close()
	every := durationOf(c, flagWatch)
	tty := isTerminal(os.Stdout)
	for {
		s, err := master.ReadStatus(j)
		if err != nil {
			return err
		}
		if c.Bool(flagJSON) {
			if err := printJSON(c, s); err != nil {
				return err
			}
		} else {
			if every > 0 && tty {
				fmt.Print("\033[H\033[2J") // a fresh screen per refresh, like watch(1)
			}
			s.Print(os.Stdout)
		}
		// A finished job changes no more: there is nothing to watch.
		if every <= 0 || s.State == protocol.StateFinished {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

func timersCommand() *cli.Command {
	return &cli.Command{
		Name:  "timers",
		Usage: "List the workers' timers and their ages (alive, expired).",
		Description: "A finished job has no timers. Exit codes: 0 listed (with --expired: 0 when none is expired, 1\n" +
			"when some are); 2 bad flags or no job at --root; 6 ZooKeeper unreachable.",
		Flags: append(commonFlags(),
			&cli.BoolFlag{Name: flagExpired, Usage: "List only the timers un-kicked longer than the job's timer; exit 1 if any."},
			&cli.BoolFlag{Name: flagJSON, Usage: "Print the timers as JSON."},
		),
		Action: timersAction,
	}
}

func timersAction(c *cli.Context) error {
	_, sess, j, err := openJob(c, c.Context, useRead)
	if err != nil {
		return err
	}
	defer sess.Close()
	s, err := master.ReadStatus(j)
	if err != nil {
		return err
	}
	timers := s.Timers
	if c.Bool(flagExpired) {
		timers = timers[:0]
		for _, tm := range s.Timers {
			if tm.Expired {
				timers = append(timers, tm)
			}
		}
	}
	if c.Bool(flagJSON) {
		if timers == nil {
			timers = []master.TimerStatus{}
		}
		if err := printJSON(c, timers); err != nil {
			return err
		}
	} else if len(timers) > 0 {
		master.PrintTimers(os.Stdout, timers)
	}
	if c.Bool(flagExpired) && len(timers) > 0 {
		return exitStatus(exitFailed)
	}
	return nil
}
