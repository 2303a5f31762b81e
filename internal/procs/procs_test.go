package procs

import (
	"os/exec"
	"testing"
	"time"
)

func TestAllocPortsNeverRepeats(t *testing.T) {
	a, err := AllocPorts("tcp", "127.0.0.1:0", 50)
	if err != nil {
		t.Fatal(err)
	}
	b, err := AllocPorts("tcp4", ":0", 50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range append(a, b...) {
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	ReleasePorts(a...)
	ReleasePorts(b...)
	portsMu.Lock()
	defer portsMu.Unlock()
	if len(handedOut) != 0 {
		t.Fatalf("%d ports still held after release", len(handedOut))
	}
}

func TestLaunchAndStop(t *testing.T) {
	waited := make(chan struct{})
	p, err := Launch(exec.Command("sleep", "1000"), func() { close(waited) })
	if err != nil {
		t.Fatal(err)
	}
	if p.Exited() || p.Pid() <= 0 {
		t.Fatalf("just launched: exited %v, pid %d", p.Exited(), p.Pid())
	}
	// sleep dies of the SIGTERM, within the grace.
	p.Stop(time.Minute)
	select {
	case <-waited:
	default:
		t.Fatal("Stop returned before afterWait ran")
	}
	if !p.Exited() || p.Err() == nil {
		t.Fatalf("after Stop: exited %v, err %v; want exited by a signal", p.Exited(), p.Err())
	}
	p.Stop(time.Minute) // a second Stop is harmless
}

func TestLaunchFailure(t *testing.T) {
	if _, err := Launch(exec.Command("/nonexistent/zkdog-test"), nil); err == nil {
		t.Fatal("launching a missing program succeeded")
	}
}
