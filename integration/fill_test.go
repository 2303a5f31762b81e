package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bigItems writes n items of about 60 bytes, as a large real job's.
func bigItems(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "items")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		fmt.Fprintf(f, "/scratch/run-2026-12-01/input/sample-%07d.fastq.gz,chunk=%d\n", i, i%17)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestInterruptedFill: Ctrl-C during a large fill stops it, removes the
// partial job and the parents it created, and exits 130 (the old fill
// ignored the signal until it had written every item).
func TestInterruptedFill(t *testing.T) {
	items := bigItems(t, 1_000_000)
	conn := connect(t, shared.Addr())
	root := rootFor(t) + "/fresh-parent/job"
	p := start(t, opts{}, "init", "--root", root, "--items", items, "--timer", "1m")
	// Interrupted once it is writing items: the root exists then.
	waitFor(t, "the fill to start", func() bool { return exists(t, conn, root) })
	interrupted := time.Now()
	p.signal(syscall.SIGINT)
	expectExit(t, p, 128+int(syscall.SIGINT))
	t.Logf("exited %v after SIGINT", time.Since(interrupted).Round(time.Millisecond))
	if parent := rootFor(t); exists(t, conn, parent) {
		t.Errorf("%s is left after the interrupted fill; want nothing that was not there before", parent)
	}
	if !strings.Contains(p.stderr.String(), "interrupted while filling") {
		t.Errorf("stderr does not say the fill was interrupted:\n%s", p.stderr.String())
	}
}

// TestFillShowsProgressOnATerminal runs zkdog init under a pseudo-terminal
// (script(1)) and reads its live line.
func TestFillShowsProgressOnATerminal(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) is not installed")
	}
	items := bigItems(t, 200_000)
	root := rootFor(t)
	t.Cleanup(func() { run(t, opts{}, "clear", "--root", root) })
	line := fmt.Sprintf("%s init --root %s --items %s --timer 1m", zkdogBin, root, items)
	cmd := exec.Command("script", "-qec", line, "/dev/null")
	cmd.Env = append(cleanEnv(), "ZKDOG_ZK="+shared.Addr(), raceOptions)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zkdog init under a terminal: %v\n%s", err, out)
	}
	screen := string(out)
	if !strings.Contains(screen, "\r\x1b[Kfilling: ") || !strings.Contains(screen, "200000/200000 items written (100%)") {
		t.Fatalf("no live fill line reaching 200000/200000 on the terminal:\n%q", lastBytes(screen, 600))
	}
	checkRaces(t, screen)
}

func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
