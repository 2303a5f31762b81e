package supervise

import (
	"fmt"
	"math/bits"
	"strings"
)

// Activity is a set of kinds of evidence that the child is progressing.
type Activity uint8

// The kinds of activity a Monitor can look for.
const (
	// ActivityCPU: the process tree used CPU time.
	ActivityCPU Activity = 1 << iota
	// ActivityIO: the process tree read or wrote bytes.
	ActivityIO
	// ActivityOutput: the child wrote to its passed-through stdout or stderr.
	ActivityOutput
	// ActivityFile: a watched progress file changed.
	ActivityFile
	// ActivityKick: the kick file changed (an explicit `zkdog kick`).
	ActivityKick
	// ActivityAlive: the child is alive; progress is assumed.
	ActivityAlive

	// ActivityAll is every kind of evidence; it leaves out ActivityAlive,
	// which would make the others moot.
	ActivityAll = ActivityCPU | ActivityIO | ActivityOutput | ActivityFile | ActivityKick
)

// activityNames is in bit order; it is also the order String writes.
var activityNames = [...]string{"cpu", "io", "output", "file", "kick", "alive"}

// ActivityNames returns the words ParseActivity accepts.
func ActivityNames() []string {
	return append(append([]string(nil), activityNames[:]...), "all")
}

// ParseActivity parses a comma-separated list of kinds, as given on the
// command line: "cpu,io,output,file,kick", "alive", "all". Words are
// case-insensitive and may be surrounded by spaces.
func ParseActivity(s string) (Activity, error) {
	var a Activity
	for _, word := range strings.Split(s, ",") {
		word = strings.ToLower(strings.TrimSpace(word))
		if word == "all" {
			a |= ActivityAll
			continue
		}
		k := kindNamed(word)
		if k == 0 {
			if word == "" {
				return 0, fmt.Errorf("supervise: empty activity kind in %q (valid: %s)",
					s, strings.Join(ActivityNames(), ", "))
			}
			return 0, fmt.Errorf("supervise: unknown activity kind %q (valid: %s)",
				word, strings.Join(ActivityNames(), ", "))
		}
		a |= k
	}
	return a, nil
}

func kindNamed(word string) Activity {
	for i, n := range activityNames {
		if n == word {
			return 1 << i
		}
	}
	return 0
}

// String lists the kinds in a, comma-separated, in the form ParseActivity
// reads; "none" for the empty set.
func (a Activity) String() string {
	if a == 0 {
		return "none"
	}
	var b strings.Builder
	for rest := a; rest != 0; rest &= rest - 1 {
		i := bits.TrailingZeros8(uint8(rest))
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if i < len(activityNames) {
			b.WriteString(activityNames[i])
		} else {
			fmt.Fprintf(&b, "0x%x", uint8(1)<<i)
		}
	}
	return b.String()
}

// Has reports whether a includes every kind in k.
func (a Activity) Has(k Activity) bool { return a&k == k }

// Set parses s into a, replacing its value, so that *Activity can serve
// as a command-line flag value (flag.Value, urfave/cli's Generic).
func (a *Activity) Set(s string) error {
	v, err := ParseActivity(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}
