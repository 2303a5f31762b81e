package supervise

import (
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
)

// The relayed signals are subscribed to while a child runs and not
// otherwise, so that between children they do to the program what they
// would without supervise. Each subscription and its end, though, is a
// round trip per signal to the Go runtime's signal-mask thread, which for
// a loop over short commands costs more than the fork. HoldSignals lets
// such a loop keep one subscription from each child to the next: between
// two children it is parked, and a signal that arrives then ends it and
// is sent again to the program (see park), so that it does what it would
// have done unsubscribed. What a listener of the program's own (zkdog's
// TERM and INT) sees is that signal twice.

// held is the subscription parked between children.
var held struct {
	mu    sync.Mutex
	holds int
	idle  *relaySub
}

// relaySub is a subscription to the relayed signals.
type relaySub struct {
	ch    chan os.Signal
	catch []os.Signal // sorted
	// unpark ends the watch of a parked subscription, watched closed
	// once the watch has returned.
	unpark, watched chan struct{}
}

// HoldSignals keeps the subscription to the relayed signals from one
// child to the next until the returned function is called (once or
// more). It is for a caller that starts children one after another.
func HoldSignals() (release func()) {
	held.mu.Lock()
	held.holds++
	held.mu.Unlock()
	var once sync.Once
	return func() { once.Do(unhold) }
}

func unhold() {
	held.mu.Lock()
	held.holds--
	var r *relaySub
	if held.holds == 0 {
		r, held.idle = held.idle, nil
	}
	held.mu.Unlock()
	if r != nil {
		r.stopWatch()
		r.end(true)
	}
}

// subscribe returns a subscription to catch: the parked one if it is to
// the same signals, else a new one.
func subscribe(catch []os.Signal) *relaySub {
	held.mu.Lock()
	r := held.idle
	if r != nil && slices.Equal(r.catch, catch) {
		held.idle = nil
	} else {
		r = nil
	}
	held.mu.Unlock()
	if r != nil {
		r.stopWatch()
		return r
	}
	// Buffered so that a burst (say TERM right after CONT) is not lost
	// while the relaying goroutine is busy; signal delivery never blocks.
	r = &relaySub{ch: make(chan os.Signal, 16), catch: catch}
	signal.Notify(r.ch, catch...)
	return r
}

// release is done with the subscription for its child: it is parked
// while signals are held and none is parked yet, else ended.
func (r *relaySub) release() {
	unpark, watched := make(chan struct{}), make(chan struct{})
	held.mu.Lock()
	park := held.holds > 0 && held.idle == nil
	if park {
		held.idle = r
		r.unpark, r.watched = unpark, watched
	}
	held.mu.Unlock()
	if !park {
		r.end(false)
		return
	}
	go r.watch(unpark, watched)
}

// watch serves a parked subscription until it is taken again (unpark)
// or a signal arrives, which no child is there to get: the subscription
// ends and the signal is sent again, to do what it would have done had
// nobody been subscribed. A subscription taken in the meantime keeps the
// signal, for the child about to start, as a subscription made just
// before that child's fork would have.
func (r *relaySub) watch(unpark <-chan struct{}, watched chan<- struct{}) {
	defer close(watched)
	select {
	case <-unpark:
	case sig := <-r.ch:
		held.mu.Lock()
		mine := held.idle == r
		if mine {
			held.idle = nil
		}
		held.mu.Unlock()
		if !mine {
			select {
			case r.ch <- sig:
			default: // a burst filled the buffer meanwhile, as delivery would drop it
			}
			return
		}
		r.end(true)
		resend(sig)
	}
}

// stopWatch ends the watch of a subscription taken out of held.
func (r *relaySub) stopWatch() {
	close(r.unpark)
	<-r.watched
	r.unpark, r.watched = nil, nil
}

// end ends the subscription. What is left in its buffer is dropped, as
// with any subscription that ends, unless parked says no child was there
// for it: then it is sent again.
func (r *relaySub) end(parked bool) {
	signal.Stop(r.ch)
	for {
		select {
		case sig := <-r.ch:
			if parked {
				resend(sig)
			}
		default:
			return
		}
	}
}

func resend(sig os.Signal) {
	if s, ok := sig.(syscall.Signal); ok {
		_ = syscall.Kill(os.Getpid(), s)
	}
}
