package zkserver

import "syscall"

// sysProcAttr makes the JVM die with us. Pdeathsig covers every way the Go
// process can end (test timeout, panic, SIGKILL, os.Exit), none of which
// runs Stop, so no JVM is left holding ports and CPU on a CI machine. The
// kernel sends the signal when the *thread* that forked the child exits,
// not the process: launch keeps that thread alive for the child's lifetime.
//
// Setpgid moves the JVM out of our process group, so a Ctrl-C in a
// terminal reaches only us; we then stop it cleanly (zkserve) or it dies
// with us through Pdeathsig (tests).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
