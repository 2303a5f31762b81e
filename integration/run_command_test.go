package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// runJobStatus is what zkdog status --json says of the queue.
type runJobStatus struct {
	Queued  int `json:"queued"`
	Running int `json:"running"`
	Done    int `json:"done"`
	Failed  int `json:"failed"`
	Alive   int `json:"timers_alive"`
}

func runStatusOf(t *testing.T, root string) runJobStatus {
	t.Helper()
	p := run(t, opts{}, "status", "--root", root, "--json")
	expectExit(t, p, 0)
	var s runJobStatus
	if err := json.Unmarshal(p.stdout.Bytes(), &s); err != nil {
		t.Fatalf("zkdog status --json printed %q: %v", p.stdout.String(), err)
	}
	return s
}

// runNothingTaken checks that no worker ever made a timer or took a ticket.
func runNothingTaken(t *testing.T, conn *zk.Conn, root string) {
	t.Helper()
	l := protocol.Layout{Root: root}
	for _, p := range []string{l.Cursor(), l.Workers()} {
		_, st, err := conn.Exists(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Version != 0 {
			t.Errorf("%s is at version %d: a worker took a ticket or made a timer", p, st.Version)
		}
	}
}

// Issue 13: a typo in the command of a looping worker used to fail every
// item of the queue with 127. It now fails at once, taking nothing, and a
// worker with the right command then does all the work.
func TestRunMisspeltCommandTakesNothing(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", lines(5, "item-%d")), "--timer", "60s")
	waitJob(t, conn, root)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		command []string
		code    int
		says    []string
	}{
		{"a missing relative path", []string{"./missing", "{}"}, exitNotFound, []string{"./missing", "not found", "nothing was taken"}},
		{"a name not in $PATH", []string{"legacy-binry", "{}"}, exitNotFound, []string{"legacy-binry", "not found", "$PATH"}},
		{"no execute permission", []string{plain, "{}"}, exitNotExecutable, []string{plain, "not executable", "chmod +x"}},
		{"a directory", []string{dir, "{}"}, exitNotExecutable, []string{dir, "not executable"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := run(t, opts{dir: dir}, append([]string{"run", "--root", root, "--loop", "--"}, c.command...)...)
			expectExit(t, p, c.code)
			oneErrorLine(t, p, c.says...)
		})
	}
	if s := runStatusOf(t, root); s.Queued != 5 || s.Running+s.Done+s.Failed+s.Alive != 0 {
		t.Fatalf("status after the misspelt workers: %+v; want all 5 queued, nothing else", s)
	}
	runNothingTaken(t, conn, root)

	w := run(t, opts{}, "run", "--root", root, "--loop", "--", "true", "{}")
	expectExit(t, w, 0)
	expectExit(t, m, exitOK)
}

// A looping worker whose program disappears mid-run gives back the item it
// had taken, uncharged, and stops with 127 instead of failing the rest.
func TestRunCommandGoneMidLoop(t *testing.T) {
	root := rootFor(t)
	initJob(t, opts{}, root, 5, "--timer", "60s")
	script := filepath.Join(t.TempDir(), "work")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nrm -f \"$0\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := run(t, opts{}, "run", "--root", root, "--loop", "--", script, "{}")
	expectExit(t, p, exitNotFound)
	if s := p.stderr.String(); !strings.Contains(s, "given back uncharged") {
		t.Errorf("zkdog run did not say the item was given back:\n%s", s)
	}
	if s := runStatusOf(t, root); s.Done != 1 || s.Failed != 0 || s.Queued != 4 || s.Running != 0 {
		t.Fatalf("status %+v; want 1 done and the 4 others queued, none failed", s)
	}
	w := run(t, opts{}, "run", "--root", root, "--loop", "--", "true")
	expectExit(t, w, 0)
	if s := runStatusOf(t, root); s.Done != 5 || s.Failed != 0 {
		t.Fatalf("status %+v after a good worker; want all 5 done", s)
	}
}
