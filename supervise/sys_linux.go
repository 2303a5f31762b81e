package supervise

import (
	"syscall"
	"unsafe"
)

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// waitExited blocks until process pid has exited, without reaping it
// (waitid with WNOWAIT, as package os does internally), and reports
// whether it succeeded.
func waitExited(pid int) bool {
	const pPID = 1     // P_PID
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		return errno == 0
	}
}

// groupHasLiveMembers reports whether process group pgid has a member
// that is not a zombie. kill(-pgid, 0) would count zombies too, and an
// orphan that died is a zombie until init reaps it, which some
// containers' init never does.
func groupHasLiveMembers(pgid int) bool {
	// The usual case, a group whose every member has been reaped, costs
	// one system call; only a group that still exists is worth reading
	// all of /proc for.
	if !groupExists(pgid) {
		return false
	}
	src := newProcfs()
	pids, err := src.pids(nil)
	if err != nil {
		return groupExists(pgid)
	}
	for _, pid := range pids {
		if st, err := src.stat(pid); err == nil && st.pgid == pgid && !st.zombie {
			return true
		}
	}
	return false
}
