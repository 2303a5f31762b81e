package main

import (
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/worker"
)

const flagTimerName = "timer"

func kickCommand() *cli.Command {
	return &cli.Command{
		Name:  "kick",
		Usage: "Tell zkdog that the work is progressing.",
		Description: "Inside a command run by zkdog run it needs no flags: it touches the file named by\n" +
			"$ZKDOG_KICK_FILE, and zkdog run kicks its timer at its next sample (no ZooKeeper session is\n" +
			"opened). Outside, --timer NAME with --root kicks that timer in ZooKeeper directly.",
		Flags: append(commonFlags(),
			&cli.StringFlag{Name: flagTimerName, Usage: "The timer to kick, as zkdog timers lists it (t-0000000003)."},
			&cli.BoolFlag{Name: flagJSON, Usage: "Print what was kicked as JSON."}),
		Action: kickAction,
	}
}

func kickAction(c *cli.Context) error {
	if name := c.String(flagTimerName); name != "" {
		return kickRemote(c, name)
	}
	file := os.Getenv(worker.EnvKickFile)
	if file == "" {
		return usagef("not inside zkdog run ($%s is not set); give --timer NAME and --root to kick a timer by hand", worker.EnvKickFile)
	}
	now := time.Now()
	if err := os.Chtimes(file, now, now); err != nil {
		return usagef("kicking through %s: %w", file, err)
	}
	return printJSON(c, map[string]string{"kick_file": file})
}

func kickRemote(c *cli.Context, name string) error {
	_, sess, j, err := openJob(c, c.Context, useWork)
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := j.Kick(name); err != nil {
		return err
	}
	return printJSON(c, map[string]string{"timer": j.L.Timer(name)})
}
