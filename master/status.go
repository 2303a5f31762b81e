package master

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// JobStatus is a snapshot of a job for the operator commands.
type JobStatus struct {
	Root    string        `json:"root"`
	State   string        `json:"state"`
	Items   int           `json:"items"`
	Timer   time.Duration `json:"timer_ns"`
	Retries int           `json:"retries"`
	Queued  int           `json:"queued"`
	Running int           `json:"running"`
	Done    int           `json:"done"`
	OutcomeCounts
	Aborted  string        `json:"aborted,omitempty"`
	Alive    int           `json:"timers_alive"`
	Expired  int           `json:"timers_expired"`
	Timers   []TimerStatus `json:"timers"`
	Measured time.Time     `json:"measured_at"` // by the server's clock, unless LocalClock
	// LocalClock: the reader may read the job but not stamp the server's
	// clock (a public job read by another user), so ages are by its own.
	LocalClock bool `json:"local_clock,omitempty"`
	// Summary says how a finished (sealed) job ended; its counts are the
	// summary's, and it has no timers.
	Summary *protocol.Summary `json:"summary,omitempty"`
}

// TimerStatus is one timer as the operator commands show it.
type TimerStatus struct {
	TimerReport
	Expired bool `json:"expired"`
}

// ReadStatus reads a snapshot of the job. The outcome counts cost one
// listing per thousand items. A finished job is shown from its summary.
func ReadStatus(j *job.Job) (JobStatus, error) {
	spec, err := j.Spec()
	if err != nil {
		return JobStatus{}, err
	}
	s := JobStatus{Root: j.L.Root, State: spec.State, Items: spec.Items, Timer: spec.Timer(), Retries: spec.Retries}
	if spec.State == protocol.StateFinished {
		return sealedStatus(s, spec.Summary), nil
	}
	s, err = readLive(j, spec, s)
	// Sealed while being read: what was read is moot, the summary is not.
	if fe := (*job.FinishedError)(nil); errors.As(err, &fe) {
		s.State = protocol.StateFinished
		return sealedStatus(s, &fe.Summary), nil
	}
	return s, err
}

// sealedStatus is the status of a finished job, from its summary.
func sealedStatus(s JobStatus, sum *protocol.Summary) JobStatus {
	s.Queued, s.Running, s.Alive, s.Expired = 0, 0, 0, 0
	s.Timers = []TimerStatus{}
	s.Aborted = ""
	if sum == nil {
		return s
	}
	s.Summary = sum
	s.OutcomeCounts = CountsOf(sum.Outcomes)
	s.Done = s.OK + s.notOK()
	return s
}

// readLive reads the counters, outcomes and timers of a job still running.
func readLive(j *job.Job, spec protocol.Job, s JobStatus) (JobStatus, error) {
	c, err := j.Counts(spec)
	if err != nil {
		return s, err
	}
	s.Queued, s.Running, s.Done = c.Queued(), c.Leased, c.Done
	if c.Aborted {
		reason, _, _ := j.AbortReason()
		s.Aborted = reason
	}
	outcomes, err := j.Outcomes(spec)
	if err != nil {
		return s, err
	}
	s.OutcomeCounts = countOutcomes(outcomes)
	// From the same listing as the outcomes, so that the line adds up;
	// the counter may have moved on meanwhile.
	s.Done = len(outcomes)
	now, timers, err := j.Timers()
	if err != nil {
		return s, err
	}
	if err := j.AttachWork(timers); err != nil {
		return s, err
	}
	s.Measured, s.LocalClock = now, j.LocalClock()
	s.Timers = []TimerStatus{} // [] in JSON, as zkdog timers gives, when there are none
	for _, t := range timers {
		ts := TimerStatus{TimerReport: timerReport(t), Expired: t.Expired(spec.Timer())}
		if ts.Expired {
			s.Expired++
		}
		s.Alive++ // as the original counted: expired timers are alive too
		s.Timers = append(s.Timers, ts)
	}
	return s, nil
}

func timerReport(t job.TimerState) TimerReport {
	r := TimerReport{Timer: t.Name, ID: t.ID, Host: t.Host, Pid: t.Pid, Age: t.Age}
	if t.Item >= 0 {
		r.Index, r.Item, r.ItemBase64 = Number(t.Item), t.Label, itemBase64(t.Label)
	}
	return r
}

// Print writes the status for people.
func (s JobStatus) Print(out io.Writer) {
	fmt.Fprintf(out, "job %s (%s): %d items, timer %v, retries %d\n", s.Root, s.State, s.Items, s.Timer, s.Retries)
	if s.Summary != nil || s.State == protocol.StateFinished {
		s.printSealed(out)
		return
	}
	fmt.Fprintf(out, "  queued %d, running %d, done %d (%s)\n", s.Queued, s.Running, s.Done, s.counts())
	fmt.Fprintf(out, "  timers: %d alive, %d of them expired\n", s.Alive, s.Expired)
	if s.LocalClock {
		fmt.Fprintln(out, "  (ages by this host's clock: these credentials may read the job, not stamp the server's clock)")
	}
	if s.Aborted != "" {
		fmt.Fprintf(out, "  ABORTED: %s\n", s.Aborted)
	}
	if len(s.Timers) > 0 {
		PrintTimers(out, s.Timers)
	}
}

func (s JobStatus) counts() string {
	return fmt.Sprintf("ok %d, failed %d, stalled %d, timeout %d, lost %d", s.OK, s.Failed, s.Stalled, s.Timeout, s.Lost)
}

// printSealed writes how a finished job ended.
func (s JobStatus) printSealed(out io.Writer) {
	if s.Summary == nil {
		fmt.Fprintln(out, "  finished; its record says no more")
		return
	}
	fmt.Fprintf(out, "  %s\n", s.Summary.Describe())
	fmt.Fprintf(out, "  done %d (%s), unfinished %d\n", s.Done, s.counts(), s.Summary.Outcomes[protocol.Unfinished])
	fmt.Fprintf(out, "  zkdog results --root %s lists what did not succeed\n", s.Root)
}

// PrintTimers writes one row per timer.
func PrintTimers(out io.Writer, timers []TimerStatus) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TIMER\tID\tHOST\tPID\tITEM\tAGE\tSTATE")
	for _, t := range timers {
		item := "-"
		if t.Index > 0 {
			item = fmt.Sprintf("%d %q", t.Index, t.Item)
		}
		state := "alive"
		if t.Expired {
			state = "EXPIRED"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%v\t%s\n", t.Timer, t.ID, t.Host, t.Pid, item, t.Age.Round(time.Millisecond), state)
	}
	tw.Flush()
}
