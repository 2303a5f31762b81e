package job

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zkdog/zkdog/internal/protocol"
)

// AwaitReady waits until the job is ready to take items from and returns
// its settings. A job that has ended is a FinishedError. A job that does not exist is waited for up to absent,
// since it is usually a wrong --root; one being filled, for as long as its
// master lives (its filler says so). ErrAbandoned when that master died;
// protocol.ErrNotAJob when the root holds something else.
func (j *Job) AwaitReady(ctx context.Context, absent time.Duration) (protocol.Job, error) {
	giveUp := time.Now().Add(absent)
	synced := false
	for {
		spec, changed, err := j.readyOrWatch()
		if errors.Is(err, ErrNoJob) {
			if !synced {
				// The server this session reads from may not have seen
				// a job another session just created.
				if err := j.Sync(); err != nil {
					return protocol.Job{}, err
				}
				synced = true
				continue
			}
			left := time.Until(giveUp)
			if left <= 0 {
				return protocol.Job{}, fmt.Errorf("%w at %s: it was never created there, or it finished and was removed; check --root", ErrNoJob, j.L.Root)
			}
			if err := waitFor(ctx, changed, left); err != nil {
				return protocol.Job{}, err
			}
			continue
		}
		if err != nil || changed == nil {
			return spec, err
		}
		if err := waitFor(ctx, changed, 0); err != nil {
			return protocol.Job{}, err
		}
	}
}

// readyOrWatch reads the job once: its settings when ready (and a nil
// Watch); otherwise a Watch that fires when it may have become so.
func (j *Job) readyOrWatch() (protocol.Job, Watch, error) {
	ok, _, ch, err := j.conn.ExistsW(j.L.Root)
	if err != nil {
		return protocol.Job{}, nil, fmt.Errorf("reading %s: %w", j.L.Root, err)
	}
	if !ok {
		return protocol.Job{}, watchOf(ch), fmt.Errorf("%w at %s", ErrNoJob, j.L.Root)
	}
	spec, err := j.Spec()
	if err != nil || spec.State == protocol.StateReady {
		return spec, nil, err
	}
	if spec.State == protocol.StateFinished {
		return protocol.Job{}, nil, finishedErr(j.L.Root, spec)
	}
	filling, _, fch, err := j.conn.ExistsW(j.L.Filler())
	if err != nil {
		return protocol.Job{}, nil, fmt.Errorf("reading %s: %w", j.L.Filler(), err)
	}
	if filling {
		return spec, either(watchOf(ch), watchOf(fch)), nil
	}
	// The master may just have finished: the state and the filler
	// change in one transaction, after the root was read.
	if spec, err := j.Spec(); err != nil || spec.State == protocol.StateReady {
		return spec, nil, err
	}
	return protocol.Job{}, nil, fmt.Errorf("%w: the job at %s was left %s by a master that died while filling it; remove it with zkdog clear", ErrAbandoned, j.L.Root, spec.State)
}

// waitFor waits for w, or at most limit if limit > 0, or until ctx is
// done.
func waitFor(ctx context.Context, w Watch, limit time.Duration) error {
	var timeout <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-w:
	case <-timeout:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	return nil
}
