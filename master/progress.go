package master

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Progress shows a waiting master's Status: on a terminal one line
// rewritten in place, elsewhere (a batch job's log file) a plain line at
// most every LogEvery, so that a log of a long job stays readable.
type Progress struct {
	out      io.Writer
	tty      bool
	every    time.Duration
	mu       sync.Mutex
	last     time.Time
	lastLine string
	drawn    bool
}

// Redraw and log rates: a terminal is redrawn at most ten times a second
// however fast results come in; a log gets a line every half minute.
const (
	redrawEvery = 100 * time.Millisecond
	LogEvery    = 30 * time.Second
)

// NewProgress writes to out; tty says whether out is a terminal.
func NewProgress(out io.Writer, tty bool) *Progress {
	every := LogEvery
	if tty {
		every = redrawEvery
	}
	return &Progress{out: out, tty: tty, every: every}
}

// Update shows s if enough time has passed since the last line.
func (p *Progress) Update(s Status) {
	// The last item done is always shown; a job without items has none.
	p.show(s.Line(), s.Items > 0 && s.Done >= s.Items)
}

// Filled shows a fill's progress: items written of total, the rate and
// the time left.
func (p *Progress) Filled(written, total int, elapsed time.Duration) {
	p.show(fillLine(written, total, elapsed), written >= total)
}

// show writes line if enough time has passed since the last one, or if
// it is the last.
func (p *Progress) show(line string, last bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < p.every && !last {
		return
	}
	p.last = now
	if line == p.lastLine && !p.tty {
		return
	}
	p.lastLine = line
	if p.tty {
		fmt.Fprintf(p.out, "\r\033[K%s", line)
		p.drawn = true
		return
	}
	fmt.Fprintf(p.out, "zkdog: %s\n", line)
}

func fillLine(written, total int, elapsed time.Duration) string {
	rate := float64(written) / max(elapsed.Seconds(), 0.001)
	eta := "?"
	if written > 0 {
		eta = time.Duration(float64(total-written) / rate * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("filling: %d/%d items written (%.0f%%), %.0f items/s, eta %s",
		written, total, 100*float64(written)/float64(max(total, 1)), rate, eta)
}

// Done ends the live line, so that what follows starts on a line of its own.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.out, "\r\033[K")
		p.drawn = false
	}
}

// Line is the status in one line.
func (s Status) Line() string {
	elapsed := s.Elapsed.Round(time.Second)
	if s.Items == 0 {
		return fmt.Sprintf("%d workers running, elapsed %v", s.Timers, elapsed)
	}
	eta := "?"
	if s.Done > 0 && s.Done < s.Items {
		left := time.Duration(float64(s.Elapsed) * float64(s.Items-s.Done) / float64(s.Done))
		eta = left.Round(time.Second).String()
	} else if s.Done >= s.Items {
		eta = "0s"
	}
	pct := 100 * float64(s.Done) / float64(s.Items)
	return fmt.Sprintf("%d/%d items done (%.1f%%), %d running, %d failed, %d workers, %d requeued, elapsed %v, eta %s",
		s.Done, s.Items, pct, s.Running, s.Failed, s.Timers, s.Retried, elapsed, eta)
}
