package master

import (
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// maxDetails bounds how many items that did not succeed the report reads
// and names; the counts always cover every item.
const maxDetails = 20

// End is how a job ended; the command maps it to its exit code.
type End string

// Ends of a job.
const (
	EndOK          End = "ok"           // every item done with exit 0
	EndFailed      End = "failed"       // every item has a result, some failed
	EndHung        End = "hung"         // a timer went un-kicked too long, or the job was aborted
	EndSyncTimeout End = "sync-timeout" // no worker released the barrier in time
	EndLost        End = "lost"         // items whose workers vanished more often than retries allow
	EndBudget      End = "budget"       // --max-failures items did not succeed: the job was aborted
	EndRemoved     End = "removed"      // the job was removed while the master waited
	EndUnreachable End = "unreachable"  // ZooKeeper was out of reach longer than OutageLimit
)

// Report is how a job ended, for people and (as JSON) for scripts. Its
// JSON names are the words of the printed report.
type Report struct {
	Root string `json:"root"`
	End  End    `json:"end"`
	// Exit is the exit code the command chose for End.
	Exit   int    `json:"exit"`
	Reason string `json:"reason"`
	Items  int    `json:"items"`
	OutcomeCounts
	// Unfinished counts the items without a result when the master
	// stopped (protocol.Unfinished).
	Unfinished int           `json:"unfinished"`
	Retried    int           `json:"retried"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	// Problems names the items that did not succeed, those with a result
	// (failed, stalled, timeout, lost) first, then unfinished ones, up to
	// maxDetails in all.
	Problems []ItemReport `json:"problems,omitempty"`
	// Expired names the timers over the limit, oldest first.
	Expired []TimerReport `json:"expired,omitempty"`
	// InFlight names the items being worked on when the failure budget
	// was spent and the job aborted (EndBudget), with their outcome after
	// the abort and, once they have a result, the worker that held them.
	InFlight []ItemReport `json:"in_flight,omitempty"`
}

// ItemReport is one item that did not succeed. Index is its number, from
// 1; Item its exact text, with ItemBase64 its bytes when they are not
// valid UTF-8 (which JSON cannot carry); empty only when the master could
// not read it.
type ItemReport struct {
	Index      int              `json:"index"`
	Item       string           `json:"item,omitempty"`
	ItemBase64 string           `json:"item_base64,omitempty"`
	Outcome    protocol.Outcome `json:"outcome"`
	Exit       int              `json:"exit"`
	Signal     int              `json:"signal,omitempty"`
	Attempt    int              `json:"attempt"`
	ID         string           `json:"id,omitempty"`
	Host       string           `json:"host,omitempty"`
	Reason     string           `json:"reason,omitempty"`
	// Stderr is the end of the command's standard error, as its result
	// kept it (zkdog run --keep-stderr).
	Stderr string `json:"stderr,omitempty"`
}

// stderrLines is how much of an item's error output the printed report
// repeats: its last lines say what went wrong; zkdog results has it all.
const stderrLines = 3

// TimerReport is one timer. Index is the number (from 1) of the item its
// worker is on, 0 for none; Item that item's text, as far as the timer
// repeats it (protocol.LabelBytes).
type TimerReport struct {
	Timer      string        `json:"timer"`
	ID         string        `json:"id"`
	Host       string        `json:"host"`
	Pid        int           `json:"pid"`
	Index      int           `json:"index,omitempty"`
	Item       string        `json:"item,omitempty"`
	ItemBase64 string        `json:"item_base64,omitempty"`
	Age        time.Duration `json:"age_ns"`
}

// OutcomeCounts counts results by outcome.
type OutcomeCounts struct {
	OK      int `json:"ok"`
	Failed  int `json:"failed"`
	Stalled int `json:"stalled"`
	Timeout int `json:"timeout"`
	Lost    int `json:"lost"`
}

// CountsOf reads the counts of a sealed job's summary
// (protocol.Summary.Outcomes).
func CountsOf(outcomes map[protocol.Outcome]int) OutcomeCounts {
	return OutcomeCounts{OK: outcomes[protocol.OK], Failed: outcomes[protocol.Failed], Stalled: outcomes[protocol.Stalled],
		Timeout: outcomes[protocol.Timeout], Lost: outcomes[protocol.Lost]}
}

// notOK is how many items have a final result other than ok.
func (c OutcomeCounts) notOK() int { return c.Failed + c.Stalled + c.Timeout + c.Lost }

// itemBase64 is item's bytes in base64 when JSON cannot carry them as
// text, "" otherwise.
func itemBase64(item string) string {
	if utf8.ValidString(item) {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(item))
}

// countOutcomes tallies outcomes.
func countOutcomes(outcomes []job.Outcome) OutcomeCounts {
	var c OutcomeCounts
	for _, o := range outcomes {
		switch o.Outcome {
		case protocol.OK:
			c.OK++
		case protocol.Failed:
			c.Failed++
		case protocol.Stalled:
			c.Stalled++
		case protocol.Timeout:
			c.Timeout++
		case protocol.Lost:
			c.Lost++
		}
	}
	return c
}

func (w *waiter) report(end End, reason string, expired []job.TimerState) Report {
	r := w.bare(end, reason)
	for _, t := range expired {
		r.Expired = append(r.Expired, timerReport(t))
	}
	w.account(&r, expired)
	return r
}

// bare is a report from what the master last saw, without reading the job.
func (w *waiter) bare(end End, reason string) Report {
	r := Report{
		Root: w.j.L.Root, End: end, Reason: reason, Items: w.spec.Items,
		Retried: w.retried, Elapsed: time.Since(w.start),
	}
	if w.spec.Items > 0 {
		r.OK = w.tally.Done - w.tally.Failed
		r.Failed = w.tally.Failed
		r.Unfinished = max(w.spec.Items-w.tally.Done, 0)
	}
	return r
}

// removed is the report of a job removed under the master: there is
// nothing left to read.
func (w *waiter) removed() Report {
	return w.bare(EndRemoved, fmt.Sprintf("the job was removed while the master waited (by zkdog clear, or by hand); "+
		"%d of %d items had a result when last seen", w.tally.Done, w.spec.Items))
}

// unreachable is the report of a master that gave up on ZooKeeper; the
// counts are as last seen.
func (w *waiter) unreachable() Report {
	return w.bare(EndUnreachable, fmt.Sprintf("ZooKeeper was out of reach for %v, over the %v limit; "+
		"the job stays and its workers go on: run zkdog wait once ZooKeeper is back",
		time.Since(w.heard).Round(time.Second), w.cfg.OutageLimit))
}

// account fills in the per-outcome counts from the result buckets, and
// names the items that did not succeed. It is best effort: a report of a
// job that could not be read still says why.
func (w *waiter) account(r *Report, expired []job.TimerState) {
	if w.spec.Items == 0 {
		return
	}
	outcomes, err := w.j.Outcomes(w.spec)
	if err != nil {
		w.cfg.Log.Warn("could not read the results for the report", "err", err)
		return
	}
	r.OutcomeCounts = countOutcomes(outcomes)
	r.Unfinished = r.Items - len(outcomes)
	for _, o := range outcomes {
		if len(r.Problems) == maxDetails {
			break
		}
		if o.Outcome.IsFailure() {
			w.addProblem(r, o)
		}
	}
	w.addUnfinished(r, outcomes, expired)
}

func (w *waiter) addProblem(r *Report, o job.Outcome) {
	res, item, err := w.j.ResultOf(o)
	if err != nil {
		w.cfg.Log.Warn("could not read a result for the report", "item", Number(o.Index), "err", err)
		return
	}
	r.Problems = append(r.Problems, ItemReport{
		Index: Number(o.Index), Item: string(item), ItemBase64: itemBase64(string(item)), Outcome: o.Outcome,
		Exit: res.Exit, Signal: res.Signal, Attempt: res.Attempt, ID: res.ID, Host: res.Host, Reason: res.Reason,
		Stderr: res.Stderr,
	})
}

// addUnfinished names the items without a result, after the failures and
// within maxDetails, with the worker of any a hung worker held.
func (w *waiter) addUnfinished(r *Report, outcomes []job.Outcome, expired []job.TimerState) {
	held := map[int]job.TimerState{}
	for _, t := range expired {
		if t.Item >= 0 {
			held[t.Item] = t
		}
	}
	next := 0 // walks outcomes, which are sorted by index
	for i := 0; i < w.spec.Items && len(r.Problems) < maxDetails; i++ {
		if next < len(outcomes) && outcomes[next].Index == i {
			next++
			continue
		}
		p := ItemReport{Index: Number(i), Outcome: protocol.Unfinished, Exit: -1}
		if row, err := w.j.Row(job.Outcome{Index: i, Outcome: protocol.Unfinished}); err == nil {
			p.Item, p.ItemBase64 = string(row.Item), itemBase64(string(row.Item))
		}
		attempt, leased, err := w.j.ItemTurn(i)
		switch {
		case err != nil:
			w.cfg.Log.Warn("could not read an item for the report", "item", Number(i), "err", err)
		case leased:
			p.Attempt, p.Reason = attempt, "was being worked on when the job ended"
		case attempt > 1:
			p.Attempt, p.Reason = attempt, "was waiting to be handed out again"
		default:
			p.Reason = "never ran"
		}
		if t, ok := held[i]; ok {
			p.ID, p.Host, p.Reason = t.ID, t.Host, "its worker hung"
		}
		r.Problems = append(r.Problems, p)
	}
}

// final is the report of a job whose every item has a result.
func (w *waiter) final() Report {
	r := w.report(EndOK, "", nil)
	switch {
	case r.Lost > 0:
		r.End, r.Reason = EndLost, fmt.Sprintf("%d of %d items lost: their workers vanished without a result", r.Lost, r.Items)
	case r.notOK() > 0:
		r.End, r.Reason = EndFailed, fmt.Sprintf("%d of %d items failed", r.notOK(), r.Items)
	case w.spec.Items == 0:
		r.Reason = "every worker finished"
	default:
		r.Reason = fmt.Sprintf("all %d items done", r.Items)
	}
	return r
}

// Print writes the report for people.
func (r Report) Print(out io.Writer) {
	fmt.Fprintf(out, "zkdog: job %s: %s (exit %d)\n", r.Root, r.Reason, r.Exit)
	if r.Items > 0 {
		fmt.Fprintf(out, "  items %d: ok %d, failed %d, stalled %d, timeout %d, lost %d, unfinished %d; retried %d; elapsed %v\n",
			r.Items, r.OK, r.Failed, r.Stalled, r.Timeout, r.Lost, r.Unfinished, r.Retried, r.Elapsed.Round(time.Millisecond))
	} else {
		fmt.Fprintf(out, "  elapsed %v\n", r.Elapsed.Round(time.Millisecond))
	}
	for _, t := range r.Expired {
		fmt.Fprintf(out, "  expired timer %s: id %s, host %s, pid %d, %s, un-kicked for %v\n",
			t.Timer, t.ID, t.Host, t.Pid, t.itemText(), t.Age.Round(time.Millisecond))
	}
	r.printInFlight(out)
	for _, p := range r.Problems {
		fmt.Fprintln(out, "  "+p.line())
		for _, l := range LastLines(p.Stderr, stderrLines) {
			fmt.Fprintln(out, "      "+l)
		}
	}
	if n := r.notOK() + r.Unfinished - len(r.Problems); n > 0 {
		fmt.Fprintf(out, "  ... and %d more; zkdog results --root %s --outcome failed,stalled,timeout,lost,unfinished lists them\n", n, r.Root)
	}
}

// printInFlight names the items in flight when the budget was spent, up
// to maxDetails of them; the lines of their results follow.
func (r Report) printInFlight(out io.Writer) {
	for i, p := range r.InFlight {
		if i == maxDetails {
			fmt.Fprintf(out, "  ... and %d more in flight\n", len(r.InFlight)-i)
			break
		}
		fmt.Fprintf(out, "  in flight when the job was aborted: item %d", p.Index)
		if p.Item != "" {
			fmt.Fprintf(out, " %q", protocol.Label([]byte(p.Item)))
		}
		fmt.Fprintf(out, ", attempt %d", p.Attempt)
		if p.ID != "" {
			fmt.Fprintf(out, ", worker %s on %s", p.ID, p.Host)
		}
		fmt.Fprintf(out, "; now %s\n", p.Outcome)
	}
}

// line is the item in one line of the printed report.
func (p ItemReport) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s item %d", p.Outcome, p.Index)
	if p.Item != "" {
		fmt.Fprintf(&b, " %q", protocol.Label([]byte(p.Item)))
	}
	if p.Outcome == protocol.Unfinished {
		if p.ID != "" {
			fmt.Fprintf(&b, ", worker %s on %s", p.ID, p.Host)
		}
		if p.Attempt > 0 {
			fmt.Fprintf(&b, ", attempt %d", p.Attempt)
		}
		fmt.Fprintf(&b, ": %s", p.Reason)
		return b.String()
	}
	fmt.Fprintf(&b, ": exit %d", p.Exit)
	if p.Signal != 0 {
		fmt.Fprintf(&b, " (signal %d)", p.Signal)
	}
	fmt.Fprintf(&b, ", attempt %d", p.Attempt)
	if p.ID != "" {
		fmt.Fprintf(&b, ", worker %s on %s", p.ID, p.Host)
	}
	if p.Reason != "" {
		fmt.Fprintf(&b, ": %s", p.Reason)
	}
	return b.String()
}

// itemText says which item the timer's worker is on.
func (t TimerReport) itemText() string {
	if t.Index <= 0 {
		return "no item"
	}
	return fmt.Sprintf("item %d %q", t.Index, t.Item)
}

// LastLines is the last n lines of s, for showing the end of an error output.
func LastLines(s string, n int) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	return lines[max(0, len(lines)-n):]
}
