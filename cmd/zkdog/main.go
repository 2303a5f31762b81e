// Command zkdog coordinates batch array jobs through ZooKeeper: a master
// hands out work items and waits for every one to finish, and each task
// runs its command under `zkdog run`, which kicks a watchdog timer while
// the command makes progress. This package only wires flags to the
// packages that do the work.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	app := newApp()
	err := app.Run(args)
	if err == nil {
		return 0
	}
	var ce *codedError
	if errors.As(err, &ce) {
		if ce.err != nil {
			fmt.Fprintf(os.Stderr, "zkdog: %v\n", ce.err)
		}
		return ce.code
	}
	// Errors the flag parser raises before an action runs.
	fmt.Fprintf(os.Stderr, "zkdog: %v\n", err)
	return exitUsage
}

func newApp() *cli.App {
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintf(c.App.Writer, "zkdog %s (commit %s)\n", version, commit)
	}
	return &cli.App{
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
		// Exit codes are chosen in main, never inside the library.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError(exitUsage),
	}
}

// Exit codes shared by the commands other than run (whose own codes are in
// run.go). The master's job outcomes are in package master.
const (
	exitUsage     = 2
	exitZooKeeper = 6
)

// codedError carries the process exit code from an action to main.
type codedError struct {
	code int
	err  error // nil: the action already said everything
}

func (e *codedError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *codedError) Unwrap() error { return e.err }

func exitWith(code int, err error) error { return &codedError{code: code, err: err} }

func usageError(code int) cli.OnUsageErrorFunc {
	return func(c *cli.Context, err error, _ bool) error {
		return exitWith(code, fmt.Errorf("%v (see zkdog %s --help)", err, c.Command.Name))
	}
}
