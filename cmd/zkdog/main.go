// Command zkdog coordinates batch array jobs through ZooKeeper: a master
// hands out work items and waits for every one to finish, and each task
// runs its command under `zkdog run`, which kicks a watchdog timer while
// the command makes progress. This package only wires flags to the
// packages that do the work, and decides the exit codes.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/creds"
	"github.com/zkdog/zkdog/internal/interrupt"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/master"
	"github.com/zkdog/zkdog/supervise"
	"github.com/zkdog/zkdog/worker"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

// Exit codes. README's table lists them; scripts branch on them. zkdog
// run passes its command's status through, so its own failures use the
// codes env(1) and timeout(1) use, which a command rarely does.
const (
	exitOK          = 0
	exitFailed      = 1 // master: some item failed; operator commands: refused, empty, or output failed
	exitUsage       = 2 // bad flags or input; nothing was changed
	exitHung        = 3 // a timer went un-kicked too long, or the job was aborted
	exitSyncTimeout = 4
	exitLost        = 5
	exitZooKeeper   = 6 // ZooKeeper unreachable, or the job removed under the command

	exitRunFailed     = 125 // zkdog run failed before its command started
	exitNotExecutable = 126
	exitNotFound      = 127
)

// endCodes maps how a job ended to the exit code of master and wait.
var endCodes = map[master.End]int{
	master.EndOK:          exitOK,
	master.EndFailed:      exitFailed,
	master.EndHung:        exitHung,
	master.EndSyncTimeout: exitSyncTimeout,
	master.EndLost:        exitLost,
}

// errUsage marks errors in the flags and arguments; errRefused, an
// operator command that declined; errOutput, a result that could not be
// written.
var (
	errUsage   = errors.New("usage")
	errRefused = errors.New("refused")
	errOutput  = errors.New("output")
)

// errorCodes maps errors to exit codes, first match wins: code for every
// command but run, runCode for run. An error matching none is
// ZooKeeper's (6), or for run a failure of zkdog's own (125).
var errorCodes = []struct {
	err           error
	code, runCode int
}{
	{errUsage, exitUsage, exitRunFailed},
	// Removed under the master: ZooKeeper's (or an operator's) doing,
	// not bad input, though the job errors below match too.
	{master.ErrRemoved, exitZooKeeper, exitRunFailed},
	{zkconn.ErrBadServers, exitUsage, exitRunFailed},
	{zkconn.ErrBadTLS, exitUsage, exitRunFailed},
	{protocol.ErrBadRoot, exitUsage, exitRunFailed},
	{job.ErrNoJob, exitUsage, exitRunFailed},
	{job.ErrIncomplete, exitUsage, exitRunFailed},
	{job.ErrAbandoned, exitUsage, exitRunFailed},
	{protocol.ErrNotAJob, exitUsage, exitRunFailed},
	{protocol.ErrUnknownVersion, exitUsage, exitRunFailed},
	{job.ErrExists, exitUsage, exitRunFailed},
	{job.ErrTooLarge, exitUsage, exitRunFailed},
	{master.ErrNoItems, exitUsage, exitRunFailed},
	{master.ErrNotReady, exitUsage, exitRunFailed},
	{worker.ErrSettings, exitUsage, exitRunFailed},
	{job.ErrNoAccess, exitUsage, exitRunFailed},
	{job.ErrUnsafe, exitUsage, exitRunFailed},
	{creds.ErrMissing, exitUsage, exitRunFailed},
	{creds.ErrInsecure, exitUsage, exitRunFailed},
	{creds.ErrBadFile, exitUsage, exitRunFailed},
	{job.ErrEmpty, exitFailed, exitOK},
	{errRefused, exitFailed, exitFailed},
	{errOutput, exitFailed, exitFailed},
	{supervise.ErrNotFound, exitNotFound, exitNotFound},
	{supervise.ErrNotExecutable, exitNotExecutable, exitNotExecutable},
}

// exitStatus is an action's exit code when there is nothing more to say:
// a job's end, a command's own status.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exitCode maps what an action returned to the process's exit code, and
// says whether err is worth printing.
func exitCode(err error, isRun bool) (int, bool) {
	var status exitStatus
	var sig *interrupt.Error
	switch {
	case err == nil:
		return exitOK, false
	case errors.As(err, &status):
		// A job's end or a command's own status, reported already.
		return int(status), false
	case errors.As(err, &sig):
		return 128 + int(sig.Signal), false
	}
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			if isRun {
				return e.runCode, true
			}
			return e.code, true
		}
	}
	if isRun {
		return exitRunFailed, true
	}
	return exitZooKeeper, true
}

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	app := newApp()
	err := app.Run(args)
	// Flags come after the subcommand's name, so it is the first word.
	isRun := len(args) > 1 && args[1] == "run"
	code, say := exitCode(err, isRun)
	if say {
		fmt.Fprintf(os.Stderr, "zkdog: %v\n", err)
	}
	return code
}

func newApp() *cli.App {
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintf(c.App.Writer, "zkdog %s (commit %s)\n", version, commit)
	}
	app := &cli.App{
		Name:    "zkdog",
		Usage:   "Coordinate batch array jobs through ZooKeeper, and catch workers that hang.",
		Version: version,
		Description: "A master fills a queue of work items in ZooKeeper and waits; each array task runs its command\n" +
			"under 'zkdog run', which takes an item, kicks a timer while the command makes progress, and records\n" +
			"the result. The master exits once every item has a result, or as soon as a timer goes un-kicked.",
		Commands: []*cli.Command{
			masterCommand(),
			initCommand(),
			waitCommand(),
			runCommand(),
			statusCommand(),
			timersCommand(),
			consumeCommand(),
			kickCommand(),
			clearCommand(),
			completionCommand(),
		},
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		// Exit codes are chosen in run, never inside the library.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
	}
	for _, c := range app.Commands {
		c.OnUsageError = usageError
	}
	return app
}

func usageError(c *cli.Context, err error, _ bool) error {
	return usagef("%v (see zkdog %s --help)", err, c.Command.Name)
}

// marked is an error that prints as itself and matches mark in
// errorCodes.
type marked struct {
	error
	mark error
}

func (m marked) Is(target error) bool { return target == m.mark }
func (m marked) Unwrap() error        { return m.error }

// usagef is an error in the flags or arguments.
func usagef(format string, args ...any) error {
	return marked{fmt.Errorf(format, args...), errUsage}
}

// refusedf is an operator command that declined, as asked to by its
// flags' absence (clear without --force while workers run).
func refusedf(format string, args ...any) error {
	return marked{fmt.Errorf(format, args...), errRefused}
}

// outputf is a result that could not be written.
func outputf(format string, args ...any) error {
	return marked{fmt.Errorf(format, args...), errOutput}
}
