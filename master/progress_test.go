package master_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/tty"
	"github.com/zkdog/zkdog/master"
)

// redraws splits terminal output into the lines drawn in place.
func redraws(out string) []string {
	var lines []string
	for _, part := range strings.Split(out, "\r\033[K") {
		if part != "" {
			lines = append(lines, part)
		}
	}
	return lines
}

// TestProgressFitsTerminal: a 10,000-item job with every field in use
// used to draw 100 columns, which wraps on an 80-column terminal and
// leaves a stale row at every redraw.
func TestProgressFitsTerminal(t *testing.T) {
	var out bytes.Buffer
	p := master.NewProgress(&out, true)
	s := master.Status{Items: 10_000, Done: 5_000, Failed: 1_234, Working: 1_000, Timers: 1_000, Retried: 321,
		Elapsed: 12*time.Hour + 34*time.Minute + 56*time.Second}
	p.Update(s)
	drawn := redraws(out.String())
	if len(drawn) != 1 {
		t.Fatalf("drew %q, want one line", out.String())
	}
	line := drawn[0]
	if n := len([]rune(line)); n >= tty.DefaultWidth {
		t.Errorf("live line %q is %d columns, want fewer than %d (a full row would wrap)", line, n, tty.DefaultWidth)
	}
	// The most important fields stay; the least important go first.
	for _, want := range []string{"5000/10000 items done (50.0%)", "1234 failed", "1000 running"} {
		if !strings.Contains(line, want) {
			t.Errorf("live line %q lost %q", line, want)
		}
	}
	if strings.Contains(line, "elapsed") && !strings.Contains(line, "retried") {
		t.Errorf("live line %q kept elapsed but dropped retried, which ranks above it", line)
	}
	if full := s.Line(); len(full) < tty.DefaultWidth {
		t.Errorf("the test's status is %d columns in full, too short to test the fit: %q", len(full), full)
	}
}

// TestProgressETAStalls: when nothing finishes, the estimate disappears
// instead of growing.
func TestProgressETAStalls(t *testing.T) {
	var out bytes.Buffer
	p := master.NewProgress(&out, false)
	p.Update(master.Status{Items: 100, Done: 0, Timers: 1, Working: 1})
	if got := out.String(); !strings.Contains(got, "eta ?") {
		t.Errorf("before any item is done: %q, want eta ?", got)
	}
	// Every item done: the line is written at once, and says so.
	p.Update(master.Status{Items: 100, Done: 100, Elapsed: time.Second})
	if got := nonEmptyLines(out.String()); len(got) != 2 || !strings.HasSuffix(got[1], "eta 0s") {
		t.Errorf("all done: %q, want a second line ending eta 0s", got)
	}
}

// TestProgressLogQuietOnceDone: a master waits for its last workers to
// exit after the last item is done; its batch log must not get a line a
// second meanwhile.
func TestProgressLogQuietOnceDone(t *testing.T) {
	var out bytes.Buffer
	p := master.NewProgress(&out, false)
	for i := range 50 {
		p.Update(master.Status{Items: 10, Done: 10, Timers: 3, Elapsed: time.Duration(i) * time.Second})
	}
	if lines := nonEmptyLines(out.String()); len(lines) != 1 {
		t.Errorf("50 updates after every item was done wrote %d lines, want 1:\n%s", len(lines), out.String())
	}
}

// TestLiveLogLines: a log line written while the live line is shown
// clears it first and has it drawn again below, so the two never share a
// row.
func TestLiveLogLines(t *testing.T) {
	var out bytes.Buffer
	live := tty.NewLive(&out)
	p := master.NewProgress(live, true)
	p.Update(master.Status{Items: 4, Done: 1, Elapsed: time.Second})
	line := redraws(out.String())[0]
	out.Reset()
	if _, err := live.Write([]byte("time=... level=WARN msg=\"its worker vanished\"\n")); err != nil {
		t.Fatal(err)
	}
	want := "\r\033[K" + "time=... level=WARN msg=\"its worker vanished\"\n" + line
	if out.String() != want {
		t.Errorf("log line over the live line wrote %q, want %q", out.String(), want)
	}
	out.Reset()
	p.Done()
	if out.String() != "\r\033[K" {
		t.Errorf("Done() wrote %q, want the live line cleared", out.String())
	}
	out.Reset()
	live.Write([]byte("after\n"))
	if out.String() != "after\n" {
		t.Errorf("a log line with no live line wrote %q", out.String())
	}
}

// TestProgressETAStallsLater: an estimate from a job that was moving goes
// away once nothing has finished for the whole window, however long the
// stall, rather than growing without bound.
func TestProgressETAStallsLater(t *testing.T) {
	var out bytes.Buffer
	p := master.NewProgress(&out, false)
	clock := time.Unix(1_000_000, 0)
	master.SetProgressClock(p, func() time.Time { return clock })
	// One item every 10 s for a minute: 94 left at that rate is 15m40s.
	for done := range 7 {
		p.Update(master.Status{Items: 100, Done: done, Timers: 1, Working: 1, Elapsed: time.Duration(done) * 10 * time.Second})
		clock = clock.Add(10 * time.Second)
	}
	lines := nonEmptyLines(out.String())
	if last := lines[len(lines)-1]; !strings.Contains(last, "eta 15m") {
		t.Errorf("moving at an item every 10s: %q, want an eta of about 15m", last)
	}
	// Then nothing for an hour.
	for range 360 {
		clock = clock.Add(10 * time.Second)
		p.Update(master.Status{Items: 100, Done: 6, Timers: 1, Working: 1, Elapsed: clock.Sub(time.Unix(1_000_000, 0))})
	}
	lines = nonEmptyLines(out.String())
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, "eta ?") {
		t.Errorf("after an hour's stall: %q, want eta ?", last)
	}
	// Within the window the estimate may rise, but never past the time
	// the remaining items take at one item per window.
	for _, l := range lines {
		_, eta, _ := strings.Cut(l, "eta ")
		if d, err := time.ParseDuration(eta); err == nil && d > 2*time.Hour {
			t.Errorf("an estimate of %v during the stall: %q", d, l)
		}
	}
}
