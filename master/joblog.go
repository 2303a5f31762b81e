package master

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// joblogEvery bounds how often the joblog looks for new results: each look
// lists at least one bucket, and a row a second late costs nobody.
const joblogEvery = 250 * time.Millisecond

// Joblog appends a row to a file for every result as it is recorded, so
// that a master killed part way leaves a record of what it saw, and one
// taking over (zkdog wait) appends only what is missing.
type Joblog struct {
	f      *os.File
	w      *bufio.Writer
	name   string
	logged map[int]bool // origins (Index-1) with a row in the file
	// fresh finds the results recorded since the last look.
	fresh *newResults
	// seen marks the results (by index in the job) already read.
	seen map[int]bool
}

// OpenJoblog opens (or creates) the joblog at name for appending. Rows
// already in it are not written again.
func OpenJoblog(name string) (*Joblog, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--joblog: %w", err)
	}
	l := &Joblog{f: f, w: bufio.NewWriter(f), name: name, logged: map[int]bool{}, seen: map[int]bool{}}
	rows, err := ReadJoblog(f, name)
	switch {
	case errors.Is(err, ErrBadJoblog) && isEmpty(f):
		_, err = l.w.WriteString(JoblogHeader())
	case err == nil:
		for _, r := range rows {
			if r.Outcome != protocol.Unfinished {
				l.logged[r.Index-1] = true
			}
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("--joblog: %w", err)
	}
	return l, l.w.Flush()
}

func isEmpty(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Size() == 0
}

// Close flushes and closes the file.
func (l *Joblog) Close() error {
	err := l.w.Flush()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Follow writes rows as results are recorded until ctx is done (the
// caller then calls Finish). It reads the done counter at most every
// joblogEvery and lists buckets only while rows are missing.
func (l *Joblog) Follow(ctx context.Context, j *job.Job, spec protocol.Job) error {
	tick := time.NewTicker(joblogEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		tally, _, err := j.WatchTally()
		if err != nil {
			continue // the master says what is wrong with the job
		}
		if tally.Done > len(l.seen) {
			if err := l.scan(ctx, j, spec, tally.Done); err != nil && ctx.Err() == nil {
				return err
			}
		}
	}
}

// CatchUp writes a row for every result not yet in the file.
func (l *Joblog) CatchUp(ctx context.Context, j *job.Job, spec protocol.Job) error {
	return l.scan(ctx, j, spec, -1)
}

// Finish is the last catch-up, once the job has ended: it also writes a
// row for every item left without a result (outcome unfinished), so that
// a re-run from the joblog has them. A master taking over later replaces
// such a row if the item gets a result after all.
func (l *Joblog) Finish(ctx context.Context, j *job.Job, spec protocol.Job) error {
	if err := l.CatchUp(ctx, j, spec); err != nil || len(l.seen) >= spec.Items {
		return err
	}
	rows, err := j.Rows(ctx, func(o protocol.Outcome) bool { return o == protocol.Unfinished })
	if err != nil {
		return err
	}
	for _, r := range rows {
		for _, a := range rowOf(r).attempts() {
			if _, err := io.WriteString(l.w, a.TSV()); err != nil {
				return fmt.Errorf("--joblog %s: %w", l.name, err)
			}
		}
	}
	return l.w.Flush()
}

// scan lists the buckets not yet complete, newest first (where results
// land), until it has found want rows in all (every bucket when want <
// 0), and writes a row for each result found that the file lacks.
func (l *Joblog) scan(ctx context.Context, j *job.Job, spec protocol.Job, want int) error {
	if l.fresh == nil {
		l.fresh = newNewResults(spec.Items)
	}
	more := func() bool { return want < 0 || len(l.seen) < want }
	if err := l.fresh.walk(j, more, func(os []job.Outcome) error { return l.write(ctx, j, os) }); err != nil {
		return err
	}
	return l.w.Flush()
}

// write reads the rows of the outcomes not seen before, once each, and
// writes those the file lacks.
func (l *Joblog) write(ctx context.Context, j *job.Job, outcomes []job.Outcome) error {
	var fresh []job.Outcome
	for _, o := range outcomes {
		if !l.seen[o.Index] {
			fresh = append(fresh, o)
		}
	}
	if err := context.Cause(ctx); ctx.Err() != nil {
		return err
	}
	rows, err := j.RowsOf(fresh)
	if err != nil {
		return err
	}
	for _, r := range rows {
		l.seen[r.Index] = true
		if l.logged[r.Origin] {
			continue // written by an earlier master
		}
		l.logged[r.Origin] = true
		for _, a := range rowOf(r).attempts() {
			if _, err := io.WriteString(l.w, a.TSV()); err != nil {
				return fmt.Errorf("--joblog %s: %w", l.name, err)
			}
		}
	}
	return nil
}
