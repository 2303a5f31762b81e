//go:build unix && !linux

package supervise

import "syscall"

// Elsewhere there is no subreaper to hold on to a descendant whose parent
// exits, so a stop reaches the child's process group only, and a Monitor
// sees only the group and what still descends from the leader.

func startChild(c *Child) error {
	if err := c.cmd.Start(); err != nil {
		return err
	}
	c.pid = c.cmd.Process.Pid
	return nil
}

func (c *Child) forget() {}

func (c *Child) signalOutsiders(...syscall.Signal) {}

func (c *Child) killTree() {}

func (c *Child) orphaned(bool) bool { return groupHasLiveMembers(c.pid) }

func claimed(root, pid int) bool { return false }
