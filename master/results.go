package master

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// ResultRow is one item as zkdog results prints it and the joblog records
// it. Index is the item's number counting from 1 in the items file it
// first came from, so the rows of a job and of its re-runs (zkdog init
// --from) join on it.
type ResultRow struct {
	Index      int              `json:"index"`
	Item       string           `json:"item"`
	ItemBase64 string           `json:"item_base64,omitempty"`
	Outcome    protocol.Outcome `json:"outcome"`
	Exit       int              `json:"exit"`
	Signal     int              `json:"signal"`
	Attempts   int              `json:"attempts"`
	Worker     string           `json:"worker"`
	Host       string           `json:"host"`
	Start      *time.Time       `json:"start,omitempty"`
	DurationMS int64            `json:"duration_ms"`
	Reason     string           `json:"reason,omitempty"`
	Stderr     string           `json:"stderr,omitempty"`
	// Earlier are the attempts before the last that ended without the
	// item's result (retried, vanished, given back at a scheduler's TERM).
	Earlier []AttemptRow `json:"earlier,omitempty"`
	item    []byte
}

// AttemptRow is an earlier attempt at an item.
type AttemptRow struct {
	Attempt    int              `json:"attempt"`
	Outcome    protocol.Outcome `json:"outcome"`
	Exit       int              `json:"exit"`
	Signal     int              `json:"signal"`
	Worker     string           `json:"worker"`
	Host       string           `json:"host"`
	DurationMS int64            `json:"duration_ms"`
	Reason     string           `json:"reason,omitempty"`
	Stderr     string           `json:"stderr,omitempty"`
}

// attempts is the row as joblog lines: one per earlier attempt, then the
// row itself.
func (r ResultRow) attempts() []ResultRow {
	var out []ResultRow
	for _, a := range r.Earlier {
		out = append(out, ResultRow{Index: r.Index, Outcome: a.Outcome, Exit: a.Exit, Signal: a.Signal, Attempts: a.Attempt,
			Worker: a.Worker, Host: a.Host, DurationMS: a.DurationMS, Reason: a.Reason, Stderr: a.Stderr, item: r.item})
	}
	return append(out, r)
}

// Bytes is the item's exact text.
func (r ResultRow) Bytes() []byte { return r.item }

// rowOf presents a job's row.
func rowOf(jr job.Row) ResultRow {
	r := ResultRow{
		Index: jr.Origin + 1, Item: string(jr.Item), Outcome: jr.Outcome, Attempts: jr.Attempts,
		Exit: jr.Result.Exit, Signal: jr.Result.Signal, Worker: jr.Result.ID, Host: jr.Result.Host,
		DurationMS: jr.Result.DurationMillis, Reason: jr.Result.Reason, Stderr: jr.Result.Stderr, item: jr.Item,
	}
	r.ItemBase64 = itemBase64(string(jr.Item))
	if !jr.Started.IsZero() {
		s := jr.Started.UTC()
		r.Start = &s
	}
	if jr.Outcome == protocol.Unfinished {
		r.Exit = -1
	}
	for _, a := range jr.Earlier {
		r.Earlier = append(r.Earlier, AttemptRow{Attempt: a.Attempt, Outcome: a.Outcome, Exit: a.Exit, Signal: a.Signal,
			Worker: a.ID, Host: a.Host, DurationMS: a.DurationMillis, Reason: a.Reason, Stderr: a.Stderr})
	}
	return r
}

// ReadResults reads the rows of the items whose outcome is in want (every
// outcome when empty), from a live or a sealed job, in the job's order.
func ReadResults(ctx context.Context, j *job.Job, want []protocol.Outcome) ([]ResultRow, error) {
	rows, err := j.Rows(ctx, func(o protocol.Outcome) bool { return len(want) == 0 || slices.Contains(want, o) })
	if err != nil {
		return nil, err
	}
	out := make([]ResultRow, len(rows))
	for i, r := range rows {
		out[i] = rowOf(r)
	}
	return out, nil
}

// Outcomes every item can end with, in the order zkdog results names them.
var Outcomes = []protocol.Outcome{protocol.OK, protocol.Failed, protocol.Stalled, protocol.Timeout, protocol.Lost, protocol.Unfinished}

// ErrBadOutcome: an --outcome list names no outcome zkdog knows.
var ErrBadOutcome = errors.New("unknown outcome")

// ParseOutcomes reads a comma-separated list of outcomes.
func ParseOutcomes(list string) ([]protocol.Outcome, error) {
	var out []protocol.Outcome
	for _, s := range strings.Split(list, ",") {
		o := protocol.Outcome(strings.TrimSpace(s))
		if !slices.Contains(Outcomes, o) {
			return nil, fmt.Errorf("%w %q; the outcomes are %s", ErrBadOutcome, s, joinOutcomes(Outcomes))
		}
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out, nil
}

// NotOK is every outcome but ok: what a re-run takes by default.
func NotOK() []protocol.Outcome { return Outcomes[1:] }

func joinOutcomes(os []protocol.Outcome) string {
	s := make([]string, len(os))
	for i, o := range os {
		s[i] = string(o)
	}
	return strings.Join(s, ",")
}

// The joblog: a tab-separated file with a header line, a row per item as
// its result is recorded. README's "The morning after" documents it.
var joblogColumns = []string{"index", "item", "outcome", "exit", "signal", "attempts", "worker", "host", "start", "duration", "reason", "stderr"}

// JoblogHeader is the joblog's first line.
func JoblogHeader() string { return strings.Join(joblogColumns, "\t") + "\n" }

// TSV is the row as a joblog line: text fields escaped (tab, newline,
// carriage return and backslash as \t \n \r \\, bytes that are not UTF-8
// as \xHH) so that every item's exact bytes survive; start in RFC 3339
// UTC, empty for an unfinished item; duration in seconds.
func (r ResultRow) TSV() string {
	start := ""
	if r.Start != nil {
		start = r.Start.Format("2006-01-02T15:04:05.000Z07:00")
	}
	f := []string{
		strconv.Itoa(r.Index), escapeField(r.item), string(r.Outcome), strconv.Itoa(r.Exit), strconv.Itoa(r.Signal),
		strconv.Itoa(r.Attempts), escapeField([]byte(r.Worker)), escapeField([]byte(r.Host)), start,
		strconv.FormatFloat(float64(r.DurationMS)/1000, 'f', 3, 64), escapeField([]byte(r.Reason)), escapeField([]byte(r.Stderr)),
	}
	return strings.Join(f, "\t") + "\n"
}

func escapeField(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		c, size := utf8.DecodeRune(b)
		switch {
		case c == utf8.RuneError && size <= 1:
			fmt.Fprintf(&sb, `\x%02x`, b[0])
		case c == '\t':
			sb.WriteString(`\t`)
		case c == '\n':
			sb.WriteString(`\n`)
		case c == '\r':
			sb.WriteString(`\r`)
		case c == '\\':
			sb.WriteString(`\\`)
		default:
			sb.Write(b[:size])
		}
		b = b[size:]
	}
	return sb.String()
}

// ErrBadJoblog: a file that is not a zkdog joblog.
var ErrBadJoblog = errors.New("not a zkdog joblog")

func unescapeField(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("a lone \\ at the end of %q", s)
		}
		i++
		switch s[i] {
		case 't':
			out = append(out, '\t')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case '\\':
			out = append(out, '\\')
		case 'x':
			if i+2 >= len(s) {
				return nil, fmt.Errorf("a short \\x escape in %q", s)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("a bad \\x escape in %q", s)
			}
			out = append(out, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf("an unknown escape \\%c in %q", s[i], s)
		}
	}
	return out, nil
}

// ReadJoblog reads a joblog's rows: the index, the item's exact bytes and
// the outcome of each (the fields a re-run needs); a later row for an
// index replaces an earlier one.
func ReadJoblog(r io.Reader, name string) ([]ResultRow, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20+protocol.MaxItemBytes*4)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		return nil, fmt.Errorf("%w: %s is empty", ErrBadJoblog, name)
	}
	if sc.Text()+"\n" != JoblogHeader() {
		return nil, fmt.Errorf("%w: the first line of %s is not the joblog header (%q)", ErrBadJoblog, name, strings.TrimSpace(JoblogHeader()))
	}
	byIndex := map[int]int{}
	var rows []ResultRow
	for line := 2; sc.Scan(); line++ {
		row, err := parseJoblogLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%w: %s line %d: %v", ErrBadJoblog, name, line, err)
		}
		if k, ok := byIndex[row.Index]; ok {
			rows[k] = row
			continue
		}
		byIndex[row.Index] = len(rows)
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return rows, nil
}

func parseJoblogLine(s string) (ResultRow, error) {
	f := strings.Split(s, "\t")
	if len(f) != len(joblogColumns) {
		return ResultRow{}, fmt.Errorf("%d fields, want %d", len(f), len(joblogColumns))
	}
	index, err := strconv.Atoi(f[0])
	if err != nil || index < 1 {
		return ResultRow{}, fmt.Errorf("index %q is not a number from 1", f[0])
	}
	item, err := unescapeField(f[1])
	if err != nil {
		return ResultRow{}, err
	}
	o := protocol.Outcome(f[2])
	if !slices.Contains(Outcomes, o) && o != protocol.Vanished && o != protocol.Terminated {
		return ResultRow{}, fmt.Errorf("unknown outcome %q", f[2])
	}
	return ResultRow{Index: index, Item: string(item), Outcome: o, item: item}, nil
}
