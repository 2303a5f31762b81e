//go:build unix && !linux

package supervise

import "syscall"

// No PR_SET_PDEATHSIG outside Linux: a child whose zkdog is SIGKILLed
// lives on.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// waitExited cannot wait without reaping here (package syscall has no
// waitid), so the group is swept right after the leader is reaped: see
// sweepOrphans for the (tiny) hazard that leaves.
func waitExited(int) bool { return false }

func groupHasLiveMembers(pgid int) bool { return groupExists(pgid) }
