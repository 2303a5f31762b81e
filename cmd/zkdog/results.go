package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/interrupt"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/master"
)

const flagOutcome = "outcome"

func resultsCommand() *cli.Command {
	return &cli.Command{
		Name:  "results",
		Usage: "List a job's items with their outcome, exit status, worker, times and error output.",
		Description: "Works on a live job and on a finished (sealed) one; a sealed job keeps only the items that did\n" +
			"not succeed. Items are numbered from 1 as in the items file (of the first job, for a re-run made\n" +
			"with zkdog init --from). Times are ZooKeeper's clock. Exit codes: 0 listed (even none); 2 bad\n" +
			"flags or no job at --root; 6 ZooKeeper unreachable.",
		Flags: append(commonFlags(),
			&cli.StringFlag{Name: flagOutcome, EnvVars: envs("ZKDOG_OUTCOME"),
				Usage: "Only the items whose outcome is in this comma-separated `LIST`: ok, failed, stalled, timeout, lost, unfinished (no result). Default: all."},
			&cli.BoolFlag{Name: flagJSON, Usage: "Print the rows as a JSON array."},
		),
		Action: resultsAction,
	}
}

func resultsAction(c *cli.Context) error {
	want, err := outcomesFlag(c, nil)
	if err != nil {
		return err
	}
	ctx, stop := interrupt.Context(c.Context)
	defer stop()
	_, sess, j, err := openJob(c, ctx, useRead)
	if err != nil {
		return err
	}
	defer sess.Close()
	rows, err := master.ReadResults(ctx, j, want)
	if err != nil {
		return err
	}
	if c.Bool(flagJSON) {
		if rows == nil {
			rows = []master.ResultRow{}
		}
		return writeJSON(rows, false)
	}
	if err := printRows(os.Stdout, rows); err != nil {
		return outputf("writing the output: %w", err)
	}
	return nil
}

// outcomesFlag reads --outcome; def when it is not given.
func outcomesFlag(c *cli.Context, def []protocol.Outcome) ([]protocol.Outcome, error) {
	if !c.IsSet(flagOutcome) {
		return def, nil
	}
	want, err := master.ParseOutcomes(c.String(flagOutcome))
	if err != nil {
		return nil, usagef("--%s: %v", flagOutcome, err)
	}
	return want, nil
}

// printRows writes a table, then for each item that did not succeed its
// reason and the end of its error output.
func printRows(w io.Writer, rows []master.ResultRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tOUTCOME\tEXIT\tATTEMPTS\tWORKER\tHOST\tSTART\tDURATION\tITEM")
	for _, r := range rows {
		start, exit, took := "-", "-", "-"
		if r.Start != nil {
			start = r.Start.Format(time.RFC3339)
			took = (time.Duration(r.DurationMS) * time.Millisecond).String()
		}
		if r.Outcome != protocol.Unfinished {
			exit = strconv.Itoa(r.Exit)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Index, r.Outcome, exit, r.Attempts, dash(r.Worker), dash(r.Host),
			start, took, protocol.Label(r.Bytes()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if r.Reason == "" && r.Stderr == "" && len(r.Earlier) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nitem %d %q, %s: %s\n", r.Index, protocol.Label(r.Bytes()), r.Outcome, dash(r.Reason))
		for _, line := range master.LastLines(r.Stderr, 5) {
			fmt.Fprintf(w, "    %s\n", line)
		}
		for _, a := range r.Earlier {
			fmt.Fprintf(w, "  attempt %d: %s, exit %d, worker %s on %s, %v: %s\n", a.Attempt, a.Outcome, a.Exit, dash(a.Worker), dash(a.Host),
				time.Duration(a.DurationMS)*time.Millisecond, dash(a.Reason))
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
