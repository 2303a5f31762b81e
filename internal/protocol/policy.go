package protocol

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrBadPolicy reports a policy setting that does not parse.
var ErrBadPolicy = errors.New("bad policy")

// Retry classes: which endings of an attempt are handed out again while
// the item has retries left (--retry-on). An exit code or a range of them
// (75, 137-140) is a class too.
const (
	RetryVanished = "vanished" // the worker's session ended without a result
	RetryStalled  = "stalled"  // stopped for lack of progress
	RetryTimeout  = "timeout"  // ran longer than --item-timeout
	RetrySignal   = "signal"   // killed by a signal
	RetryFailed   = "failed"   // any non-zero exit
)

var retryWords = []string{RetryVanished, RetryStalled, RetryTimeout, RetrySignal, RetryFailed}

// On-hang policies (--on-hang).
const (
	OnHangAbort = "abort" // stop every worker, exit 3
	OnHangStall = "stall" // stop only the hung worker's command; the item is stalled
)

// Policy is what the job asks of every participant when an attempt ends
// badly; the job record carries it, so that workers need no flags for it.
type Policy struct {
	// RetryOn lists the retry classes; nil means vanished only.
	RetryOn []string `json:"retry_on,omitempty"`
	// NoRetryExit lists exit codes never retried, as ranges.
	NoRetryExit      string `json:"no_retry_exit,omitempty"`
	RetryDelayMillis int64  `json:"retry_delay_ms,omitempty"`
	// MaxFailures, when positive, is how many final results other than
	// ok end the job.
	MaxFailures int `json:"max_failures,omitempty"`
	// OnHang is OnHangAbort (also when empty) or OnHangStall.
	OnHang string `json:"on_hang,omitempty"`
	// ItemTimeoutMillis stops an item's command after that long;
	// ItemTimeoutPercent, after that share of the median duration of the
	// items that succeeded, once MinTimeoutSample have.
	ItemTimeoutMillis  int64 `json:"item_timeout_ms,omitempty"`
	ItemTimeoutPercent int   `json:"item_timeout_pct,omitempty"`
}

// MinTimeoutSample is how many items must have succeeded before a
// relative --item-timeout applies: a median of fewer says little.
const MinTimeoutSample = 10

// RetryDelay is how long a retried item stays out of the queue.
func (p Policy) RetryDelay() time.Duration {
	return time.Duration(p.RetryDelayMillis) * time.Millisecond
}

// Stalls reports whether a hung worker costs only its own item.
func (p Policy) Stalls() bool { return p.OnHang == OnHangStall }

// classes is RetryOn, with its default.
func (p Policy) classes() []string {
	if p.RetryOn == nil {
		return []string{RetryVanished}
	}
	return p.RetryOn
}

// RetriesVanished reports whether an item whose worker vanished is
// handed out again (while it has retries left).
func (p Policy) RetriesVanished() bool { return slices.Contains(p.classes(), RetryVanished) }

// Retryable reports whether an attempt that ended as r is handed out again
// (while the item has retries left). NoRetryExit wins over every class.
func (p Policy) Retryable(r Result) bool {
	if r.Outcome == OK || r.Outcome == Lost {
		return false
	}
	if r.Exit > 0 && inRanges(p.NoRetryExit, r.Exit) {
		return false
	}
	for _, c := range p.classes() {
		switch {
		case c == RetryStalled && r.Outcome == Stalled,
			c == RetryTimeout && r.Outcome == Timeout,
			c == RetrySignal && r.Outcome == Failed && r.Signal != 0,
			c == RetryFailed && r.Outcome == Failed,
			isRange(c) && r.Outcome == Failed && inRanges(c, r.Exit):
			return true
		}
	}
	return false
}

// TimeoutFor is the item timeout in force given the successful items'
// statistics: none (0) until a relative one has its sample.
func (p Policy) TimeoutFor(s Stats) time.Duration {
	switch {
	case p.ItemTimeoutMillis > 0:
		return time.Duration(p.ItemTimeoutMillis) * time.Millisecond
	case p.ItemTimeoutPercent > 0 && s.OK >= MinTimeoutSample:
		return time.Duration(s.MedianMillis*int64(p.ItemTimeoutPercent)/100) * time.Millisecond
	}
	return 0
}

// ParseRetryOn reads a --retry-on list: class words and exit codes or
// ranges, comma-separated.
func ParseRetryOn(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case slices.Contains(retryWords, f):
		case isRange(f):
			if _, err := parseRange(f); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: %q is not a retry class; give %s, or exit codes such as 75,137-140", ErrBadPolicy, f, strings.Join(retryWords, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// CheckExitCodes checks a list of exit codes and ranges (75,137-140).
func CheckExitCodes(s string) error {
	for _, f := range strings.Split(s, ",") {
		if _, err := parseRange(strings.TrimSpace(f)); err != nil {
			return err
		}
	}
	return nil
}

func isRange(s string) bool { return s != "" && strings.Trim(s, "0123456789-") == "" }

// parseRange reads N or N-M, with 0 <= N <= M <= 255.
func parseRange(s string) ([2]int, error) {
	lo, hi, isSpan := strings.Cut(s, "-")
	if !isSpan {
		hi = lo
	}
	a, errA := strconv.Atoi(lo)
	b, errB := strconv.Atoi(hi)
	if errA != nil || errB != nil || a < 0 || b > 255 || a > b {
		return [2]int{}, fmt.Errorf("%w: %q is not an exit code (0-255) or a range of them such as 137-140", ErrBadPolicy, s)
	}
	return [2]int{a, b}, nil
}

func inRanges(list string, code int) bool {
	if list == "" {
		return false
	}
	for _, f := range strings.Split(list, ",") {
		if r, err := parseRange(strings.TrimSpace(f)); err == nil && r[0] <= code && code <= r[1] {
			return true
		}
	}
	return false
}

// Stats is the data of the stats node: what the items that succeeded
// took, published by the master for --item-timeout P% and for workers
// judging whether an item fits in their remaining lifetime.
type Stats struct {
	V            int   `json:"v"`
	OK           int   `json:"ok"`
	MedianMillis int64 `json:"median_ms"`
}

// Median is the median duration of the items that succeeded.
func (s Stats) Median() time.Duration { return time.Duration(s.MedianMillis) * time.Millisecond }

// DecodeStats reads the stats node; empty data is no statistics yet.
func DecodeStats(b []byte) (Stats, error) {
	if len(b) == 0 {
		return Stats{V: Version}, nil
	}
	return decodeRecord("stats", b, func(s *Stats) int { return s.V })
}

// Attempt records are Results whose Outcome is one of the attempt
// outcomes; DecodeAttempt checks that.
func DecodeAttempt(b []byte) (Result, error) {
	r, err := DecodeResult(b)
	if err == nil && !r.Outcome.validAttempt() {
		err = fmt.Errorf("bad attempt record: outcome %q", r.Outcome)
	}
	return r, err
}
