package master

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// maxDetails bounds how many failed items the report reads and names; the
// counts always cover every item.
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
)

// Report is how a job ended, for people and (as JSON) for scripts.
type Report struct {
	Root string `json:"root"`
	End  End    `json:"end"`
	// Exit is the exit code the command chose for End.
	Exit   int    `json:"exit"`
	Reason string `json:"reason"`
	Items  int    `json:"items"`
	OutcomeCounts
	Missing int           `json:"missing"` // items without a result when the master stopped
	Retried int           `json:"retried"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// Problems names failed, stalled and lost items, up to maxDetails.
	Problems []ItemReport `json:"problems,omitempty"`
	// Expired names the timers over the limit, oldest first.
	Expired []TimerReport `json:"expired,omitempty"`
}

// ItemReport is one item that did not succeed.
type ItemReport struct {
	Index   int              `json:"index"`
	Item    string           `json:"item"`
	Outcome protocol.Outcome `json:"outcome"`
	Exit    int              `json:"exit"`
	Signal  int              `json:"signal,omitempty"`
	Attempt int              `json:"attempt"`
	ID      string           `json:"id,omitempty"`
	Host    string           `json:"host,omitempty"`
	Reason  string           `json:"reason,omitempty"`
}

// TimerReport is one expired timer.
type TimerReport struct {
	Timer string        `json:"timer"`
	ID    string        `json:"id"`
	Host  string        `json:"host"`
	Pid   int           `json:"pid"`
	Item  int           `json:"item"`
	Label string        `json:"label,omitempty"`
	Age   time.Duration `json:"age_ns"`
}

// OutcomeCounts counts results by outcome.
type OutcomeCounts struct {
	OK      int `json:"ok"`
	Failed  int `json:"failed"`
	Stalled int `json:"stalled"`
	Lost    int `json:"lost"`
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
		case protocol.Lost:
			c.Lost++
		}
	}
	return c
}

func (w *waiter) report(end End, reason string, expired []job.TimerState) Report {
	r := Report{
		Root: w.j.L.Root, End: end, Reason: reason, Items: w.spec.Items,
		Retried: w.retried, Elapsed: time.Since(w.start),
	}
	for _, t := range expired {
		r.Expired = append(r.Expired, timerReport(t))
	}
	w.account(&r)
	return r
}

// account fills in the per-outcome counts from the result buckets. It is
// best effort: a report of a job that could not be read still says why.
func (w *waiter) account(r *Report) {
	if w.spec.Items == 0 {
		return
	}
	outcomes, err := w.j.Outcomes(w.spec)
	if err != nil {
		w.cfg.Log.Warn("could not read the results for the report", "err", err)
		return
	}
	r.OutcomeCounts = countOutcomes(outcomes)
	var problems []job.Outcome
	for _, o := range outcomes {
		if o.Outcome.IsFailure() && len(problems) < maxDetails {
			problems = append(problems, o)
		}
	}
	r.Missing = r.Items - len(outcomes)
	for _, o := range problems {
		res, item, err := w.j.ResultOf(o)
		if err != nil {
			w.cfg.Log.Warn("could not read a result for the report", "item", o.Index, "err", err)
			continue
		}
		r.Problems = append(r.Problems, ItemReport{
			Index: o.Index, Item: protocol.Label(item), Outcome: o.Outcome, Exit: res.Exit, Signal: res.Signal,
			Attempt: res.Attempt, ID: res.ID, Host: res.Host, Reason: res.Reason,
		})
	}
}

// final is the report of a job whose every item has a result.
func (w *waiter) final() Report {
	r := w.report(EndOK, "", nil)
	switch {
	case r.Lost > 0:
		r.End, r.Reason = EndLost, fmt.Sprintf("%d of %d items lost: their workers vanished without a result", r.Lost, r.Items)
	case r.Failed+r.Stalled > 0:
		r.End, r.Reason = EndFailed, fmt.Sprintf("%d of %d items failed", r.Failed+r.Stalled, r.Items)
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
		fmt.Fprintf(out, "  items %d: ok %d, failed %d, stalled %d, lost %d, without result %d; requeued %d; elapsed %v\n",
			r.Items, r.OK, r.Failed, r.Stalled, r.Lost, r.Missing, r.Retried, r.Elapsed.Round(time.Millisecond))
	} else {
		fmt.Fprintf(out, "  elapsed %v\n", r.Elapsed.Round(time.Millisecond))
	}
	for _, t := range r.Expired {
		item := "no item"
		if t.Item >= 0 {
			item = fmt.Sprintf("item %d %q", t.Item, t.Label)
		}
		fmt.Fprintf(out, "  expired timer %s: id %s, host %s, pid %d, %s, un-kicked for %v\n",
			t.Timer, t.ID, t.Host, t.Pid, item, t.Age.Round(time.Millisecond))
	}
	for _, p := range r.Problems {
		var b strings.Builder
		fmt.Fprintf(&b, "  %s item %d %q: exit %d", p.Outcome, p.Index, p.Item, p.Exit)
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
		fmt.Fprintln(out, b.String())
	}
	if n := r.Failed + r.Stalled + r.Lost - len(r.Problems); n > 0 {
		fmt.Fprintf(out, "  ... and %d more; zkdog status --root %s lists them while the job is kept (--keep)\n", n, r.Root)
	}
}
