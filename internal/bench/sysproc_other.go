//go:build !linux

package bench

import "syscall"

// sysProcAttr: only Linux can tie a child's life to its parent's; elsewhere
// an interrupted run relies on the context killing its children.
func sysProcAttr() *syscall.SysProcAttr { return nil }
