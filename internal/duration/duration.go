// Package duration parses the durations zkdog's flags take: Go's syntax
// ("90s", "2m30s", "1.5h") or a plain number of seconds ("120", "0.5"), as
// the original Perl module took seconds.
package duration

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrBad reports a duration that cannot be parsed.
var ErrBad = errors.New("bad duration")

// Parse reads a duration. Negative durations are refused: no zkdog
// setting means "in the past".
func Parse(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("%w: empty; give seconds (120) or a Go duration (2m)", ErrBad)
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		// Both checks come before the conversion: a float beyond
		// the range of a Duration (2^63 ns and more, or less than
		// -2^63) converts to an implementation-dependent value (on
		// amd64, a negative one).
		ns := secs * float64(time.Second)
		switch {
		case math.IsNaN(secs) || ns >= math.MaxInt64:
			return 0, fmt.Errorf("%w: %q is out of range", ErrBad, s)
		case secs < 0:
			return 0, fmt.Errorf("%w: %q is negative", ErrBad, s)
		}
		d = time.Duration(ns)
	} else {
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%w: %q; give seconds (120) or a Go duration (90s, 2m, 1h30m)", ErrBad, s)
		}
	}
	if d < 0 {
		return 0, fmt.Errorf("%w: %q is negative", ErrBad, s)
	}
	return d, nil
}

// Value is a flag value holding a duration; it satisfies flag.Value.
type Value struct{ D time.Duration }

// Set parses s into v.
func (v *Value) Set(s string) error {
	d, err := Parse(s)
	if err != nil {
		return err
	}
	v.D = d
	return nil
}

// String prints v in Go's syntax.
func (v *Value) String() string {
	if v == nil {
		return ""
	}
	return v.D.String()
}
