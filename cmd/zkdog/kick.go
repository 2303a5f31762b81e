package main

import (
	"os"
	"path"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/worker"
)

const flagTimerName = "timer"

func kickCommand() *cli.Command {
	return &cli.Command{
		Name:  "kick",
		Usage: "Tell zkdog that the work is progressing.",
		Description: "Inside a command run by zkdog run it needs no flags: it touches the file named by\n" +
			"$ZKDOG_KICK_FILE, and zkdog run kicks its timer at its next sample (no ZooKeeper session is\n" +
			"opened). Outside, --timer NAME with --root kicks that timer in ZooKeeper directly; NAME is the\n" +
			"timer's name as zkdog timers lists it, or its full path as $ZKDOG_TIMER holds it.",
		Flags: append(commonFlags(),
			&cli.StringFlag{Name: flagTimerName, Usage: "The timer to kick, `NAME` as zkdog timers lists it (t-0000000003), or its full path ($ZKDOG_TIMER)."},
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
	// Checked before connecting; a bad --root is openJob's to report.
	if l, err := protocol.NewLayout(c.String(flagRoot)); err == nil && c.String(flagRoot) != "" {
		if name, err = timerName(l, name); err != nil {
			return err
		}
	}
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

// timerName is the child name of the timer --timer gives: a name as is,
// or a full path (what $ZKDOG_TIMER holds) if it is one of the job's.
func timerName(l protocol.Layout, given string) (string, error) {
	if !strings.Contains(given, "/") {
		return given, nil
	}
	dir, name := path.Split(path.Clean(given))
	if path.Clean(dir) != l.Timers() || name == "" {
		return "", usagef("--%s %s is not a timer of the job at %s, whose timers are in %s; give the timer's name (t-0000000003, as zkdog timers lists it) or its path there",
			flagTimerName, given, l.Root, l.Timers())
	}
	return name, nil
}
