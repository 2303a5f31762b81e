// Package interrupt turns SIGINT and SIGTERM into the cancellation of a
// context, with the signal as its cause: one stop path for every command,
// whichever part of it is waiting when the signal comes.
package interrupt

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// Error is the cause of a context cancelled by a signal.
type Error struct{ Signal syscall.Signal }

func (e *Error) Error() string { return "interrupted by " + e.Signal.String() }

// Context returns a context cancelled, with an *Error cause, by the first
// SIGINT or SIGTERM. Signals keep arriving at other listeners (supervise
// relays them to the child); stop ends the listening.
func Context(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sigs:
			cancel(&Error{Signal: s.(syscall.Signal)})
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(sigs); cancel(context.Canceled) }
}

// Of returns the signal that cancelled ctx, 0 if a signal did not.
func Of(ctx context.Context) syscall.Signal {
	var e *Error
	if errors.As(context.Cause(ctx), &e) {
		return e.Signal
	}
	return 0
}
