// Command zkdog coordinates batch array jobs through ZooKeeper: a master
// hands out work items and waits for every one to finish, and each task
// runs its command under `zkdog run`, which kicks a watchdog timer while
// the command makes progress. This package only wires flags to the
// packages that do the work, and decides the exit codes.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"

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
	master.EndBudget:      exitFailed,
	master.EndRemoved:     exitZooKeeper,
	master.EndUnreachable: exitZooKeeper,
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
	{job.ErrNested, exitUsage, exitRunFailed},
	{master.ErrNothingToRerun, exitUsage, exitRunFailed},
	{master.ErrBadJoblog, exitUsage, exitRunFailed},
	{master.ErrBadOutcome, exitUsage, exitRunFailed},
	{job.ErrEmpty, exitFailed, exitOK},
	// A late task finds its job finished: nothing left to do, and
	// nothing for the scheduler to count as a failure.
	{job.ErrFinished, exitFailed, exitOK},
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
	// Before anything else: a shell asking for completions must never
	// reach an action, which would connect and run work.
	if words, ok := completionRequest(args); ok {
		complete(os.Stdout, newApp(), words)
		return exitOK
	}
	app := newApp()
	app.OnUsageError = rootUsageError(app, args)
	err := app.Run(args)
	// Flags come after the subcommand's name, so it is the first word.
	isRun := len(args) > 1 && args[1] == "run"
	code, say := exitCode(err, isRun)
	if say {
		printError(os.Stderr, args, err, code)
	}
	return code
}

func newApp() *cli.App {
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintf(c.App.Writer, "zkdog %s (commit %s)\n", version, commit)
	}
	cli.FlagStringer = flagStringer
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
			resultsCommand(),
			jobsCommand(),
			timersCommand(),
			consumeCommand(),
			kickCommand(),
			clearCommand(),
			completionCommand(),
			manCommand(),
		},
		// Completion is answered by complete, before the library sees
		// the arguments: its own would run the action.
		EnableBashCompletion: false,
		HideHelpCommand:      true,
		// Exit codes are chosen in run, never inside the library.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
		Action:         rootAction,
	}
	for _, c := range app.Commands {
		c.OnUsageError = usageError
		// "zkdog master help" would be a second way to say --help, and
		// completion would offer it after every command.
		c.HideHelpCommand = true
	}
	return app
}

// rootAction runs for "zkdog" alone, "zkdog help [COMMAND]" and a word
// that names no command.
func rootAction(c *cli.Context) error {
	if !c.Args().Present() {
		return cli.ShowAppHelp(c)
	}
	if c.Args().First() == "help" {
		if name := c.Args().Get(1); name != "" && c.App.Command(name) != nil {
			return cli.ShowCommandHelp(c, name)
		}
		return cli.ShowAppHelp(c)
	}
	return usagef("no such command %q; the commands are: %s (zkdog --help says more)",
		c.Args().First(), strings.Join(commandNames(c.App), ", "))
}

// commandNames are the commands a user may type, in help's order.
func commandNames(app *cli.App) []string {
	var names []string
	for _, c := range app.Commands {
		if !c.Hidden {
			names = append(names, c.Name)
		}
	}
	return names
}

func usageError(c *cli.Context, err error, _ bool) error {
	return usagef("%s (see zkdog %s --help)", dashed(err.Error()), c.Command.Name)
}

// rootUsageError handles a flag before the command's name, where only
// --help and --version are known: the fix is to move it.
func rootUsageError(app *cli.App, args []string) cli.OnUsageErrorFunc {
	return func(c *cli.Context, err error, _ bool) error {
		name := "COMMAND"
		for _, a := range args[1:] {
			if app.Command(a) != nil {
				name = a
				break
			}
		}
		flag := "--FLAG"
		if n := flagNameOf(err.Error()); n != "" {
			flag = "--" + n
		}
		return usagef("%s: flags go after the command, as in: zkdog %s %s ...", dashed(err.Error()), name, flag)
	}
}

// flagParserWords are the phrases after which Go's flag package names a
// flag with one dash; zkdog's flags are written with two.
var flagParserWords = regexp.MustCompile(`((?:not defined|needs an argument): |for flag |value "[^"]*" for )-([A-Za-z0-9])`)

// dashed rewrites a flag parser error to name flags as the help does.
func dashed(msg string) string {
	return flagParserWords.ReplaceAllString(msg, "$1--$2")
}

// flagNameOf is the flag a parser error is about, "" if none.
func flagNameOf(msg string) string {
	if m := flagInMessage.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

var flagInMessage = regexp.MustCompile(`\s-+([A-Za-z0-9][\w-]*)`)

// printError prints the error that ends zkdog: one line starting
// "zkdog: ", or with --log-format json one JSON object like every other
// line on standard error.
func printError(w io.Writer, args []string, err error, code int) {
	if strings.EqualFold(logFormatOf(args), "json") {
		slog.New(slog.NewJSONHandler(w, nil)).Error("zkdog: "+err.Error(), "exit", code)
		return
	}
	fmt.Fprintf(w, "zkdog: %v\n", err)
}

// logFormatOf is --log-format as the command line or the environment
// gives it; the error may come before the flags are parsed, or from
// their parsing.
func logFormatOf(args []string) string {
	format := os.Getenv(envLogFormat)
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != flagLogFormat {
			continue
		}
		if !hasValue && i+1 < len(args) {
			value = args[i+1]
		}
		format = value
	}
	return format
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
