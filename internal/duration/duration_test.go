package duration

import (
	"errors"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	good := map[string]time.Duration{
		"120":   120 * time.Second,
		"0.5":   500 * time.Millisecond,
		"90s":   90 * time.Second,
		"2m":    2 * time.Minute,
		"1h30m": 90 * time.Minute,
		" 15 ":  15 * time.Second,
		"0":     0,
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "-5", "-1s", "10 minutes", "NaN", "1e300"} {
		if _, err := Parse(in); !errors.Is(err, ErrBad) {
			t.Errorf("Parse(%q) error = %v; want ErrBad", in, err)
		}
	}
}
