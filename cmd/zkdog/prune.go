package main

import (
	"context"
	"errors"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
)

const (
	flagFinished  = "finished"
	flagOlderThan = "older-than"
)

func pruneFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: flagFinished,
			Usage: "Remove the finished (sealed) jobs under PREFIX, the argument, instead of the job at --root."},
		withDefaultText(durationFlag(flagOlderThan, "", 0,
			"With --finished: only the jobs that ended longer than this `DURATION` ago."), "0, any age"),
	}
}

// prunedJob is one sealed job clear --finished removed or passed over.
type prunedJob struct {
	Root    string `json:"root"`
	Removed bool   `json:"removed"`
	Why     string `json:"why,omitempty"`
}

// clearFinished removes the sealed jobs under PREFIX that ended more than
// --older-than ago. Live jobs are never touched; a sealed job the
// credentials may not remove is passed over with a line, since a shared
// prefix holds other people's jobs.
func clearFinished(c *cli.Context) error {
	if c.IsSet(flagRoot) && c.Args().Len() == 0 {
		return usagef("--%s takes a PREFIX argument, the path the jobs are under, not --%s", flagFinished, flagRoot)
	}
	ctx := c.Context
	prefix, sess, err := openPrefix(c, ctx)
	if err != nil {
		return err
	}
	defer sess.Close()
	found, err := job.List(ctx, sess.Conn(), prefix)
	if err != nil {
		return err
	}
	t, err := parseServerTarget(c, protocol.Layout{Root: prefix})
	if err != nil {
		return err
	}
	a, err := t.access(useList, false)
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-durationOf(c, flagOlderThan))
	var out []prunedJob
	for _, l := range found {
		if !l.Sealed() || endedAt(l).After(cutoff) {
			continue
		}
		p := removeSealed(ctx, sess, l.Root, a)
		if p.Removed {
			t.log.Info("finished job removed", "root", l.Root)
		} else {
			t.log.Warn("finished job kept", "root", l.Root, "why", p.Why)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		t.log.Info("no finished job old enough under the prefix", "prefix", prefix)
		out = []prunedJob{}
	}
	return printJSON(c, out)
}

// endedAt is when a sealed job ended.
func endedAt(l job.Listing) time.Time {
	if s := l.Spec.Summary; s != nil && s.EndedMillis > 0 {
		return time.UnixMilli(s.EndedMillis)
	}
	return l.Changed
}

func removeSealed(ctx context.Context, sess *zkconn.Session, root string, a job.Access) prunedJob {
	l, err := protocol.NewLayout(root)
	if err == nil {
		j := job.New(sess.Conn(), l, job.WithAccess(a))
		if err = j.CheckAccess(true); err == nil {
			err = j.Remove()
		}
	}
	switch {
	case err == nil:
		return prunedJob{Root: root, Removed: true}
	case errors.Is(err, job.ErrNoJob):
		return prunedJob{Root: root, Removed: true, Why: "already gone"}
	}
	return prunedJob{Root: root, Why: err.Error()}
}
