package bench

import (
	"errors"

	"golang.org/x/sys/unix"
)

// awaitExit waits for pid to exit without reaping it: the zombie keeps
// its /proc entry, whose utime and stime are then the process's whole
// own CPU, apart from that of the children it reaped (cutime, cstime).
func awaitExit(pid int) error {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
