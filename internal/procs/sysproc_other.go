//go:build !linux

package procs

import "syscall"

// Outside Linux there is no portable way to tie a child's life to ours; a
// process orphaned by a crash must be killed by hand.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
