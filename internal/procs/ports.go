package procs

import (
	"fmt"
	"net"
	"sync"
)

// handedOut holds the ports given out by this process and not yet
// released. The kernel knows nothing of a port between our probe listener
// closing and a server binding it, so without this two servers started at
// once (parallel tests; a ZooKeeper and a Slurm cluster) could be given the
// same port. Other processes can still race us: callers retry when a
// server finds its port taken.
var (
	portsMu   sync.Mutex
	handedOut = map[int]bool{}
)

// AllocPorts returns n distinct free ports, probed by listening on network
// and address (port 0): "tcp", "127.0.0.1:0" for a server that binds
// loopback, "tcp4", ":0" for one that binds the wildcard address (a port
// used on another address must not be handed out). All probe listeners
// stay open until every port is chosen, so the kernel cannot return one
// twice. Ports picked by bind(0) are also the ones least likely to be
// taken by outgoing connections, which matters when a killed server is
// restarted on its old ports: since Linux 4.6 bind(0) and connect() draw
// ephemeral ports of opposite parity.
func AllocPorts(network, address string, n int) ([]int, error) {
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
			return nil, fmt.Errorf("procs: no free port among %d tried", len(held))
		}
		l, err := net.Listen(network, address)
		if err != nil {
			return nil, fmt.Errorf("procs: finding a free port: %w", err)
		}
		held = append(held, l)
		if port := l.Addr().(*net.TCPAddr).Port; !handedOut[port] {
			ports = append(ports, port)
		}
	}
	for _, p := range ports {
		handedOut[p] = true
	}
	return ports, nil
}

// ReleasePorts makes ports available to AllocPorts again.
func ReleasePorts(ports ...int) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for _, p := range ports {
		delete(handedOut, p)
	}
}
