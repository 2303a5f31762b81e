package main

import (
	"errors"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
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
	p, err := openPrefix(c, ctx)
	if err != nil {
		return err
	}
	defer p.sess.Close()
	found, err := p.list(ctx)
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-durationOf(c, flagOlderThan))
	var out []prunedJob
	for _, l := range found {
		if !l.Sealed() || endedAt(l).After(cutoff) {
			continue
		}
		r := removeSealed(p, l.Root)
		if r.Removed {
			p.target.log.Info("finished job removed", "root", l.Root)
		} else {
			p.target.log.Warn("finished job kept", "root", l.Root, "why", r.Why)
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		p.target.log.Info("no finished job old enough under the prefix", "prefix", p.prefix)
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

func removeSealed(p prefixed, root string) prunedJob {
	l, err := protocol.NewLayout(root)
	if err == nil {
		j := job.New(p.sess.Conn(), l, job.WithAccess(p.access))
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
