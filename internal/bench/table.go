package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Figure is one measured value and its unit.
type Figure struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Rate is n things per second over d.
func Rate(n int, d time.Duration, unit string) Figure {
	if d <= 0 {
		return Figure{Value: math.NaN(), Unit: unit}
	}
	return Figure{Value: float64(n) / d.Seconds(), Unit: unit}
}

// Millis is d in milliseconds: latencies a person compares with "instant".
func Millis(d time.Duration) Figure {
	return Figure{Value: float64(d) / float64(time.Millisecond), Unit: "ms"}
}

// Seconds is d in seconds, for phases that take a while.
func Seconds(d time.Duration) Figure { return Figure{Value: d.Seconds(), Unit: "s"} }

// MiB is a byte count in mebibytes, the unit RSS figures are usually
// quoted in.
func MiB(bytes int64) Figure { return Figure{Value: float64(bytes) / (1 << 20), Unit: "MiB"} }

// Bytes is a size in bytes, KiB or MiB, whichever reads best.
func Bytes(n int64) Figure {
	switch {
	case n < 1<<10:
		return Figure{Value: float64(n), Unit: "B"}
	case n < 1<<20:
		return Figure{Value: float64(n) / (1 << 10), Unit: "KiB"}
	}
	return MiB(n)
}

func (f Figure) String() string {
	if math.IsNaN(f.Value) {
		return "n/a"
	}
	return Number(f.Value) + " " + f.Unit
}

// Number formats v with about three significant digits, and thousands
// separators from 1,000 up: enough precision for figures that vary by
// more than a percent from run to run, and no more.
func Number(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Sprint(v)
	case a >= 999.5: // what rounds to 1,000

		return group(strconv.FormatInt(int64(math.Round(v)), 10))
	case a == 0:
		return "0"
	}
	decimals := min(max(2-int(math.Floor(math.Log10(a))), 0), 4)
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

// Count formats a whole number with thousands separators.
func Count(n int) string { return group(strconv.Itoa(n)) }

func group(digits string) string {
	sign := ""
	if strings.HasPrefix(digits, "-") {
		sign, digits = "-", digits[1:]
	}
	var b strings.Builder
	for i, r := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return sign + b.String()
}

// Goal is what a row's figure should reach. It is informational: the
// table says whether it was met, and nothing fails when it is not.
type Goal struct {
	// OnRatio applies the goal to the row's ratio; otherwise to its zkdog
	// figure.
	OnRatio bool    `json:"on_ratio"`
	AtMost  bool    `json:"at_most"` // ≤ Limit; otherwise ≥ Limit
	Limit   float64 `json:"limit"`
	Unit    string  `json:"unit,omitempty"` // of a goal on the figure
}

// RatioAtLeast is the goal ratio ≥ limit.
func RatioAtLeast(limit float64) *Goal { return &Goal{OnRatio: true, Limit: limit} }

// RatioAtMost is the goal ratio ≤ limit.
func RatioAtMost(limit float64) *Goal { return &Goal{OnRatio: true, AtMost: true, Limit: limit} }

// AtMost is the goal figure ≤ limit, in unit.
func AtMost(limit float64, unit string) *Goal { return &Goal{AtMost: true, Limit: limit, Unit: unit} }

func (g *Goal) String() string {
	op := "≥"
	if g.AtMost {
		op = "≤"
	}
	// Goals are round numbers someone chose: print them as written.
	limit := strconv.FormatFloat(g.Limit, 'f', -1, 64)
	if g.OnRatio {
		return fmt.Sprintf("%s %s×", op, limit)
	}
	return fmt.Sprintf("%s %s %s", op, limit, g.Unit)
}

// Row is one line of the result table.
type Row struct {
	Metric   string  `json:"metric"`
	Zkdog    *Figure `json:"zkdog,omitempty"`
	Baseline *Figure `json:"baseline,omitempty"`
	// Ratio is set by the measurement, which knows which way round it is
	// meaningful (usually zkdog/baseline); NaN or 0 when there is none.
	Ratio float64  `json:"ratio,omitempty"`
	Goal  *Goal    `json:"goal,omitempty"`
	Err   string   `json:"error,omitempty"`
	Notes []string `json:"notes,omitempty"`
}

// Failed is a row for a measurement that could not be taken.
func Failed(metric string, err error) Row { return Row{Metric: metric, Err: err.Error()} }

// Met says whether the row reached its goal; ok is false when there is no
// goal or nothing to judge it on.
func (r Row) Met() (met, ok bool) {
	if r.Goal == nil || r.Err != "" {
		return false, false
	}
	v := r.Ratio
	if !r.Goal.OnRatio {
		if r.Zkdog == nil {
			return false, false
		}
		v = r.Zkdog.Value
	}
	if math.IsNaN(v) || (r.Goal.OnRatio && v == 0) {
		return false, false
	}
	if r.Goal.AtMost {
		return v <= r.Goal.Limit, true
	}
	return v >= r.Goal.Limit, true
}

// WriteTable prints rows as an aligned table followed by each row's notes,
// numbered as the rows are.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tmetric\tzkdog\tbaseline\tratio\tgoal\tmet")
	for i, r := range rows {
		cells := []string{strconv.Itoa(i + 1), r.Metric, "-", "-", "-", "-", "-"}
		if r.Zkdog != nil {
			cells[2] = r.Zkdog.String()
		}
		if r.Baseline != nil {
			cells[3] = r.Baseline.String()
		}
		if r.Ratio != 0 && !math.IsNaN(r.Ratio) {
			cells[4] = fmt.Sprintf("%.2f×", r.Ratio)
		}
		if r.Goal != nil {
			cells[5] = r.Goal.String()
		}
		switch met, ok := r.Met(); {
		case r.Err != "":
			cells[2], cells[6] = "FAILED (see note)", "?"
		case ok && met:
			cells[6] = "yes"
		case ok:
			cells[6] = "NO"
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i, r := range rows {
		if r.Err == "" && len(r.Notes) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n[%d] %s\n", i+1, r.Metric)
		if r.Err != "" {
			fmt.Fprintf(w, "    error: %s\n", indent(r.Err))
		}
		for _, n := range r.Notes {
			fmt.Fprintf(w, "    %s\n", indent(n))
		}
	}
	return nil
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n      ") }

// WriteJSON writes rows as a JSON array, for tools that track figures
// across runs. NaN, which JSON cannot carry, becomes null.
func WriteJSON(w io.Writer, rows []Row) error {
	clean := make([]Row, len(rows))
	for i, r := range rows {
		r.Zkdog, r.Baseline = finite(r.Zkdog), finite(r.Baseline)
		if math.IsNaN(r.Ratio) || math.IsInf(r.Ratio, 0) {
			r.Ratio = 0
		}
		clean[i] = r
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(clean)
}

func finite(f *Figure) *Figure {
	if f == nil || math.IsNaN(f.Value) || math.IsInf(f.Value, 0) {
		return nil
	}
	return f
}
