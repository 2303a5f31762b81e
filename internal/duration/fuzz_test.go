package duration_test

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/duration"
)

// FuzzParse: Parse never panics; an accepted duration is not negative, and
// printing it (Value.String, Go's syntax) and parsing that gives the same
// duration; a plain number is read as that many seconds, and is refused
// exactly when it is NaN, infinite, negative or too large for a
// time.Duration; a refusal wraps ErrBad and, for a non-blank input,
// quotes it.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"120", "0.5", "90s", "2m", "1h30m", " 15 ", "0", "1.5h", "2m30s", "300ms", "1us", "1µs", "1ns", "\t10\n",
		"", "   ", "abc", "-5", "-1s", "10 minutes", "NaN", "nan", "Inf", "+Inf", "-Inf", "infinity", "1e300", "1e-300",
		"-0", "-0s", "+5", "+5s", ".5", "5.", "0x10", "0x1p-2", "1_000", "1e3", "1E3", "00012", "1h-1m",
		"9223372036", "9223372036.854775807", "9223372036.854775", "9223372036.854776", "9223372037",
		"2562047h47m16.854775807s", "2562047h47m16.854775808s", "-2562047h47m16.854775808s",
		"-0.0000000001", "-0.5ns", "0.5ns", "1.0000000001", "1s1s", "s", "1", "h", ".s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := duration.Parse(s)
		if err != nil {
			if d != 0 {
				t.Fatalf("Parse(%q) = %v with error %v; want 0 with an error", s, d, err)
			}
			if !errors.Is(err, duration.ErrBad) {
				t.Fatalf("Parse(%q) = %v, want it to wrap ErrBad", s, err)
			}
			if trimmed := strings.TrimSpace(s); trimmed != "" && !strings.Contains(err.Error(), strconv.Quote(trimmed)) {
				t.Fatalf("Parse(%q) = %q: does not quote the input", s, err)
			}
		} else {
			if d < 0 {
				t.Fatalf("Parse(%q) = %v: negative", s, d)
			}
			printed := (&duration.Value{D: d}).String()
			if printed != d.String() {
				t.Fatalf("Value{%v}.String() = %q, want %q", d, printed, d.String())
			}
			again, err := duration.Parse(printed)
			if err != nil || again != d {
				t.Fatalf("Parse(%q) = %v, printed %q, which parses to %v, %v", s, d, printed, again, err)
			}
			// Nanoseconds written as seconds read back too (up to float
			// precision, which is exact for whole seconds).
			if d%time.Second == 0 {
				secs := strconv.FormatInt(int64(d/time.Second), 10)
				if again, err := duration.Parse(secs); err != nil || again != d {
					t.Fatalf("Parse(%q) = %v, but %q (its seconds) parses to %v, %v", s, d, secs, again, err)
				}
			}
		}

		// Seconds: what the number says, refused when it cannot be a
		// duration, and never called negative when it is not.
		secs, ferr := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if ferr != nil {
			return
		}
		ns := secs * float64(time.Second)
		// Negative is below zero, however little (-0 is zero).
		representable := !math.IsNaN(secs) && secs >= 0 && ns < math.MaxInt64 // 2^63 as a float64
		switch {
		case representable && err != nil:
			t.Fatalf("Parse(%q) = %v: %g seconds is a valid duration", s, err, secs)
		case representable && d != time.Duration(ns):
			t.Fatalf("Parse(%q) = %v, want %v", s, d, time.Duration(ns))
		case !representable && err == nil:
			t.Fatalf("Parse(%q) = %v: %g seconds is no valid duration", s, d, secs)
		case err != nil && secs >= 0 && strings.Contains(err.Error(), "negative"):
			t.Fatalf("Parse(%q) = %q: %g seconds is not negative", s, err, secs)
		}
	})
}

// FuzzValueSet: Value.Set agrees with Parse and leaves the value alone
// when it refuses; what String prints, Set takes back.
func FuzzValueSet(f *testing.F) {
	for _, s := range []string{"120", "90s", "-1s", "", "1h30m", "nope", "1e300"} {
		f.Add(s, int64(7*time.Second))
	}
	f.Fuzz(func(t *testing.T, s string, before int64) {
		v := duration.Value{D: time.Duration(before)}
		err := v.Set(s)
		d, perr := duration.Parse(s)
		if (err == nil) != (perr == nil) {
			t.Fatalf("Set(%q) = %v but Parse = %v", s, err, perr)
		}
		if err != nil {
			if v.D != time.Duration(before) {
				t.Fatalf("a refused Set(%q) changed the value from %v to %v", s, time.Duration(before), v.D)
			}
			return
		}
		if v.D != d {
			t.Fatalf("Set(%q) gave %v, Parse %v", s, v.D, d)
		}
		var w duration.Value
		if err := w.Set(v.String()); err != nil || w.D != v.D {
			t.Fatalf("Set(%q) of String() of %v = %v, %v", v.String(), v.D, w.D, err)
		}
	})
}
