package zkserver_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/zkserver"
)

// orphanEnv makes the test binary a helper process for
// TestJVMDiesWithParent: it starts a server in the directory named by the
// variable, prints the JVM's pid and waits to be killed.
const orphanEnv = "ZKSERVER_TEST_ORPHAN_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(orphanEnv); dir != "" {
		runOrphanHelper(dir)
		return
	}
	code := m.Run()
	// Every test stops what it starts; a JVM still running here would be
	// a leak that Pdeathsig hides in tests but not in long-lived programs.
	if kids := children(); code == 0 && len(kids) > 0 {
		fmt.Fprintf(os.Stderr, "child processes left running: %v\n", kids)
		code = 1
	}
	os.Exit(code)
}

func runOrphanHelper(dir string) {
	s, err := zkserver.Start(context.Background(), zkserver.Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("pid %d\n", s.Pid())
	select {}
}

// requireInstalled mirrors zktest's policy, which these tests cannot use
// without testing zkserver through itself.
func requireInstalled(t *testing.T) {
	t.Helper()
	if err := zkserver.Installed(); err != nil {
		if testing.Short() {
			t.Skip(err)
		}
		t.Fatal(err)
	}
}

// procState returns the state letter of a process (R, S, Z...) and its
// command name, or ok=false if there is no such process.
func procState(pid int) (state, comm string, ppid int, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", "", 0, false
	}
	// comm may contain spaces and parentheses; it ends at the last ')'.
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", "", 0, false
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 2 {
		return "", "", 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return fields[0], s[open+1 : end], ppid, true
}

// jvmAlive reports whether pid is a live (not zombie) java process; the
// name check guards against the pid having been recycled.
func jvmAlive(pid int) bool {
	state, comm, _, ok := procState(pid)
	return ok && comm == "java" && state != "Z" && state != "X"
}

// waitGone polls until pid is no longer a live JVM.
func waitGone(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for jvmAlive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("JVM %d still alive after %v", pid, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func children() []string {
	self := os.Getpid()
	var kids []string
	entries, _ := filepath.Glob("/proc/[0-9]*")
	for _, e := range entries {
		pid, err := strconv.Atoi(filepath.Base(e))
		if err != nil {
			continue
		}
		if state, comm, ppid, ok := procState(pid); ok && ppid == self && state != "Z" {
			kids = append(kids, fmt.Sprintf("%d (%s)", pid, comm))
		}
	}
	return kids
}

// readPid reads the helper's "pid N" line.
func readPid(t *testing.T, r *bufio.Reader) int {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
	if err != nil {
		t.Fatalf("helper printed %q", line)
	}
	return pid
}
