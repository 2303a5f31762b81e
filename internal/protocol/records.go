package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Sentinel errors.
var (
	// ErrUnknownVersion reports a record written by a protocol this build
	// does not speak.
	ErrUnknownVersion = errors.New("unknown protocol version")
	// ErrNotAJob reports a job root whose data is not a zkdog job.
	ErrNotAJob = errors.New("not a zkdog job")
)

// Job states, in the order a job passes through them.
const (
	// StateFilling: the master is still writing items; workers wait.
	StateFilling = "filling"
	// StateReady: every item is written; workers may take them.
	StateReady = "ready"
	// StateFinished: the job has ended and is sealed; its Summary says
	// how. Late workers take nothing and succeed.
	StateFinished = "finished"
)

// Job is the data of the job root: the settings every worker reads instead
// of repeating them on each task's command line.
type Job struct {
	Protocol int    `json:"protocol"`
	State    string `json:"state"`
	// Items is the number of items; zero for a timer-only job.
	Items int `json:"items"`
	// TimerMillis is how long a timer may go un-kicked before the master
	// calls its worker hung.
	TimerMillis int64 `json:"timer_ms"`
	// Retries is how many extra attempts an item gets after its worker
	// vanished without a result.
	Retries int `json:"retries"`
	// Sync says the job was created with a start barrier.
	Sync bool `json:"sync"`
	// Master names the host and pid of the master that created the job.
	Master string `json:"master,omitempty"`
	// CreatedMillis is the server time the job node was created at.
	CreatedMillis int64 `json:"created_ms,omitempty"`
	// ExpectWorkers, for a job without items, is how many workers must
	// have come and gone before it is finished; 0 means at least one.
	ExpectWorkers int `json:"expect_workers,omitempty"`
	// Policy is what happens when an attempt ends badly.
	Policy
	// From names the job whose items this one re-runs (zkdog init --from),
	// for people reading the record.
	From string `json:"from,omitempty"`
	// Summary says how the job ended; set when State is StateFinished.
	Summary *Summary `json:"summary,omitempty"`
}

// Summary is how a sealed job ended: its master's final report, kept in
// the job record for the morning after.
type Summary struct {
	// End names the way it ended (ok, failed, hung, sync-timeout, lost).
	End string `json:"end"`
	// Exit is the master's exit code.
	Exit   int    `json:"exit"`
	Reason string `json:"reason,omitempty"`
	// Outcomes counts the items by final outcome; items without a result
	// count as Unfinished.
	Outcomes map[Outcome]int `json:"outcomes"`
	// EndedMillis is when the job was sealed, by the master's clock.
	EndedMillis int64  `json:"ended_ms"`
	Host        string `json:"host"`
	// Workers counts the workers that ever joined.
	Workers int `json:"workers"`
	// Kept: the whole tree was kept (--keep), not only what did not
	// succeed.
	Kept bool `json:"kept,omitempty"`
}

// Timer returns the job's timer limit.
func (j Job) Timer() time.Duration { return time.Duration(j.TimerMillis) * time.Millisecond }

// Timer is the data of a worker's ephemeral timer. What the worker is
// working on is in its lease, not here: taking an item then costs no
// write to the timer.
type Timer struct {
	V int `json:"v"`
	// ID names the worker the way its scheduler does (array job and task),
	// or host:pid.
	ID   string `json:"id"`
	Host string `json:"host"`
	Pid  int    `json:"pid"`
	// Kicks counts the kicks so far; every kick rewrites the data, which is
	// what moves the znode's mtime.
	Kicks int64 `json:"kicks"`
	// SessionMillis is the session timeout the worker's server granted. A
	// worker killed outright leaves its timer until its session expires,
	// so no reader judges a timer before that much time has passed.
	SessionMillis int64 `json:"session_ms"`
}

// Limit is how long timer t may go un-kicked before its worker counts as
// hung, in a job whose timer is limit. A worker killed outright leaves its
// timer until the server expires its session: at most one session timeout
// after its last ping, rounded up to the server's next tick (at most half
// the minimum timeout), and its last kick came at most half a timer
// before its death (workers refuse a longer kick interval). Twice the
// session timeout covers all of it, so such a worker is found vanished,
// and its item retried, instead of being called hung.
func (t Timer) Limit(limit time.Duration) time.Duration {
	return max(limit, 2*time.Duration(t.SessionMillis)*time.Millisecond)
}

// LabelBytes is how much of an item's text timers and reports repeat.
const LabelBytes = 120

// Label shortens an item's text for display.
func Label(item []byte) string {
	if len(item) <= LabelBytes {
		return string(item)
	}
	cut := LabelBytes
	for cut > 0 && !utf8.RuneStart(item[cut]) {
		cut-- // never in the middle of a character
	}
	return string(item[:cut]) + "…"
}

// Describe says in a few words how the job ended, for one log line.
func (s Summary) Describe() string {
	d := fmt.Sprintf("it ended %s (exit %d)", s.End, s.Exit)
	if s.EndedMillis > 0 {
		d += " at " + time.UnixMilli(s.EndedMillis).UTC().Format(time.RFC3339)
	}
	if s.Reason != "" {
		d += ": " + s.Reason
	}
	return d
}

// Lease is the data of an ephemeral lease: which timer holds the item.
type Lease struct {
	V     int    `json:"v"`
	Timer string `json:"timer"`
	ID    string `json:"id"`
	Host  string `json:"host"`
	Pid   int    `json:"pid"`
}

// Result is the data of a recorded result.
type Result struct {
	V       int     `json:"v"`
	Outcome Outcome `json:"outcome"`
	// Exit is the shell-style status: the code, or 128+signal.
	Exit int `json:"exit"`
	// Signal is the signal that killed the command, 0 if none.
	Signal int `json:"signal,omitempty"`
	// DurationMillis is how long the command ran.
	DurationMillis int64  `json:"duration_ms"`
	Attempt        int    `json:"attempt"`
	ID             string `json:"id,omitempty"`
	Host           string `json:"host,omitempty"`
	Timer          string `json:"timer,omitempty"`
	// Reason says why, for outcomes other than ok.
	Reason string `json:"reason,omitempty"`
	// Item is the item's text, for outcomes other than ok: a sealed job
	// keeps these results and drops its items.
	Item []byte `json:"item,omitempty"`
	// Stderr is the end of the command's standard error, at most
	// MaxStderrBytes, for outcomes other than ok.
	Stderr string `json:"stderr,omitempty"`
}

// MaxStderrBytes bounds the error output a result keeps: a result is read
// by every report and a failing job may have many.
const MaxStderrBytes = 16 << 10

// DefaultStderrBytes is how much error output a result keeps by default:
// the message of a failing command, rarely more than a few lines.
const DefaultStderrBytes = 2 << 10

// Abort is the data of the abort node.
type Abort struct {
	V      int    `json:"v"`
	Reason string `json:"reason"`
}

// Encode marshals a record. Records are small structs of plain fields, so
// the only possible error is a programming one.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("protocol: encoding %T: %v", v, err))
	}
	return b
}

// DecodeJob reads the job root's data.
func DecodeJob(b []byte) (Job, error) {
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return Job{}, fmt.Errorf("%w: its data is not a zkdog job record (%v)", ErrNotAJob, err)
	}
	if j.Protocol != Version {
		return Job{}, fmt.Errorf("%w %d in the job node (this zkdog speaks %d)", ErrUnknownVersion, j.Protocol, Version)
	}
	return j, nil
}

// LooksLikeJob reports whether b is a job record of any protocol version:
// a node that is another zkdog's job, even one this build cannot read.
func LooksLikeJob(b []byte) bool {
	var v struct {
		Protocol int `json:"protocol"`
	}
	return json.Unmarshal(b, &v) == nil && v.Protocol > 0
}

func decodeRecord[T any](kind string, b []byte, version func(*T) int) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("bad %s record: %v", kind, err)
	}
	if got := version(&v); got != Version {
		return v, fmt.Errorf("%w %d in a %s record", ErrUnknownVersion, got, kind)
	}
	return v, nil
}

// DecodeTimer reads a timer's data.
func DecodeTimer(b []byte) (Timer, error) {
	return decodeRecord("timer", b, func(t *Timer) int { return t.V })
}

// DecodeLease reads a lease's data.
func DecodeLease(b []byte) (Lease, error) {
	return decodeRecord("lease", b, func(l *Lease) int { return l.V })
}

// DecodeResult reads a result's data.
func DecodeResult(b []byte) (Result, error) {
	return decodeRecord("result", b, func(r *Result) int { return r.V })
}

// DecodeAbort reads the abort node's data.
func DecodeAbort(b []byte) (Abort, error) {
	return decodeRecord("abort", b, func(a *Abort) int { return a.V })
}
