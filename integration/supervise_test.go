package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// initJob creates a job with n items and no master waiting on it.
func initJob(t *testing.T, o opts, root string, n int, extra ...string) {
	t.Helper()
	args := append([]string{"init", "--root", root, "--items", writeFile(t, "items", lines(n, "item-%d"))}, extra...)
	expectExit(t, run(t, o, args...), 0)
}

// The command's exit status passes through zkdog run unchanged, signals as
// 128+N, and zkdog's own failures are 125, 126 and 127 as in env(1).
func TestExitCodes(t *testing.T) {
	root := rootFor(t)
	initJob(t, opts{}, root, 20, "--timer", "60s")
	notExec := writeFile(t, "not-exec", "#!/bin/sh\nexit 0\n")
	cases := []struct {
		name    string
		command []string
		want    int
	}{
		{"exit 0", []string{"sh", "-c", "exit 0"}, 0},
		{"exit 1", []string{"sh", "-c", "exit 1"}, 1},
		{"exit 7", []string{"sh", "-c", "exit 7"}, 7},
		{"exit 255", []string{"sh", "-c", "exit 255"}, 255},
		{"killed by signal", []string{"sh", "-c", "kill -USR1 $$"}, 128 + int(syscall.SIGUSR1)},
		{"not executable", []string{notExec}, exitNotExecutable},
		{"not found", []string{"no-such-command-zkdog"}, exitNotFound},
	}
	conn := connect(t, shared.Addr())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := run(t, opts{}, append([]string{"run", "--root", root, "--"}, c.command...)...)
			expectExit(t, p, c.want)
			if c.want == exitNotExecutable || c.want == exitNotFound {
				// Checked before anything is taken: no result to read
				// (run_command_test.go checks the queue is untouched).
				return
			}
			// The recorded result carries the same status.
			index := strings.TrimPrefix(lastItem(t, p), "item-")
			i, _ := strconv.Atoi(index)
			res := resultOf(t, conn, root, i)
			if res.Exit != c.want {
				t.Errorf("recorded exit %d, want %d (%+v)", res.Exit, c.want, res)
			}
		})
	}
	t.Run("zkdog fails before the command", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "ran")
		p := run(t, opts{zk: deadAddr(t)}, "run", "--root", root, "--session-timeout", "1s", "--", "touch", marker)
		expectExit(t, p, exitRunFailed)
		if _, err := os.Stat(marker); err == nil {
			t.Fatal("the command ran although zkdog could not reach ZooKeeper")
		}
	})
}

// lastItem is the item label zkdog run logged taking.
func lastItem(t *testing.T, p *proc) string {
	t.Helper()
	s := p.stderr.String()
	i := strings.LastIndex(s, "label=")
	if i < 0 {
		t.Fatalf("zkdog run did not log an item:\n%s", s)
	}
	return strings.Fields(s[i+len("label="):])[0]
}

// resultOf reads the recorded result of item index.
func resultOf(t *testing.T, conn *zk.Conn, root string, index int) protocol.Result {
	t.Helper()
	bucket := fmt.Sprintf("%s/results/%05d", root, protocol.Bucket(index))
	names, _, err := conn.Children(bucket)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("%010d.", index)
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			b, _, err := conn.Get(bucket + "/" + n)
			if err != nil {
				t.Fatal(err)
			}
			r, err := protocol.DecodeResult(b)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
	t.Fatalf("item %d has no result in %s: %v", index, bucket, names)
	return protocol.Result{}
}

// descendantsGone reports whether none of pids is alive (zombies count as
// gone: they only wait to be reaped by whoever inherited them).
func descendantsGone(pids []int) bool {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 && s[i+2] != 'Z' {
			return false
		}
	}
	return true
}

func readPids(t *testing.T, path string, n int) []int {
	t.Helper()
	var pids []int
	waitFor(t, fmt.Sprintf("%d pids in %s", n, path), func() bool {
		b, _ := os.ReadFile(path)
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return len(pids) >= n
	})
	return pids
}

// TERM to zkdog run reaches the command's whole process group; background
// grandchildren of a sh -c die with it, and zkdog exits 128+15.
func TestTermStopsTheWholeTree(t *testing.T) {
	root := rootFor(t)
	initJob(t, opts{}, root, 2, "--timer", "60s")
	pidFile := filepath.Join(t.TempDir(), "pids")
	w := start(t, opts{}, "run", "--root", root, "--kill-timeout", "5s", "--",
		"sh", "-c", `sleep 1000 & echo $! >> "$1"; sleep 1000 & echo $! >> "$1"; echo $$ >> "$1"; wait`, "sh", pidFile)
	pids := readPids(t, pidFile, 3)
	w.signal(syscall.SIGTERM)
	expectExit(t, w, 128+int(syscall.SIGTERM))
	if !descendantsGone(pids) {
		t.Fatalf("descendants %v outlived zkdog run", pids)
	}
}

// A command that traps TERM gets to clean up and exit 0 within the grace.
func TestTermLetsTheCommandCleanUp(t *testing.T) {
	root := rootFor(t)
	initJob(t, opts{}, root, 1, "--timer", "60s")
	dir := t.TempDir()
	ready, cleaned := filepath.Join(dir, "ready"), filepath.Join(dir, "cleaned")
	w := start(t, opts{}, "run", "--root", root, "--kill-timeout", "30s", "--",
		"sh", "-c", `trap 'sleep 0.3; echo done > "$2"; exit 0' TERM; touch "$1"; while :; do sleep 0.05; done`, "sh", ready, cleaned)
	waitFor(t, "the command's trap", func() bool { _, err := os.Stat(ready); return err == nil })
	w.signal(syscall.SIGTERM)
	expectExit(t, w, 0)
	if b, err := os.ReadFile(cleaned); err != nil || string(b) != "done\n" {
		t.Fatalf("the command's clean-up did not run: %q, %v", b, err)
	}
	res := resultOf(t, connect(t, shared.Addr()), root, 0)
	if res.Exit != 0 || res.Outcome != protocol.OK {
		t.Fatalf("recorded %+v, want exit 0", res)
	}
}

// Progress detection, one kind at a time, against a 2 s timer: a command
// that makes progress of the chosen kind runs for over twice the timer and
// the master reports success; one that makes none is reported expired.
func TestProgressDetection(t *testing.T) {
	binDir := filepath.Dir(zkdogBin)
	big := writeFile(t, "big", strings.Repeat("x", 4<<20))
	cases := []struct {
		name     string
		progress string
		script   string
		hung     bool
	}{
		{"cpu busy", "cpu", `end=$(($(date +%s)+5)); while [ $(date +%s) -lt $end ]; do :; done`, false},
		{"io busy", "io", `for i in $(seq 25); do cat "$BIG" > /dev/null; sleep 0.2; done`, false},
		{"prints every second", "output", `for i in 1 2 3 4 5; do echo "line $i"; sleep 1; done`, false},
		{"zkdog kick in a loop", "kick", `for i in $(seq 10); do zkdog kick; sleep 0.5; done`, false},
		{"busy grandchild, sleeping parent", "cpu", `sh -c 'end=$(($(date +%s)+5)); while [ $(date +%s) -lt $end ]; do :; done' & sleep 6`, false},
		{"touches a progress file", "file", `for i in $(seq 10); do touch "$PROGRESS"; sleep 0.5; done`, false},
		{"sleeps", "all", `sleep 1000`, true},
		{"blocked on a FIFO", "all", `mkfifo "$TMP/fifo" && cat "$TMP/fifo"`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root := rootFor(t)
			tmp := t.TempDir()
			progressFile := filepath.Join(tmp, "progress")
			// A 2 s session keeps the timer's limit (never less than twice
			// the worker's session timeout) at 4 s, within the 5 s the
			// progressing commands run: a kind of progress not seen would
			// be called hung.
			o := opts{env: []string{"PATH=" + binDir + ":" + os.Getenv("PATH"), "BIG=" + big, "TMP=" + tmp, "PROGRESS=" + progressFile,
				"ZKDOG_SESSION_TIMEOUT=2s"}}
			conn := connect(t, shared.Addr())
			m := start(t, o, "master", "--root", root, "--items", writeFile(t, "items", "x\n"), "--timer", "2s")
			waitJob(t, conn, root)
			w := start(t, o, "run", "--root", root, "--progress", c.progress, "--sample-interval", "200ms",
				"--progress-file", progressFile, "--", "sh", "-c", c.script)
			if c.hung {
				expectExit(t, m, exitHung)
				expectExit(t, w, exitStopped)
				return
			}
			expectExit(t, w, 0)
			expectExit(t, m, exitOK)
		})
	}
}

// With --kill-on-stall a worker stops a command that made no progress for
// the job's timer on its own, without a master, and records it stalled.
func TestKillOnStall(t *testing.T) {
	root := rootFor(t)
	initJob(t, opts{}, root, 1, "--timer", "1s")
	started := time.Now()
	w := run(t, opts{}, "run", "--root", root, "--kill-on-stall", "--sample-interval", "100ms", "--", "sleep", "1000")
	expectExit(t, w, exitStopped)
	t.Logf("stopped after %v", time.Since(started).Round(time.Millisecond))
	res := resultOf(t, connect(t, shared.Addr()), root, 0)
	if res.Outcome != protocol.Stalled || !strings.Contains(res.Reason, "no progress") {
		t.Fatalf("recorded %+v, want a stalled result", res)
	}
}
