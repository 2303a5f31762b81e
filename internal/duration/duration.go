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
var ErrBad = errors.New("duration: bad duration")

// Parse reads a duration. Negative durations are refused: no zkdog
// setting means "in the past".
func Parse(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("%w: empty; give seconds (120) or a Go duration (2m)", ErrBad)
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) || secs > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("%w: %q is out of range", ErrBad, s)
		}
		d = time.Duration(secs * float64(time.Second))
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
