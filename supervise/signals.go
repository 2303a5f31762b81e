package supervise

import (
	"os"
	"os/signal"
	"slices"
	"syscall"
)

// DefaultSignals returns the signals relayed to the child unless
// Config.Signals says otherwise: those a batch system, a terminal or an
// operator sends to ask a job something (HUP, INT, QUIT, TERM, USR1, USR2,
// ALRM, WINCH, CONT, TSTP, XCPU).
//
// Left out, like tini leaves them out: SIGCHLD (about zkdog's own
// children), SIGKILL and SIGSTOP (cannot be caught), the synchronous
// faults (SEGV, BUS, FPE, ILL, TRAP, SYS, ABRT), SIGTTIN and SIGTTOU
// (about zkdog's own terminal access). Also left out: SIGURG (the Go
// runtime preempts goroutines with it, so zkdog receives a stream of
// them), SIGPROF and SIGVTALRM (zkdog's own profiling timers), SIGIO
// (zkdog's own descriptors), the real-time signals (used by C libraries'
// threading); and SIGPIPE and SIGXFSZ, which are caught but not relayed
// (see Start).
func DefaultSignals() []os.Signal {
	return []os.Signal{
		syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGALRM, syscall.SIGWINCH,
		syscall.SIGCONT, syscall.SIGTSTP, syscall.SIGXCPU,
	}
}

// absorbedSignals are caught while the child runs so that their default
// action (exit) does not take zkdog down before its child: a write of the
// passed-through output to a closed pipe or past RLIMIT_FSIZE then fails
// with EPIPE or EFBIG instead, and the copier reacts to that.
var absorbedSignals = []os.Signal{syscall.SIGPIPE, syscall.SIGXFSZ}

// catchSignals subscribes to the signals to relay. It returns the channel
// they arrive on (nil if none), the set to relay, and the function that
// ends the subscription. While signals are held (HoldSignals) the
// subscription to the relayed ones is one kept from the previous child.
func (c *Child) catchSignals(cfg Config) (<-chan os.Signal, map[os.Signal]bool, func()) {
	list := cfg.Signals
	if list == nil {
		list = DefaultSignals()
	}
	relay := make(map[os.Signal]bool, len(list))
	for _, s := range list {
		if _, ok := s.(syscall.Signal); ok && !signal.Ignored(s) {
			relay[s] = true
		}
	}
	if cfg.sigs != nil {
		return cfg.sigs, relay, func() {}
	}
	var absorbed []os.Signal
	for _, s := range absorbedSignals {
		if !relay[s] && !signal.Ignored(s) {
			absorbed = append(absorbed, s)
		}
	}
	var (
		ch    <-chan os.Signal
		stops []func()
	)
	if len(absorbed) > 0 {
		// Never relayed, so never held: caught only while a child runs.
		a := make(chan os.Signal, 1)
		signal.Notify(a, absorbed...)
		ch, stops = a, append(stops, func() { signal.Stop(a) })
	}
	if len(relay) > 0 {
		r := subscribe(sortedSignals(relay))
		ch, stops = r.ch, append(stops, r.release)
	}
	return ch, relay, func() {
		for _, stop := range stops {
			stop()
		}
	}
}

func sortedSignals(set map[os.Signal]bool) []os.Signal {
	out := make([]os.Signal, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b os.Signal) int { return int(a.(syscall.Signal)) - int(b.(syscall.Signal)) })
	return out
}

// forward relays signals until the child has exited.
func (c *Child) forward(sigs <-chan os.Signal, relay map[os.Signal]bool, stop func()) {
	defer stop()
	for {
		select {
		case <-c.done:
			return
		case sig := <-sigs:
			if !relay[sig] {
				continue
			}
			s := sig.(syscall.Signal)
			if s == syscall.SIGTERM || s == syscall.SIGINT {
				c.beginStop(s, true, c.killTimeout)
			} else {
				_ = c.Signal(s)
			}
			if c.onSignal != nil {
				c.onSignal(sig)
			}
		}
	}
}

// groupExists reports whether process group pgid has any member, zombies
// included. A group's id stays reserved while any member is left, so this
// cannot mistake a recycled pid for the group.
func groupExists(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || err == syscall.EPERM
}
