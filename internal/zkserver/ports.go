package zkserver

import "github.com/zkdog/zkdog/internal/procs"

// ZooKeeper binds its client port to loopback (clientPortAddress) and its
// quorum ports to 127.0.0.1, so loopback is what is probed.
func allocPorts(n int) ([]int, error) { return procs.AllocPorts("tcp", "127.0.0.1:0", n) }

func releasePorts(ports []int) { procs.ReleasePorts(ports...) }
