//go:build linux

package supervise

import (
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

func parked() *relaySub {
	held.mu.Lock()
	defer held.mu.Unlock()
	return held.idle
}

// With signals held, the next child takes over the subscription of the
// one before, and real signals still reach it.
func TestHeldSubscriptionReused(t *testing.T) {
	defer HoldSignals()()
	cfg := Config{Signals: []os.Signal{syscall.SIGUSR2}}
	if e := waitDone(t, startSh(t, "exit 0", cfg)); !e.Success() {
		t.Fatalf("exit = %#v", e)
	}
	eventually(t, "the subscription parked", func() bool { return parked() != nil })
	first := parked()
	out := newOutput()
	cfg.Stdout = out
	c := startSh(t, `trap 'echo got-usr2; exit 0' USR2; sleep 1000 & echo $!; wait`, cfg)
	if p := parked(); p != nil {
		t.Fatal("the second child did not take the parked subscription")
	}
	waitAsleep(t, atoiT(t, out.lines(t, 1)[0]), "sleep")
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if e := waitDone(t, c); !e.Success() || !strings.Contains(out.String(), "got-usr2") {
		t.Fatalf("exit = %#v, output %q", e, out.String())
	}
	eventually(t, "the same subscription parked again", func() bool { return parked() == first })
}

// A signal that arrives while the subscription is parked, no child
// running, ends it and is sent again: it does what it would have done
// with nobody subscribed (here, reach the test's own listener again).
func TestParkedSignalSentAgain(t *testing.T) {
	release := HoldSignals()
	defer release()
	mine := make(chan os.Signal, 4)
	signal.Notify(mine, syscall.SIGUSR2)
	defer signal.Stop(mine)
	if e := waitDone(t, startSh(t, "exit 0", Config{Signals: []os.Signal{syscall.SIGUSR2}})); !e.Success() {
		t.Fatalf("exit = %#v", e)
	}
	eventually(t, "the subscription parked", func() bool { return parked() != nil })
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the parked subscription ended", func() bool { return parked() == nil })
	for range 2 { // the signal, and its copy sent again
		select {
		case <-mine:
		case <-time.After(guard):
			t.Fatal("the signal was not sent again")
		}
	}
}

// Releasing the hold ends the parked subscription.
func TestReleaseEndsParked(t *testing.T) {
	release := HoldSignals()
	if e := waitDone(t, startSh(t, "exit 0", Config{Signals: []os.Signal{syscall.SIGUSR2}})); !e.Success() {
		t.Fatalf("exit = %#v", e)
	}
	eventually(t, "the subscription parked", func() bool { return parked() != nil })
	release()
	release()
	if parked() != nil {
		t.Fatal("a subscription is still parked after the hold was released")
	}
}
