package integration

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal of cols columns: the side zkdog writes
// to, and the side the test reads the terminal's bytes from.
func openPTY(t *testing.T, cols int) (tty, ptm *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: uint16(cols)}); err != nil {
		t.Fatal(err)
	}
	return tty, ptm
}

// screen renders what a terminal of width columns shows for the bytes
// written to it: printing wraps at the right margin, CR returns to the
// row's start, LF moves down, ESC[K clears to the end of the row. Rows
// scrolled off are kept.
type screen struct {
	width      int
	rows       [][]rune
	row, col   int
	pendingRow bool // the last column was written: the next character wraps
}

var csi = regexp.MustCompile(`^\x1b\[[0-9;?]*[@-~]`)

// liveLine matches what the live line shows while filling and waiting.
var liveLine = regexp.MustCompile(`\d+/\d+ items (done|written) \(`)

func (s *screen) feed(b string) {
	for len(b) > 0 {
		if m := csi.FindString(b); m != "" {
			if strings.HasSuffix(m, "K") {
				s.ensure()
				s.rows[s.row] = s.rows[s.row][:min(s.col, len(s.rows[s.row]))]
			}
			b = b[len(m):]
			continue
		}
		r, n := utf8.DecodeRuneInString(b)
		b = b[n:]
		switch r {
		case '\r':
			s.col, s.pendingRow = 0, false
		case '\n':
			s.row++
			s.pendingRow = false
		default:
			if r < ' ' {
				continue
			}
			if s.pendingRow {
				s.row, s.col, s.pendingRow = s.row+1, 0, false
			}
			s.ensure()
			line := s.rows[s.row]
			for len(line) <= s.col {
				line = append(line, ' ')
			}
			line[s.col] = r
			s.rows[s.row] = line
			if s.col == s.width-1 {
				s.pendingRow = true
			} else {
				s.col++
			}
		}
	}
}

func (s *screen) ensure() {
	for len(s.rows) <= s.row {
		s.rows = append(s.rows, nil)
	}
}

// TestMaster13LiveLineAt80Columns runs a master with its standard error on
// an 80-column terminal, while a worker is killed so that the master logs
// a warning over its live line. No line it draws may be wider than the
// terminal (a wrapped live line leaves a stale row at every redraw), and
// at the end the screen holds its log lines and its report, each on a row
// of its own, and nothing of the live line.
func TestMaster13LiveLineAt80Columns(t *testing.T) {
	const cols = 80
	srv := quickServer(t)
	o := opts{zk: srv.Addr()}
	root := rootFor(t)
	conn := connect(t, srv.Addr())
	tty, ptm := openPTY(t, cols)
	// Long item names make the longest status a real job shows.
	m := exec.Command(zkdogBin, "master", "--root", root, "--items", writeFile(t, "items", lines(40, "item-%04d")),
		"--retries", "3", "--timer", "60")
	m.Env = append(cleanEnv(), "ZKDOG_ZK="+srv.Addr(), raceOptions)
	m.Stderr = tty
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close() // the master holds it now; EOF on ptm when it exits
	var out syncBuffer
	copied := make(chan struct{})
	go func() { io.Copy(&out, ptm); close(copied) }()
	t.Cleanup(func() { m.Process.Kill() })
	waitJob(t, conn, root)

	// --until-done: the steady worker also takes the victim's item when
	// it comes back.
	work := []string{"run", "--root", root, "--loop", "--until-done", "--session-timeout", "4s", "--", "sh", "-c", "sleep 0.1"}
	steady := start(t, o, work...)
	victim := start(t, o, "run", "--root", root, "--session-timeout", "4s", "--", "sleep", "1000")
	waitFor(t, "the victim to take an item", func() bool { return strings.Contains(victim.stderr.String(), "took item") })
	_ = syscall.Kill(-victim.cmd.Process.Pid, syscall.SIGKILL)
	victim.wait()
	expectExit(t, steady, exitOK)
	exited := make(chan error, 1)
	go func() { exited <- m.Wait() }()
	select {
	case err := <-exited:
		if m.ProcessState.ExitCode() != exitOK {
			t.Fatalf("master: %v\nterminal:\n%q", err, out.String())
		}
	case <-time.After(waitLimit):
		t.Fatalf("the master did not exit within %v; terminal:\n%q", waitLimit, out.String())
	}
	<-copied
	raw := out.String()
	checkRaces(t, raw)
	if !strings.Contains(raw, "item handed out again") {
		t.Fatalf("the master logged no warning to draw over; terminal:\n%q", raw)
	}

	// Every live line drawn fits the row (log lines may wrap: they end in
	// a newline and are never redrawn).
	plain := regexp.MustCompile(`\x1b\[[0-9;?]*[@-~]`).ReplaceAllString(raw, "")
	for _, seg := range strings.FieldsFunc(plain, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if !liveLine.MatchString(seg) {
			continue
		}
		if n := utf8.RuneCountInString(seg); n > cols {
			t.Errorf("a line of %d columns on an %d-column terminal: %q", n, cols, seg)
		}
	}
	s := &screen{width: cols}
	s.feed(raw)
	var shown []string
	for _, r := range s.rows {
		if row := strings.TrimRight(string(r), " "); row != "" {
			shown = append(shown, row)
		}
	}
	for _, row := range shown {
		if liveLine.MatchString(row) {
			t.Errorf("a stale row of the live line is left on the screen: %q", row)
		}
		if i := strings.Index(row, "level="); i >= 0 && !strings.HasPrefix(row, "time=") {
			t.Errorf("a log line printed onto the end of another row: %q", row)
		}
	}
	if !strings.Contains(strings.Join(shown, "\n"), "all 40 items done") {
		t.Errorf("the screen lacks the report:\n%s", strings.Join(shown, "\n"))
	}
	if t.Failed() {
		t.Logf("the screen at the end:\n%s", strings.Join(shown, "\n"))
	}
}
