package bench

import "syscall"

// sysProcAttr makes a benchmark's children die with the driver (SIGKILL),
// so that an interrupted run leaves no worker behind, spinning on a job
// whose server is gone. zkdog passes the same on to its own child.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
