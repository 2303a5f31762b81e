package zkserver

import (
	"fmt"
	"net"
	"sync"
)

// handedOut holds the ports given to servers of this process that have not
// been stopped. The kernel knows nothing of a port between our probe
// listener closing and the JVM binding it, so without this two servers
// started concurrently by parallel tests could be given the same port.
// Other processes can still race us; Start retries on ErrPortInUse.
var (
	portsMu   sync.Mutex
	handedOut = map[int]bool{}
)

// allocPorts returns n distinct free loopback ports. All probe listeners
// stay open until every port is chosen so the kernel cannot return one
// twice. Ports picked by bind(0) are also the ones least likely to be taken
// by the outgoing connections of clients and peers, which matters when a
// killed server is restarted on its old ports: since Linux 4.6 bind(0) and
// connect() draw ephemeral ports of opposite parity.
func allocPorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()

	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for len(ports) < n {
		if len(held) > n+1000 {
			return nil, fmt.Errorf("zkserver: no free loopback port among %d tried", len(held))
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("zkserver: find a free port: %w", err)
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		if !handedOut[port] {
			ports = append(ports, port)
		}
	}
	for _, p := range ports {
		handedOut[p] = true
	}
	return ports, nil
}

func releasePorts(ports []int) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for _, p := range ports {
		delete(handedOut, p)
	}
}
