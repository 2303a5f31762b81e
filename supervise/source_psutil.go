//go:build unix

package supervise

import (
	"math"
	"strings"
	"syscall"

	"github.com/shirou/gopsutil/v4/process"
)

// psutil reads the process table through gopsutil: the portable source,
// used where there is no procfs reader. Its CPU times leave out reaped
// children (gopsutil does not expose them), so on these systems a
// short-lived process that falls between two samples goes unseen.
type psutil struct{}

func (psutil) pids(dst []int) ([]int, error) {
	pids, err := process.Pids()
	for _, p := range pids {
		dst = append(dst, int(p))
	}
	return dst, err
}

func (psutil) stat(pid int) (procStat, error) {
	// NewProcess would first check that the pid exists and read its start
	// time; every call below fails anyway if it does not.
	p := &process.Process{Pid: int32(pid)}
	ppid, err := p.Ppid()
	if err != nil {
		return procStat{}, err
	}
	// Some systems refuse getpgid across sessions; such a process can
	// still be a descendant, found by its parent.
	pgid, err := syscall.Getpgid(pid)
	if err != nil {
		pgid = -1
	}
	times, err := p.Times()
	if err != nil {
		return procStat{}, err
	}
	start, err := p.CreateTime()
	if err != nil {
		return procStat{}, err
	}
	status, err := p.Status()
	if err != nil {
		return procStat{}, err
	}
	zombie := len(status) > 0 && strings.EqualFold(status[0], process.Zombie)
	return procStat{
		ppid:   int(ppid),
		pgid:   pgid,
		start:  uint64(start),
		zombie: zombie,
		cpu:    uint64(math.Round((times.User + times.System) * 1e6)),
	}, nil
}

// ioBytes: on Linux gopsutil's ReadBytes/WriteBytes are rchar/wchar and
// DiskReadBytes/DiskWriteBytes are read_bytes/write_bytes. Not every
// system has I/O counters; where it has none, io is never reported.
func (psutil) ioBytes(pid int) (uint64, error) {
	p := &process.Process{Pid: int32(pid)}
	c, err := p.IOCounters()
	if err != nil {
		return 0, err
	}
	return c.ReadBytes + c.WriteBytes + c.DiskReadBytes + c.DiskWriteBytes, nil
}

// startSlack: gopsutil's create time is in milliseconds, from a boot time
// that inside a container it recomputes on every call from /proc/uptime
// and the clock, truncated to the second.
func (psutil) startSlack() uint64 { return 1000 }
