package master

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/zkdog/zkdog/internal/tty"
)

// Progress shows a waiting master's Status: on a terminal one line
// rewritten in place, never wider than the terminal (a wrapped line cannot
// be cleared in place); elsewhere (a batch job's log file) a plain line at
// most every LogEvery, so that a log of a long job stays readable.
type Progress struct {
	out   io.Writer
	live  *tty.Live // nil off a terminal
	width func() int
	every time.Duration
	now   func() time.Time

	mu       sync.Mutex
	last     time.Time
	lastLine string
	// ended: the line of a job whose every item is done was shown; it is
	// shown at once only the first time.
	ended bool
	rate  recentRate
}

// Redraw and log rates: a terminal is redrawn at most ten times a second
// however fast results come in; a log gets a line every half minute.
const (
	redrawEvery = 100 * time.Millisecond
	LogEvery    = 30 * time.Second
)

// NewProgress writes to out; isTTY says whether out is a terminal. On the
// process's standard error it draws through tty.Stderr, the writer the
// logger shares, so that log lines clear the live line and it is drawn
// again after them.
func NewProgress(out io.Writer, isTTY bool) *Progress {
	p := &Progress{out: out, every: LogEvery, width: func() int { return 0 }, now: time.Now}
	if !isTTY {
		return p
	}
	p.every = redrawEvery
	switch o := out.(type) {
	case *tty.Live:
		p.live = o
	case *os.File:
		p.live = tty.NewLive(o)
		if o == os.Stderr {
			p.live = tty.Stderr
		}
		p.width = func() int { return tty.Width(o) }
	default:
		p.live = tty.NewLive(out)
	}
	if out == tty.Stderr {
		p.width = func() int { return tty.Width(os.Stderr) }
	}
	if p.width() == 0 {
		p.width = func() int { return tty.DefaultWidth }
	}
	return p
}

// Update shows s if enough time has passed since the last line.
func (p *Progress) Update(s Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.rate.add(now, s.Done)
	eta := p.rate.eta(now, s.Items-s.Done)
	// The first line with every item done is always shown; a job without
	// items has none.
	final := s.Items > 0 && s.Done >= s.Items && !p.ended
	if p.show(s.fields(eta), final) && final {
		p.ended = true
	}
}

// Filled shows a fill's progress: items written of total, the rate and
// the time left.
func (p *Progress) Filled(written, total int, elapsed time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.show(fillFields(written, total, elapsed), written >= total)
}

// show writes the line of fields if enough time has passed since the last
// one, or if it is the last; it says whether it did. The caller holds mu.
func (p *Progress) show(fields []field, last bool) bool {
	now := p.now()
	if now.Sub(p.last) < p.every && !last {
		return false
	}
	p.last = now
	line := fit(fields, p.width()-1)
	if line == p.lastLine && p.live == nil {
		return false
	}
	p.lastLine = line
	if p.live != nil {
		_ = p.live.Draw(line) // a terminal that cannot be written to has nobody watching
		return true
	}
	fmt.Fprintf(p.out, "zkdog: %s\n", line)
	return true
}

// Done ends the live line, so that what follows starts on a line of its own.
func (p *Progress) Done() {
	if p.live != nil {
		_ = p.live.Clear()
	}
}

// field is one part of a status line; the line drops the fields of the
// highest rank first when it does not fit.
type field struct {
	text string
	rank int
}

// fit joins fields in order, dropping the least important until the line
// is at most width columns (no limit for width <= 0), and cuts what is
// left if even the most important alone is too wide.
func fit(fields []field, width int) string {
	join := func(fs []field) string {
		parts := make([]string, len(fs))
		for i, f := range fs {
			parts[i] = f.text
		}
		return strings.Join(parts, ", ")
	}
	line := join(fields)
	for width > 0 && len([]rune(line)) > width && len(fields) > 1 {
		worst := 0
		for i, f := range fields {
			if f.rank > fields[worst].rank {
				worst = i
			}
		}
		fields = append(fields[:worst:worst], fields[worst+1:]...)
		line = join(fields)
	}
	if r := []rune(line); width > 0 && len(r) > width {
		line = string(r[:width])
	}
	return line
}

func fillFields(written, total int, elapsed time.Duration) []field {
	rate := float64(written) / max(elapsed.Seconds(), 0.001)
	eta := "?"
	if written > 0 {
		eta = etaText(time.Duration(float64(total-written) / rate * float64(time.Second)))
	}
	return []field{
		{fmt.Sprintf("filling: %d/%d items written (%.0f%%)", written, total, 100*float64(written)/float64(max(total, 1))), 0},
		{fmt.Sprintf("%.0f items/s", rate), 2},
		{"eta " + eta, 1},
	}
}

// maxETA: an estimate beyond a week is no estimate; no scheduler gives a
// batch job that long, and a rate that low means progress has stalled.
const maxETA = 7 * 24 * time.Hour

func etaText(d time.Duration) string {
	if d < 0 || d > maxETA {
		return "?"
	}
	return short(d)
}

// short formats d to the second, or to the minute from an hour on.
func short(d time.Duration) string {
	if d >= time.Hour {
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	return d.Round(time.Second).String()
}

// recentRate estimates the time left from the rate of the last etaWindow,
// so that a stall shows as no estimate rather than an ever-growing one.
type recentRate struct {
	samples []rateSample
}

type rateSample struct {
	at   time.Time
	done int
}

// etaWindow is how far back the rate looks: long enough to smooth items of
// a few seconds each, short enough that a stall shows within a minute.
const etaWindow = time.Minute

// add records done at now; at most one sample a second is kept.
func (r *recentRate) add(now time.Time, done int) {
	if n := len(r.samples); n >= 2 && now.Sub(r.samples[n-1].at) < time.Second {
		r.samples[n-1].done = done // the base, samples[0], never moves
		return
	}
	r.samples = append(r.samples, rateSample{now, done})
	// Keep one sample older than the window as the base of the rate.
	for len(r.samples) > 2 && now.Sub(r.samples[1].at) > etaWindow {
		r.samples = r.samples[1:]
	}
}

// eta is the time left for left items at the recent rate, "?" when there
// is none.
func (r *recentRate) eta(now time.Time, left int) string {
	if left <= 0 {
		return "0s"
	}
	if len(r.samples) < 2 {
		return "?"
	}
	base, cur := r.samples[0], r.samples[len(r.samples)-1]
	span := now.Sub(base.at)
	if cur.done <= base.done || span <= 0 {
		return "?"
	}
	perItem := span / time.Duration(cur.done-base.done)
	return etaText(perItem * time.Duration(left))
}

// Line is the status in one line, its estimate from the average rate
// since the master started.
func (s Status) Line() string {
	eta := "?"
	switch {
	case s.Done >= s.Items:
		eta = "0s"
	case s.Done > 0:
		eta = etaText(time.Duration(float64(s.Elapsed) * float64(s.Items-s.Done) / float64(s.Done)))
	}
	return fit(s.fields(eta), 0)
}

// fields are the parts of the status line, most important first by rank.
func (s Status) fields(eta string) []field {
	elapsed := "elapsed " + short(s.Elapsed)
	workers := plural(s.Timers, "worker", "workers")
	if s.Items == 0 {
		return []field{{workers + " running", 0}, {elapsed, 1}}
	}
	fs := []field{
		{fmt.Sprintf("%d/%d items done (%.1f%%)", s.Done, s.Items, 100*float64(s.Done)/float64(s.Items)), 0},
		{fmt.Sprintf("%d running", s.Working), 3},
		{fmt.Sprintf("%d failed", s.Failed), 1},
		{workers, 4},
	}
	if s.Retried > 0 {
		fs = append(fs, field{fmt.Sprintf("%d retried", s.Retried), 5})
	}
	return append(fs, field{elapsed, 6}, field{"eta " + eta, 2})
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
