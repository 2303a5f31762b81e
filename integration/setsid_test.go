package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// sleepingInOwnSession reports whether pid is a `sleep`, asleep, leading a
// session of its own: a descendant that setsid took out of the command's
// process group and session.
func sleepingInOwnSession(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return false
	}
	f := strings.Fields(s[close+1:]) // state, ppid, pgrp, session, ...
	if len(f) < 4 || s[open+1:close] != "sleep" || f[0] != "S" {
		return false
	}
	sid, err := strconv.Atoi(f[3])
	return err == nil && sid == pid
}

// TERM to zkdog run reaches the command's descendants that left its
// process group (setsid), not only the group: none of them outlives zkdog,
// not even one that ignores TERM.
func TestSetsidDescendantsStopped(t *testing.T) {
	root := rootFor(t)
	initJob(t, opts{}, root, 1, "--timer", "60s")
	pidFile := filepath.Join(t.TempDir(), "pids")
	w := start(t, opts{}, "run", "--root", root, "--kill-timeout", "30s", "--",
		"sh", "-c", `setsid sleep 1000 & echo $! >> "$1"; setsid sh -c 'trap "" TERM; exec sleep 1000' & echo $! >> "$1"; wait`, "sh", pidFile)
	pids := readPids(t, pidFile, 2)
	t.Cleanup(func() {
		for _, pid := range pids {
			if sleepingInOwnSession(pid) { // still ours: the test failed
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	waitFor(t, "the setsid'd sleeps", func() bool {
		return sleepingInOwnSession(pids[0]) && sleepingInOwnSession(pids[1])
	})
	w.signal(syscall.SIGTERM)
	// The shell dies of the TERM at once; the sleep that ignores it is
	// KILLed as the shell exits, well within the kill timeout.
	expectExit(t, w, 128+int(syscall.SIGTERM))
	waitFor(t, fmt.Sprintf("setsid'd descendants %v gone", pids), func() bool { return descendantsGone(pids) })
}
