package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/interrupt"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
)

func jobsCommand() *cli.Command {
	return &cli.Command{
		Name:      "jobs",
		Usage:     "List the jobs under a prefix: state, items, done, failed, workers, age and owner.",
		ArgsUsage: "[PREFIX]",
		Description: "PREFIX is a ZooKeeper path (default /, every job on the ensemble); jobs are found at any depth\n" +
			"below it. A job is filling, ready, aborted or finished (sealed by its master). Ages are by this\n" +
			"host's clock against ZooKeeper's stamps. Exit codes: 0 listed (even none); 2 bad PREFIX; 6\n" +
			"ZooKeeper unreachable.",
		Flags:  append(commonFlags(), &cli.BoolFlag{Name: flagJSON, Usage: "Print the jobs as a JSON array."}),
		Action: jobsAction,
	}
}

// jobListing is a job as zkdog jobs shows it.
type jobListing struct {
	Root    string    `json:"root"`
	State   string    `json:"state"`
	Items   int       `json:"items"`
	Done    int       `json:"done"`
	Failed  int       `json:"failed"`
	Workers int       `json:"workers"`
	Created time.Time `json:"created"`
	AgeS    int64     `json:"age_s"`
	Owner   string    `json:"owner"`
	End     string    `json:"end,omitempty"`
	Exit    *int      `json:"exit,omitempty"`
	Problem string    `json:"problem,omitempty"`
}

func listingOf(l job.Listing, aborted bool, now time.Time) jobListing {
	out := jobListing{Root: l.Root, State: l.Spec.State, Items: l.Spec.Items, Done: l.Done, Failed: l.Failed,
		Workers: l.Workers, Created: l.Created.UTC(), AgeS: int64(now.Sub(l.Created).Seconds()), Owner: l.Owner, Problem: l.Problem}
	if aborted && l.Spec.State == protocol.StateReady {
		out.State = "aborted"
	}
	if s := l.Spec.Summary; s != nil && l.Sealed() {
		out.End, out.Exit = s.End, &s.Exit
	}
	if out.State == "" {
		out.State = "unreadable"
	}
	return out
}

func jobsAction(c *cli.Context) error {
	ctx, stop := interrupt.Context(c.Context)
	defer stop()
	p, err := openPrefix(c, ctx)
	if err != nil {
		return err
	}
	defer p.sess.Close()
	found, err := p.list(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	rows := make([]jobListing, 0, len(found))
	for _, l := range found {
		rows = append(rows, listingOf(l, isAborted(p.sess, l), now))
	}
	if c.Bool(flagJSON) {
		return writeJSON(rows, false)
	}
	if err := printJobs(os.Stdout, rows); err != nil {
		return outputf("writing the output: %w", err)
	}
	return nil
}

// isAborted: a live job whose master gave up has an abort node.
func isAborted(sess *zkconn.Session, l job.Listing) bool {
	if l.Spec.State != protocol.StateReady {
		return false
	}
	ok, _, err := sess.Conn().Exists(protocol.Layout{Root: l.Root}.Abort())
	return err == nil && ok
}

func printJobs(w io.Writer, rows []jobListing) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOT\tSTATE\tITEMS\tDONE\tFAILED\tWORKERS\tAGE\tOWNER")
	for _, r := range rows {
		state := r.State
		if r.End != "" {
			state = fmt.Sprintf("%s (%s, exit %d)", r.State, r.End, *r.Exit)
		}
		if r.Problem != "" {
			state += ": " + r.Problem
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", r.Root, state, r.Items, r.Done, r.Failed, r.Workers,
			(time.Duration(r.AgeS) * time.Second).String(), r.Owner)
	}
	return tw.Flush()
}

// prefixArg reads the PREFIX argument of the commands that look at many
// jobs: / when absent.
func prefixArg(c *cli.Context, required bool) (string, error) {
	switch {
	case c.Args().Len() > 1:
		return "", usagef("zkdog %s takes one PREFIX, got %q; flags go before it: zkdog %s --json /zkdog/$USER", c.Command.Name, c.Args().Slice(), c.Command.Name)
	case c.Args().Len() == 0 && required:
		return "", usagef("zkdog %s needs a PREFIX, the path the jobs are under, such as /zkdog/$USER", c.Command.Name)
	case c.Args().Len() == 0:
		return "/", nil
	}
	p := c.Args().First()
	if p == "/" {
		return p, nil
	}
	if err := protocol.CheckRoot(p); err != nil {
		return "", marked{fmt.Errorf("PREFIX: %w", err), errUsage}
	}
	return p, nil
}

// openPrefix connects for a command on every job under PREFIX. Each job
// is checked on its own; the session authenticates as the credentials
// (if any) say, to read private jobs of their owner.
func openPrefix(c *cli.Context, ctx context.Context) (prefixed, error) {
	prefix, err := prefixArg(c, c.Command.Name != "jobs")
	if err != nil {
		return prefixed{}, err
	}
	p := prefixed{prefix: prefix}
	if p.target, err = parseServerTarget(c, protocol.Layout{Root: prefix}); err != nil {
		return p, err
	}
	if p.access, err = p.target.access(useList, false); err != nil {
		return p, err
	}
	p.sess, _, err = p.target.dial(ctx, p.access, useList, false)
	return p, err
}

// prefixed is a session for the commands on every job under a prefix.
type prefixed struct {
	prefix string
	target target
	access job.Access
	sess   *zkconn.Session
}

// list finds the jobs under the prefix.
func (p prefixed) list(ctx context.Context) ([]job.Listing, error) {
	return job.List(ctx, p.sess.Conn(), p.prefix)
}
