package job

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// Listing is one job found by List.
type Listing struct {
	Root string
	// Spec is the job record; its State is "" when Problem says why it
	// could not be read.
	Spec    protocol.Job
	Problem string
	// Done, Failed and Workers are the live job's counters, or a sealed
	// job's from its summary.
	Done, Failed, Workers int
	// Owner names the identities that may change the job.
	Owner string
	// Created is when the root was made, Changed when its record was last
	// written (for a sealed job, when it was sealed); both by the
	// server's clock.
	Created, Changed time.Time
}

// Sealed reports whether the job has ended and been sealed.
func (l Listing) Sealed() bool { return l.Spec.State == protocol.StateFinished }

// listWalkers bounds the reads List has in flight.
const listWalkers = 16

// List finds the jobs at and below prefix: every node whose data is a job
// record, of any protocol version, is one and is not descended into. The
// server's own /zookeeper tree is skipped. A node the session may not read
// cannot be told from a job, and is listed with its Problem.
func List(ctx context.Context, conn *zk.Conn, prefix string) ([]Listing, error) {
	if prefix != "/" {
		if err := protocol.CheckRoot(prefix); err != nil {
			return nil, err
		}
	}
	var out []Listing
	level := []string{prefix}
	for len(level) > 0 {
		if err := context.Cause(ctx); ctx.Err() != nil {
			return nil, err
		}
		found := make([]*Listing, len(level))
		below := make([][]string, len(level))
		fns := make([]func() error, len(level))
		for i, p := range level {
			fns[i] = func() (err error) { found[i], below[i], err = visit(conn, p); return }
		}
		if err := parallel(listWalkers, fns...); err != nil {
			return nil, err
		}
		level = nil
		for i := range found {
			if found[i] != nil {
				out = append(out, *found[i])
			}
			level = append(level, below[i]...)
		}
	}
	slices.SortFunc(out, func(a, b Listing) int { return strings.Compare(a.Root, b.Root) })
	return out, nil
}

// visit reads node p: a job's listing, or the children to look at next.
func visit(conn *zk.Conn, p string) (*Listing, []string, error) {
	b, st, err := conn.Get(p)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil, nil, nil // gone meanwhile
	case errors.Is(err, zk.ErrNoAuth):
		l := &Listing{Root: p, Problem: "not readable with these credentials"}
		if acl, _, err := conn.GetACL(p); err == nil {
			l.Owner = Owners(acl)
		}
		return l, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if protocol.LooksLikeJob(b) {
		l, err := describe(conn, p, b, st)
		return l, nil, err
	}
	kids, _, err := conn.Children(p)
	if err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrNoAuth) {
		return nil, nil, fmt.Errorf("listing %s: %w", p, err)
	}
	var next []string
	for _, k := range kids {
		if c := path.Join(p, k); c != "/zookeeper" {
			next = append(next, c)
		}
	}
	return nil, next, nil
}

// describe is the listing of the job at root, whose record is b.
func describe(conn *zk.Conn, root string, b []byte, st *zk.Stat) (*Listing, error) {
	l := &Listing{Root: root, Created: time.UnixMilli(st.Ctime), Changed: time.UnixMilli(st.Mtime)}
	if acl, _, err := conn.GetACL(root); err == nil {
		l.Owner = Owners(acl)
	}
	spec, err := protocol.DecodeJob(b)
	if err != nil {
		l.Problem = err.Error()
		return l, nil
	}
	l.Spec = spec
	if spec.Summary != nil && spec.State == protocol.StateFinished {
		l.Workers = spec.Summary.Workers
		for o, n := range spec.Summary.Outcomes {
			if o != protocol.Unfinished {
				l.Done += n
			}
			if o.IsFailure() && o != protocol.Unfinished {
				l.Failed += n
			}
		}
	}
	if spec.State == protocol.StateFinished && spec.Summary != nil && !spec.Summary.Kept {
		return l, nil
	}
	lay := protocol.Layout{Root: root}
	counters := []struct {
		path string
		n    *int
	}{{lay.Done(), &l.Done}, {lay.Failed(), &l.Failed}, {lay.Workers(), &l.Workers}}
	fns := make([]func() error, len(counters))
	for i, c := range counters {
		fns[i] = func() error {
			ok, st, err := conn.Exists(c.path)
			if ok && err == nil {
				*c.n = int(st.Version)
			}
			return err
		}
	}
	if err := parallel(len(fns), fns...); err != nil {
		return nil, fmt.Errorf("reading the counters of %s: %w", root, err)
	}
	return l, nil
}
