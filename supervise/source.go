package supervise

// procStat is what the Monitor, and the reaper on Linux, need of one
// process.
type procStat struct {
	ppid, pgid int
	sid        int    // session id; procfs only (psutil leaves it 0)
	start      uint64 // start time, in the source's units
	zombie     bool
	cpu        uint64 // user+system time (reaped children included where known), source's units
}

// procSource reads the process table. procfs (Linux) reads /proc
// directly; psutil goes through gopsutil and serves other systems.
type procSource interface {
	// pids appends the ids of all processes to dst.
	pids(dst []int) ([]int, error)
	stat(pid int) (procStat, error)
	// ioBytes returns a monotonic count of bytes read and written.
	ioBytes(pid int) (uint64, error)
	// startSlack is how far two start times of one process may differ.
	startSlack() uint64
}
