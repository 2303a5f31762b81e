//go:build !linux

package zkserver

import "syscall"

// sysProcAttr has no portable way to tie the JVM's life to ours outside
// Linux; a JVM orphaned by a crash of the Go process must be killed by hand.
func sysProcAttr() *syscall.SysProcAttr { return nil }
