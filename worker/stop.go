package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zkdog/zkdog/internal/interrupt"
	"github.com/zkdog/zkdog/internal/job"
)

// stopWhenLost returns ctx cancelled also when the worker loses what it
// needs to work: the master aborted the job (ErrAborted), the timer is
// gone (heartbeat.ErrLost), or the session is lost or about to be
// (ErrEndangered). The cause says which, and decides what becomes of the
// item (causeOutcome). Every wait of the worker selects on this one
// context.
func (w *Worker) stopWhenLost(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		abort := w.watchAbort(ctx)
		select {
		case <-ctx.Done():
		case reason := <-abort:
			cancel(fmt.Errorf("%w: %s", ErrAborted, reason))
		case <-w.timer.Done():
			cancel(w.timer.Err())
		case <-w.sess.Endangered():
			cancel(fmt.Errorf("%w: %v", ErrEndangered, w.endangeredWhy()))
		}
	}()
	return ctx, func() { cancel(context.Canceled); <-done }
}

func (w *Worker) endangeredWhy() error {
	if err := w.sess.Err(); err != nil {
		return err
	}
	return errors.New("disconnected from ZooKeeper for so long that the server may expire the session before the command could be stopped")
}

// watchAbort sends the abort's reason once the master aborts the job.
func (w *Worker) watchAbort(ctx context.Context) <-chan string {
	out := make(chan string, 1)
	go func() {
		for {
			reason, aborted, changed, err := w.j.WatchAbort()
			if err == nil && aborted {
				out <- reason
				return
			}
			var retry <-chan time.Time
			if err != nil {
				// No watch is set: look again shortly.
				retry = time.After(job.RetryPause)
			}
			select {
			case <-ctx.Done():
				return
			case <-changed:
				// The node was created, or the session lost its watches;
				// either way, look again.
			case <-retry:
			}
		}
	}()
	return out
}

// interrupted returns the signal that stopped zkdog, 0 if none did.
func interrupted(ctx context.Context) int {
	return int(interrupt.Of(ctx))
}
