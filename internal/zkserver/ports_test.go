package zkserver

import (
	"errors"
	"net"
	"testing"
)

func TestAllocPorts(t *testing.T) {
	a, err := allocPorts(30)
	if err != nil {
		t.Fatal(err)
	}
	defer releasePorts(a)
	b, err := allocPorts(30)
	if err != nil {
		t.Fatal(err)
	}
	defer releasePorts(b)
	seen := map[int]bool{}
	for _, p := range append(a, b...) {
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

// TestPortInUse checks that a port taken between allocPorts and the JVM's
// bind is recognised, which is what makes Start retry.
func TestPortInUse(t *testing.T) {
	if err := Installed(); err != nil {
		if testing.Short() {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	s := &Server{
		cfg:   Config{}.withDefaults(),
		dir:   t.TempDir(),
		ready: []string{ModeStandalone},
		ports: []int{port},
		addr:  loopback(port),
	}
	if err := s.writeConfig(nil); err != nil {
		t.Fatal(err)
	}
	if err := s.start(t.Context()); !errors.Is(err, ErrPortInUse) || !errors.Is(err, ErrExited) {
		t.Fatalf("start on a taken port: %v; want ErrPortInUse and ErrExited", err)
	}
}
