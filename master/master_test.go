package master_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/internal/zktest"
	"github.com/zkdog/zkdog/master"
)

// hangGuard bounds every wait. It is a guard against a hang, not a
// performance assertion: the machines running these tests are shared.
const hangGuard = 30 * time.Second

func itemStrings(items [][]byte) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it)
	}
	return out
}

func TestReadItems(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []string
	}{
		{"LF", "a\nb\nc\n", []string{"a", "b", "c"}},
		{"CRLF", "a\r\nb\r\nc\r\n", []string{"a", "b", "c"}},
		{"mixed line ends", "a\r\nb\nc\r\n", []string{"a", "b", "c"}},
		{"no final newline", "a\nb\nc", []string{"a", "b", "c"}},
		{"no final CRLF", "a\r\nb", []string{"a", "b"}},
		{"blank lines", "\n\na\n\n\nb\n\n", []string{"a", "b"}},
		{"blank CRLF lines", "\r\na\r\n\r\nb\r\n", []string{"a", "b"}},
		{"one item", "only", []string{"only"}},
		{"spaces are part of an item", " a b \n\tc\n", []string{" a b ", "\tc"}},
		{"lines of spaces and tabs are blank", "a\n   \n\t\n \t \r\nb\n", []string{"a", "b"}},
		{"inner CR kept", "a\rb\n", []string{"a\rb"}},
		{"duplicates kept", "x\nx\n", []string{"x", "x"}},
		{"UTF-8", "données/été.txt\n", []string{"données/été.txt"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := master.ReadItems(strings.NewReader(c.in), "items.txt")
			if err != nil || !slices.Equal(itemStrings(got), c.want) {
				t.Errorf("ReadItems(%q) = %q, %v; want %q", c.in, itemStrings(got), err, c.want)
			}
		})
	}
}

func TestReadItemsLimits(t *testing.T) {
	maxItem := strings.Repeat("x", protocol.MaxItemBytes)
	got, err := master.ReadItems(strings.NewReader("a\n"+maxItem+"\r\nb\n"), "items.txt")
	if err != nil || len(got) != 3 || len(got[1]) != protocol.MaxItemBytes {
		t.Fatalf("an item of exactly MaxItemBytes: %d items, %v; want it accepted", len(got), err)
	}

	// Over the limit on line 3 (line 2 is blank: lines are counted as in
	// the file, so a person can find it).
	over := maxItem + "y"
	_, err = master.ReadItems(strings.NewReader("a\n\n"+over+"\nb\n"), "inputs.txt")
	if !errors.Is(err, job.ErrTooLarge) {
		t.Fatalf("an item over MaxItemBytes: %v, want job.ErrTooLarge", err)
	}
	for _, want := range []string{"inputs.txt", "line 3", fmt.Sprint(protocol.MaxItemBytes + 1)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// The last line, without a newline.
	_, err = master.ReadItems(strings.NewReader("a\n"+over), "inputs.txt")
	if !errors.Is(err, job.ErrTooLarge) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("an oversized last line without newline: %v, want ErrTooLarge naming line 2", err)
	}
}

// TestReadItemsNUL: a NUL cannot reach a program (an argument or the
// environment ends at it), so it is refused at init with its line, not
// at every worker that takes the item.
func TestReadItemsNUL(t *testing.T) {
	_, err := master.ReadItems(strings.NewReader("a\n\nb\x00c\nd\n"), "inputs.txt")
	if !errors.Is(err, master.ErrNUL) {
		t.Fatalf("an item with a NUL: %v, want ErrNUL", err)
	}
	for _, want := range []string{"inputs.txt line 3:", "NUL", "byte 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestReadItemsEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", "\n\n\r\n", "\r\n", " \n\t\n", "  \t  "} {
		_, err := master.ReadItems(strings.NewReader(in), "empty.txt")
		if !errors.Is(err, master.ErrNoItems) {
			t.Errorf("ReadItems(%q) = %v, want ErrNoItems", in, err)
		} else if !strings.Contains(err.Error(), "empty.txt") {
			t.Errorf("ReadItems(%q) = %q, want it to name the file", in, err)
		}
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestReadItemsReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := master.ReadItems(io.MultiReader(strings.NewReader("a\nb"), failingReader{boom}), "items.txt")
	if !errors.Is(err, boom) {
		t.Errorf("ReadItems over a failing reader = %v, want the read error", err)
	}
}

func TestReadItemsFile(t *testing.T) {
	p := t.TempDir() + "/items.txt"
	if err := os.WriteFile(p, []byte("one\r\ntwo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := master.ReadItemsFile(p)
	if err != nil || !slices.Equal(itemStrings(got), []string{"one", "two"}) {
		t.Errorf("ReadItemsFile = %q, %v", itemStrings(got), err)
	}
	if _, err := master.ReadItemsFile(p + ".missing"); err == nil || !strings.Contains(err.Error(), "items.txt.missing") {
		t.Errorf("ReadItemsFile of a missing file = %v, want an error naming it", err)
	}
}

func TestStatusLine(t *testing.T) {
	for _, c := range []struct {
		name string
		s    master.Status
		want []string
	}{
		{"nothing done", master.Status{Items: 10, Working: 2, Timers: 2, Elapsed: 5 * time.Second},
			[]string{"0/10 items done (0.0%)", "2 running", "2 workers", "elapsed 5s", "eta ?"}},
		{"half done", master.Status{Items: 10, Done: 5, Failed: 1, Working: 3, Timers: 4, Retried: 2, Elapsed: 10 * time.Second},
			[]string{"5/10 items done (50.0%)", "3 running", "1 failed", "4 workers", "2 retried", "elapsed 10s", "eta 10s"}},
		{"one worker", master.Status{Items: 10, Working: 1, Timers: 1, Elapsed: time.Second},
			[]string{"1 running", "1 worker,"}},
		{"a stall is no estimate", master.Status{Items: 100_000, Done: 1, Elapsed: 2 * time.Hour},
			[]string{"eta ?"}},
		{"hours to the minute", master.Status{Items: 3, Done: 1, Elapsed: 90 * time.Minute},
			[]string{"elapsed 1h30m", "eta 3h0m"}},
		{"eta from the rate", master.Status{Items: 10, Done: 4, Elapsed: 20 * time.Second},
			[]string{"4/10 items done (40.0%)", "eta 30s"}},
		{"a third", master.Status{Items: 3, Done: 1, Elapsed: 1500 * time.Millisecond},
			[]string{"1/3 items done (33.3%)", "elapsed 2s", "eta 3s"}},
		{"all done", master.Status{Items: 10, Done: 10, Elapsed: 90 * time.Second},
			[]string{"10/10 items done (100.0%)", "elapsed 1m30s", "eta 0s"}},
		{"timer only", master.Status{Timers: 3, Elapsed: 61 * time.Second},
			[]string{"3 workers running, elapsed 1m1s"}},
		{"timer only, one worker", master.Status{Timers: 1, Elapsed: time.Second},
			[]string{"1 worker running"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			line := c.s.Line()
			for _, w := range c.want {
				if !strings.Contains(line, w) {
					t.Errorf("Line() = %q, want %q in it", line, w)
				}
			}
			if strings.Contains(line, "\n") {
				t.Errorf("Line() = %q spans lines", line)
			}
		})
	}
	if line := (master.Status{Timers: 3}).Line(); strings.Contains(line, "items") || strings.Contains(line, "%") {
		t.Errorf("a timer-only job's line %q talks about items", line)
	}
}

func nonEmptyLines(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		if l = strings.TrimRight(l, "\n"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestProgressLogThrottles(t *testing.T) {
	var out bytes.Buffer
	p := master.NewProgress(&out, false)
	for i := range 100 {
		p.Update(master.Status{Items: 200, Done: i, Running: 4, Timers: 4, Elapsed: time.Duration(i) * time.Second})
	}
	lines := nonEmptyLines(out.String())
	if len(lines) != 1 {
		t.Fatalf("100 quick updates wrote %d lines, want 1 (at most one every %v):\n%s", len(lines), master.LogEvery, out.String())
	}
	if !strings.HasPrefix(lines[0], "zkdog: 0/200 items done") {
		t.Errorf("first line %q, want the first status", lines[0])
	}
	if strings.Contains(out.String(), "\r") || strings.Contains(out.String(), "\033") {
		t.Errorf("a log (not a terminal) got terminal control characters: %q", out.String())
	}

	// The final state is always written, however soon.
	p.Update(master.Status{Items: 200, Done: 200, Elapsed: 101 * time.Second})
	lines = nonEmptyLines(out.String())
	if len(lines) != 2 || !strings.Contains(lines[1], "200/200 items done") {
		t.Fatalf("after the final update: %q, want a second line with 200/200", lines)
	}
	p.Done() // nothing to end on a log
	if got := nonEmptyLines(out.String()); len(got) != 2 {
		t.Errorf("Done() wrote to a log: %q", out.String())
	}
}

// TestProgressLogThrottlesTimerOnly: a timer-only job (no queue) has no
// "final state" to print at once, so its log must be throttled too.
func TestProgressLogThrottlesTimerOnly(t *testing.T) {
	var out bytes.Buffer
	p := master.NewProgress(&out, false)
	for i := range 100 {
		p.Update(master.Status{Timers: 4, Elapsed: time.Duration(i) * time.Second})
	}
	if lines := nonEmptyLines(out.String()); len(lines) != 1 {
		t.Errorf("100 quick updates of a timer-only job wrote %d lines, want 1:\n%s", len(lines), out.String())
	}
}

func TestProgressTerminal(t *testing.T) {
	var out bytes.Buffer
	p := master.NewProgress(&out, true)
	s := master.Status{Items: 4, Done: 1, Elapsed: time.Second}
	began := time.Now()
	p.Update(s)
	if got, want := out.String(), "\r\033[K1/4 items done (25.0%), 0 running, 0 failed, 0 workers, elapsed 1s, eta ?"; got != want {
		t.Fatalf("terminal output %q, want the line drawn in place %q", got, want)
	}
	if strings.Contains(out.String(), "\n") {
		t.Errorf("a terminal line ends in a newline: %q", out.String())
	}
	// Many updates at once redraw at most once more (10 a second), and the
	// last state is drawn whatever the rate.
	for range 50 {
		p.Update(s)
	}
	final := master.Status{Items: 4, Done: 4, Elapsed: 2 * time.Second}
	p.Update(final)
	if !strings.HasSuffix(out.String(), "\r\033[K4/4 items done (100.0%), 0 running, 0 failed, 0 workers, elapsed 2s, eta 0s") {
		t.Errorf("terminal output %q does not end with the final state", out.String())
	}
	// At most ten redraws a second: a slow machine only makes the bound
	// looser, never the count higher.
	elapsed := time.Since(began)
	if n, limit := strings.Count(out.String(), "\r\033[K"), int(elapsed/(100*time.Millisecond))+2; n > limit {
		t.Errorf("%d redraws for 52 updates in %v, want at most %d", n, elapsed, limit)
	}
	out.Reset()
	p.Done()
	if out.String() != "\r\033[K" {
		t.Errorf("Done() wrote %q, want the live line cleared", out.String())
	}
	out.Reset()
	p.Done()
	if out.Len() != 0 {
		t.Errorf("a second Done() wrote %q", out.String())
	}
}

func TestReportPrint(t *testing.T) {
	r := master.Report{
		Root: "/zkdog/run42", End: master.EndLost, Exit: 5, Reason: "1 of 5 items lost: their workers vanished without a result",
		Items: 5, OutcomeCounts: master.OutcomeCounts{OK: 2, Failed: 1, Stalled: 1, Lost: 1}, Retried: 2, Elapsed: 1500 * time.Millisecond,
		Problems: []master.ItemReport{
			{Index: 1, Item: "in/b", Outcome: protocol.Failed, Exit: 3, Attempt: 1, ID: "100_2", Host: "node2"},
			{Index: 2, Item: "in/c", Outcome: protocol.Stalled, Exit: 143, Signal: 15, Attempt: 1, ID: "100_3", Host: "node3", Reason: "no progress for 2m0s"},
			{Index: 4, Item: "in/e", Outcome: protocol.Lost, Exit: -1, Attempt: 3, Reason: "its worker vanished without a result, after 2 of 2 retries"},
		},
	}
	var out bytes.Buffer
	r.Print(&out)
	text := out.String()
	for _, want := range []string{
		"/zkdog/run42", r.Reason, "(exit 5)",
		"items 5: ok 2, failed 1, stalled 1, timeout 0, lost 1",
		"retried 2",
		`failed item 1 "in/b": exit 3, attempt 1, worker 100_2 on node2`,
		`stalled item 2 "in/c": exit 143 (signal 15), attempt 1, worker 100_3 on node3: no progress for 2m0s`,
		`lost item 4 "in/e": exit -1, attempt 3: its worker vanished`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "more") {
		t.Errorf("every problem is named, yet the report says there are more:\n%s", text)
	}

	// More problems than named.
	r.Failed = 30
	out.Reset()
	r.Print(&out)
	if !strings.Contains(out.String(), "... and 29 more") {
		t.Errorf("30 failed, 1 stalled, 1 lost with 3 named: report lacks \"... and 29 more\":\n%s", out.String())
	}
}

func TestReportPrintExpired(t *testing.T) {
	r := master.Report{
		Root: "/zkdog/run42", End: master.EndHung, Exit: 3, Reason: "timer t-0000000007 un-kicked", Items: 2, OutcomeCounts: master.OutcomeCounts{OK: 1}, Unfinished: 1,
		Expired: []master.TimerReport{
			{Timer: "t-0000000007", ID: "100_7", Host: "node7", Pid: 4242, Index: 2, Item: "in/b", Age: 125 * time.Second},
			{Timer: "t-0000000009", ID: "100_9", Host: "node9", Pid: 99, Age: 121 * time.Second},
		},
	}
	var out bytes.Buffer
	r.Print(&out)
	for _, want := range []string{
		"(exit 3)", "unfinished 1",
		`expired timer t-0000000007: id 100_7, host node7, pid 4242, item 2 "in/b", un-kicked for 2m5s`,
		"expired timer t-0000000009: id 100_9, host node9, pid 99, no item, un-kicked for 2m1s",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}

	// A timer-only job has no item counts.
	r = master.Report{Root: "/zkdog/watch", Reason: "every worker finished", Elapsed: 3 * time.Second}
	out.Reset()
	r.Print(&out)
	if strings.Contains(out.String(), "items") || !strings.Contains(out.String(), "elapsed 3s") {
		t.Errorf("timer-only report:\n%s", out.String())
	}
}

// The Wait tests run a real ZooKeeper and play the workers with the job
// package's own operations.

// statusLog collects what Wait reports through OnStatus.
type statusLog struct {
	mu     sync.Mutex
	all    []master.Status
	notify chan struct{}
}

func newStatusLog() *statusLog { return &statusLog{notify: make(chan struct{}, 1)} }

func (l *statusLog) add(s master.Status) {
	l.mu.Lock()
	l.all = append(l.all, s)
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

func (l *statusLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

// waitUntil returns once Wait has reported a status for which cond holds,
// or after d.
func (l *statusLog) waitUntil(d time.Duration, cond func(master.Status) bool) {
	timeout := time.After(d)
	for {
		l.mu.Lock()
		ok := slices.ContainsFunc(l.all, cond)
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-l.notify:
		case <-timeout:
			return
		}
	}
}

// waitFor returns once Wait has reported a status for which cond holds.
func (l *statusLog) waitFor(t *testing.T, what string, cond func(master.Status) bool) {
	t.Helper()
	guard := time.After(hangGuard)
	for {
		l.mu.Lock()
		ok := slices.ContainsFunc(l.all, cond)
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-l.notify:
		case <-guard:
			t.Fatalf("Wait never reported %s in %v", what, hangGuard)
		}
	}
}

type waitResult struct {
	r   master.Report
	err error
}

// waiting is a Wait running in the background, as zkdog master runs it.
type waiting struct {
	statuses *statusLog
	res      chan waitResult
}

func startWait(t *testing.T, j *job.Job, cfg master.WaitConfig) *waiting {
	t.Helper()
	w := &waiting{statuses: newStatusLog(), res: make(chan waitResult, 1)}
	cfg.OnStatus = w.statuses.add
	if cfg.Poll == 0 {
		cfg.Poll = master.MinPoll
	}
	go func() {
		r, err := master.Wait(t.Context(), j, cfg)
		w.res <- waitResult{r, err}
	}()
	return w
}

// following waits until Wait is past its start and watching the job.
func (w *waiting) following(t *testing.T) {
	t.Helper()
	w.statuses.waitFor(t, "a first status", func(master.Status) bool { return true })
}

// polled waits until Wait has reported n more statuses: it reports one
// at every poll and every change it sees, so it has gone round its loop,
// and not returned, meanwhile.
func (w *waiting) polled(t *testing.T, n int) {
	t.Helper()
	want := w.statuses.len() + n
	guard := time.After(hangGuard)
	for w.statuses.len() < want {
		select {
		case r := <-w.res:
			t.Fatalf("Wait returned %+v, err %v; want it still following the job", r.r, r.err)
		case <-w.statuses.notify:
		case <-guard:
			t.Fatalf("Wait neither returned nor reported in %v", hangGuard)
		}
	}
}

func (w *waiting) result(t *testing.T) master.Report {
	t.Helper()
	select {
	case r := <-w.res:
		if r.err != nil {
			t.Fatalf("Wait: %v (report %+v)", r.err, r.r)
		}
		return r.r
	case <-time.After(hangGuard):
		t.Fatalf("Wait has not returned after %v", hangGuard)
	}
	panic("unreachable")
}

// newJob creates a job at a root of the test's own and returns the
// master's handle on it.
func newJob(t *testing.T, srv *zkserver.Server, spec protocol.Job, items ...string) *job.Job {
	t.Helper()
	root := "/master/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	l, err := protocol.NewLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	j := job.New(zktest.Connect(t, srv.Addr()), l)
	its := make([][]byte, len(items))
	for i, it := range items {
		its[i] = []byte(it)
	}
	if err := j.Create(spec, its); err != nil {
		t.Fatal(err)
	}
	return j
}

// worker is a worker's handle on the job, on a session of its own, with
// the timer it takes items under: a lease must name a live timer.
type worker struct {
	*job.Job
	timer string // child name of its timer; "" until it has one
}

// workerOn is a worker's handle on the job, on a session of its own.
func workerOn(t *testing.T, srv *zkserver.Server, j *job.Job) (*worker, *zk.Conn) {
	t.Helper()
	conn := zktest.Connect(t, srv.Addr())
	return &worker{Job: job.New(conn, j.L)}, conn
}

// startTimer creates the worker's timer, as a worker does when it starts,
// and returns its path.
func (w *worker) startTimer(t *testing.T, data protocol.Timer) string {
	t.Helper()
	p, err := w.CreateTimer(data)
	if err != nil {
		t.Fatal(err)
	}
	w.timer = path.Base(p)
	return p
}

// exit deletes the worker's timer, as a worker does when it exits: the
// master waits for every timer to go.
func (w *worker) exit(t *testing.T) {
	t.Helper()
	if err := w.DeleteTimer(w.timer); err != nil {
		t.Fatal(err)
	}
}

// take leases an item under the worker's timer, which it creates first if
// it has none yet.
func take(t *testing.T, w *worker, id string) job.Claim {
	t.Helper()
	if w.timer == "" {
		w.startTimer(t, protocol.Timer{ID: id, Host: "node-" + id, Pid: 1})
	}
	spec, err := w.Spec()
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.Take(t.Context(), spec, protocol.Lease{Timer: w.timer, ID: id, Host: "node-" + id, Pid: 1})
	if err != nil {
		t.Fatalf("worker %s taking an item: %v", id, err)
	}
	return c
}

func record(t *testing.T, w *worker, c job.Claim, o protocol.Outcome, exit int, id string) {
	t.Helper()
	if err := w.Record(t.Context(), c, protocol.Result{Outcome: o, Exit: exit, ID: id, Host: "node-" + id, Reason: fmt.Sprintf("exit %d", exit)}); err != nil {
		t.Fatalf("worker %s recording item %d: %v", id, c.Index, err)
	}
}

// vanishPoll is the poll of the tests where a worker vanishes. The master
// re-reads the leases at most every 50ms, and a sweep that finds the item
// unaccounted for on two polls first hands it out uncharged (see
// TestWait/vanished_lease_is_charged): polls a second apart leave the
// master ample time to see the lease go, as in production, where polls are
// a tenth of the timer.
const vanishPoll = time.Second

func TestWait(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	long := protocol.Job{TimerMillis: 60_000}

	t.Run("all ok", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, long, "a", "b", "c")
		w := startWait(t, j, master.WaitConfig{})
		w.following(t)
		wj, _ := workerOn(t, srv, j)
		for i := range 3 {
			c := take(t, wj, "w1")
			if c.Index != i {
				t.Fatalf("took item %d, want %d", c.Index, i)
			}
			record(t, wj, c, protocol.OK, 0, "w1")
		}
		wj.exit(t)
		r := w.result(t)
		if r.End != master.EndOK || r.OK != 3 || r.Failed+r.Stalled+r.Lost+r.Unfinished != 0 || len(r.Problems) != 0 {
			t.Errorf("report = %+v, want end ok with 3 ok", r)
		}
		if r.Root != j.L.Root || r.Items != 3 || !strings.Contains(r.Reason, "all 3 items done") {
			t.Errorf("report = %+v, want root %s, 3 items, reason all done", r, j.L.Root)
		}
		w.statuses.waitFor(t, "3 of 3 done", func(s master.Status) bool { return s.Items == 3 && s.Done == 3 })
	})

	t.Run("one failed", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, long, "a", "b", "c")
		w := startWait(t, j, master.WaitConfig{})
		w.following(t)
		wj, _ := workerOn(t, srv, j)
		for i := range 3 {
			c := take(t, wj, "w1")
			if i == 1 {
				record(t, wj, c, protocol.Failed, 3, "w1")
			} else {
				record(t, wj, c, protocol.OK, 0, "w1")
			}
		}
		wj.exit(t)
		r := w.result(t)
		if r.End != master.EndFailed || r.OK != 2 || r.Failed != 1 {
			t.Fatalf("report = %+v, want end %s with 2 ok and 1 failed", r, master.EndFailed)
		}
		if len(r.Problems) != 1 {
			t.Fatalf("problems = %+v, want item 1", r.Problems)
		}
		p := r.Problems[0]
		if p.Index != 2 || p.Item != "b" || p.Outcome != protocol.Failed || p.Exit != 3 || p.Attempt != 1 || p.ID != "w1" || p.Host != "node-w1" {
			t.Errorf("problem = %+v, want item 2 (the second line) \"b\" failed with exit 3 by w1", p)
		}
		w.statuses.waitFor(t, "1 failed", func(s master.Status) bool { return s.Failed == 1 })
		var out bytes.Buffer
		r.Print(&out)
		if !strings.Contains(out.String(), `failed item 2 "b": exit 3`) {
			t.Errorf("printed report does not name the failed item:\n%s", out.String())
		}
	})

	t.Run("worker vanishes, no retries", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, protocol.Job{TimerMillis: 60_000, Retries: 0}, "a", "b", "c")
		w := startWait(t, j, master.WaitConfig{Poll: vanishPoll})
		w.following(t)
		doomed, doomedConn := workerOn(t, srv, j)
		c := take(t, doomed, "doomed")
		// The master must have seen the lease, to see it vanish.
		w.statuses.waitFor(t, "the lease", func(s master.Status) bool { return s.Running == 1 })
		doomedConn.Close() // its session ends; ZooKeeper deletes the lease
		wj, _ := workerOn(t, srv, j)
		for range 2 {
			record(t, wj, take(t, wj, "w1"), protocol.OK, 0, "w1")
		}
		wj.exit(t)
		r := w.result(t)
		if r.End != master.EndLost || r.Lost != 1 || r.OK != 2 || r.Retried != 0 {
			t.Fatalf("report = %+v, want end %s with item %d lost", r, master.EndLost, c.Index)
		}
		if len(r.Problems) != 1 || r.Problems[0].Index != c.Index+1 || r.Problems[0].Outcome != protocol.Lost || r.Problems[0].Item != "a" {
			t.Errorf("problems = %+v, want item %d \"a\" lost", r.Problems, c.Index)
		}
		if !strings.Contains(r.Reason, "lost") {
			t.Errorf("reason %q does not say items were lost", r.Reason)
		}
		var out bytes.Buffer
		r.Print(&out)
		if !strings.Contains(out.String(), `lost item 1 "a"`) {
			t.Errorf("printed report does not name the lost item:\n%s", out.String())
		}
	})

	t.Run("worker vanishes, one retry", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, protocol.Job{TimerMillis: 60_000, Retries: 1}, "a", "b", "c")
		w := startWait(t, j, master.WaitConfig{Poll: vanishPoll})
		w.following(t)
		doomed, doomedConn := workerOn(t, srv, j)
		c := take(t, doomed, "doomed")
		w.statuses.waitFor(t, "the lease", func(s master.Status) bool { return s.Running == 1 })
		doomedConn.Close()

		// The item comes back on the retry list, its next turn charged once.
		raw := zktest.Connect(t, srv.Addr())
		want := protocol.Turn{Index: c.Index, Attempt: 2, Charged: 1}.Name()
		deadline := time.Now().Add(hangGuard)
		for {
			kids, _, ch, err := raw.ChildrenW(j.L.Retry())
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(kids, want) {
				break
			}
			if len(kids) > 0 {
				t.Fatalf("retry list %q, want %q", kids, want)
			}
			select {
			case <-ch:
			case <-time.After(time.Until(deadline)):
				t.Fatalf("no %s on the retry list after %v", want, hangGuard)
			}
		}
		w.statuses.waitFor(t, "1 requeued", func(s master.Status) bool { return s.Retried == 1 })

		wj, _ := workerOn(t, srv, j)
		for range 3 {
			record(t, wj, take(t, wj, "w1"), protocol.OK, 0, "w1")
		}
		wj.exit(t)
		r := w.result(t)
		if r.End != master.EndOK || r.OK != 3 || r.Lost != 0 || r.Retried != 1 {
			t.Fatalf("report = %+v, want end ok, 3 ok, 1 retried", r)
		}
		res, item, err := j.ResultOf(job.Outcome{Index: c.Index, Outcome: protocol.OK})
		if err != nil || res.Attempt != 2 || string(item) != "a" {
			t.Errorf("result of item %d = %+v, %q, %v; want attempt 2 of \"a\"", c.Index, res, item, err)
		}
	})

	t.Run("vanished lease is charged", func(t *testing.T) {
		// The master saw the lease, so the item ran: with no retries its
		// worker vanishing makes it lost. Fast polls let the sweep get
		// there before the rate-limited re-read of the leases; the item's
		// version says its turn was leased, so the sweep charges it too.
		t.Parallel()
		j := newJob(t, srv, protocol.Job{TimerMillis: 60_000, Retries: 0}, "a")
		w := startWait(t, j, master.WaitConfig{Poll: 2 * time.Millisecond})
		w.following(t)
		doomed, doomedConn := workerOn(t, srv, j)
		take(t, doomed, "doomed")
		w.statuses.waitFor(t, "the lease", func(s master.Status) bool { return s.Running == 1 })
		doomedConn.Close()
		raw := zktest.Connect(t, srv.Addr())
		guard := time.After(hangGuard)
		for {
			kids, _, ch, err := raw.ChildrenW(j.L.Retry())
			if err != nil {
				t.Fatal(err)
			}
			// Uncharged is the same turn offered again (0-1-0) or a next
			// one that costs nothing (0-2-0).
			for _, k := range kids {
				if turn, err := protocol.ParseTurn(k); err == nil && turn.Index == 0 && turn.Charged == 0 {
					t.Fatalf("the item was handed out again uncharged (%s), though the master saw its lease and the job allows no retries", k)
				}
			}
			select {
			case r := <-w.res:
				if r.err != nil || r.r.End != master.EndLost || r.r.Lost != 1 {
					t.Errorf("Wait = %+v, %v; want end %s with the item lost", r.r, r.err, master.EndLost)
				}
				return
			case <-ch:
			case <-guard:
				t.Fatalf("Wait has not returned after %v", hangGuard)
			}
		}
	})

	t.Run("ticket taken but never leased", func(t *testing.T) {
		t.Parallel()
		// A worker's ticket reply lost to a connection drop (a leader
		// election): the item was handed out but nobody leased it. The
		// master's sweep offers the same turn again (protocol version 2:
		// a turn never leased keeps its number), without a charge, so even
		// with no retries it is not lost.
		j := newJob(t, srv, protocol.Job{TimerMillis: 60_000, Retries: 0}, "a")
		w := startWait(t, j, master.WaitConfig{})
		w.following(t)
		wj, wconn := workerOn(t, srv, j)
		if _, err := wconn.Set(j.L.Cursor(), nil, -1); err != nil { // the ticket
			t.Fatal(err)
		}
		want := protocol.Turn{Index: 0, Attempt: 1, Charged: 0}.Name()
		deadline := time.Now().Add(hangGuard)
		for {
			kids, _, ch, err := wconn.ChildrenW(j.L.Retry())
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(kids, want) {
				break
			}
			if len(kids) > 0 {
				t.Fatalf("retry list %q, want %q (uncharged)", kids, want)
			}
			select {
			case <-ch:
			case <-time.After(time.Until(deadline)):
				t.Fatalf("no %s on the retry list after %v", want, hangGuard)
			}
		}
		c := take(t, wj, "w1")
		if c.Turn != (protocol.Turn{Index: 0, Attempt: 1, Charged: 0}) {
			t.Errorf("took %+v, want item 0 attempt 1, uncharged", c.Turn)
		}
		record(t, wj, c, protocol.OK, 0, "w1")
		wj.exit(t)
		r := w.result(t)
		if r.End != master.EndOK || r.OK != 1 || r.Lost != 0 || r.Retried != 0 {
			t.Errorf("report = %+v, want end ok, 1 ok, nothing lost or charged", r)
		}
	})

	t.Run("item given back unstarted", func(t *testing.T) {
		// docs/protocol.md: a worker that stops before it started the
		// command gives the item back (job.Release) on the retry list; in
		// protocol version 2 as a new turn (attempt 2) with the same
		// charge: no attempt was made, so nothing is charged.
		t.Parallel()
		j := newJob(t, srv, protocol.Job{TimerMillis: 60_000, Retries: 0}, "a")
		w := startWait(t, j, master.WaitConfig{Poll: vanishPoll})
		w.following(t)
		first, _ := workerOn(t, srv, j)
		c := take(t, first, "w1")
		w.statuses.waitFor(t, "the lease", func(s master.Status) bool { return s.Running == 1 })
		if err := first.Release(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		w.statuses.waitFor(t, "the lease gone", func(s master.Status) bool { return s.Running == 0 })
		// Give the master the time to act on the vanished lease (it does at
		// its next poll) before the item is taken again: two polls, or
		// until it shows it has (requeued or recorded the item).
		w.statuses.waitUntil(2*vanishPoll+master.MinPoll, func(s master.Status) bool { return s.Retried > 0 || s.Done > 0 })
		second, _ := workerOn(t, srv, j)
		c2 := take(t, second, "w2")
		if c2.Turn != (protocol.Turn{Index: 0, Attempt: 2, Charged: 0}) {
			t.Errorf("took %+v, want item 0 again on attempt 2, uncharged", c2.Turn)
		}
		record(t, second, c2, protocol.OK, 0, "w2")
		first.exit(t)
		second.exit(t)
		r := w.result(t)
		if r.End != master.EndOK || r.OK != 1 || r.Lost != 0 || r.Retried != 0 {
			t.Errorf("report = %+v, want end ok, 1 ok, nothing lost or charged", r)
		}
	})

	t.Run("sync timeout", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, protocol.Job{TimerMillis: 60_000, Sync: true}, "a")
		w := startWait(t, j, master.WaitConfig{SyncTimeout: 200 * time.Millisecond})
		r := w.result(t)
		if r.End != master.EndSyncTimeout {
			t.Fatalf("report = %+v, want end %s", r, master.EndSyncTimeout)
		}
		if !strings.Contains(r.Reason, "no worker started within 200ms") {
			t.Errorf("reason %q, want it to say no worker started within 200ms", r.Reason)
		}
		if ok, _, err := zktest.Connect(t, srv.Addr()).Exists(j.L.Sync()); !ok || err != nil {
			t.Errorf("the barrier is gone (%v) though no worker came", err)
		}
	})

	t.Run("sync released", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, protocol.Job{TimerMillis: 60_000, Sync: true}, "a")
		w := startWait(t, j, master.WaitConfig{SyncTimeout: hangGuard})
		wj, _ := workerOn(t, srv, j)
		if err := wj.ReleaseBarrier(); err != nil {
			t.Fatal(err)
		}
		record(t, wj, take(t, wj, "w1"), protocol.OK, 0, "w1")
		wj.exit(t)
		if r := w.result(t); r.End != master.EndOK || r.OK != 1 {
			t.Errorf("report = %+v, want end ok once the barrier was released and the item done", r)
		}
	})

	t.Run("expired timer", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, protocol.Job{TimerMillis: 300}, "a", "b")
		wj, _ := workerOn(t, srv, j)
		tp := wj.startTimer(t, protocol.Timer{ID: "100_7", Host: "node7", Pid: 4242})
		name := path.Base(tp)
		// The worker is on item 0; its lease names its timer.
		spec, err := wj.Spec()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wj.Take(t.Context(), spec, protocol.Lease{Timer: name, ID: "100_7", Host: "node7", Pid: 4242}); err != nil {
			t.Fatal(err)
		}
		w := startWait(t, j, master.WaitConfig{Poll: master.MinPoll})
		// Nobody kicks it.
		r := w.result(t)
		if r.End != master.EndHung {
			t.Fatalf("report = %+v, want end %s", r, master.EndHung)
		}
		if len(r.Expired) != 1 {
			t.Fatalf("expired timers = %+v, want %s", r.Expired, name)
		}
		e := r.Expired[0]
		if e.Timer != name || e.ID != "100_7" || e.Host != "node7" || e.Pid != 4242 || e.Index != 1 || e.Item != "a" {
			t.Errorf("expired timer = %+v, want %s of worker 100_7 on item 1 \"a\"", e, name)
		}
		if e.Age <= 300*time.Millisecond {
			t.Errorf("expired timer's age %v is within the 300ms limit", e.Age)
		}
		for _, want := range []string{name, "100_7", "node7", `item 1 "a"`} {
			if !strings.Contains(r.Reason, want) {
				t.Errorf("reason %q does not name %s", r.Reason, want)
			}
		}
		if r.Unfinished != 2 {
			t.Errorf("report says %d items without result, want 2", r.Unfinished)
		}
		// Both are named: the hung worker's, and the one that never ran.
		if len(r.Problems) != 2 || r.Problems[0].Index != 1 || r.Problems[0].Item != "a" || r.Problems[0].ID != "100_7" ||
			r.Problems[1].Index != 2 || r.Problems[1].Outcome != protocol.Unfinished || r.Problems[1].Reason != "never ran" {
			t.Errorf("problems = %+v, want item 1 \"a\" of the hung worker and item 2 that never ran, both unfinished", r.Problems)
		}
		reason, aborted, err := j.AbortReason()
		if err != nil || !aborted {
			t.Fatalf("abort node: aborted %v, %v; want the job aborted so workers stop", aborted, err)
		}
		if !strings.Contains(reason, name) {
			t.Errorf("abort reason %q does not name the timer %s", reason, name)
		}
		var out bytes.Buffer
		r.Print(&out)
		if !strings.Contains(out.String(), "expired timer "+name+": id 100_7, host node7, pid 4242, item 1 \"a\"") {
			t.Errorf("printed report does not name the expired timer:\n%s", out.String())
		}
	})

	t.Run("kicked timer does not expire", func(t *testing.T) {
		t.Parallel()
		const limit = time.Second
		j := newJob(t, srv, protocol.Job{TimerMillis: limit.Milliseconds()}, "a")
		wj, wconn := workerOn(t, srv, j)
		tp := wj.startTimer(t, protocol.Timer{ID: "100_1"})
		w := startWait(t, j, master.WaitConfig{})
		w.following(t)
		c := take(t, wj, "w1")
		// The worker kicks every 50ms until its timer has lived two limits
		// by the server's clock; a kick every 50ms leaves the kicker a
		// whole second of slack on a busy machine.
		kick := time.NewTicker(50 * time.Millisecond)
		defer kick.Stop()
		for {
			<-kick.C
			if err := wj.Kick(path.Base(tp)); err != nil {
				t.Fatal(err)
			}
			_, st, err := wconn.Exists(tp)
			if err != nil {
				t.Fatal(err)
			}
			if time.Duration(st.Mtime-st.Ctime)*time.Millisecond > 2*limit {
				break
			}
			select {
			case r := <-w.res:
				t.Fatalf("Wait returned %+v while the timer was kicked", r)
			default:
			}
		}
		record(t, wj, c, protocol.OK, 0, "w1")
		if err := wconn.Delete(tp, -1); err != nil { // the worker exits
			t.Fatal(err)
		}
		if r := w.result(t); r.End != master.EndOK {
			t.Errorf("report = %+v, want end ok", r)
		}
		if _, aborted, _ := j.AbortReason(); aborted {
			t.Error("the job was aborted")
		}
	})

	t.Run("waits for the workers to exit", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, long, "a")
		wj, wconn := workerOn(t, srv, j)
		tp := wj.startTimer(t, protocol.Timer{ID: "100_1"})
		w := startWait(t, j, master.WaitConfig{})
		w.following(t)
		record(t, wj, take(t, wj, "w1"), protocol.OK, 0, "w1")
		// Every item done but a timer left: not finished yet.
		w.statuses.waitFor(t, "1 of 1 done", func(s master.Status) bool { return s.Done == 1 && s.Timers == 1 })
		// Every status is followed by the finished check; a Wait still
		// following reports again (at the next poll), one that returned
		// never does.
		w.polled(t, 2)
		if err := wconn.Delete(tp, -1); err != nil {
			t.Fatal(err)
		}
		if r := w.result(t); r.End != master.EndOK || r.OK != 1 {
			t.Errorf("report = %+v, want end ok", r)
		}
	})

	t.Run("timer-only job", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, long)
		w := startWait(t, j, master.WaitConfig{})
		w.following(t)
		wj, wconn := workerOn(t, srv, j)
		if _, err := wj.CreateTimer(protocol.Timer{ID: "100_1"}); err != nil {
			t.Fatal(err)
		}
		w.statuses.waitFor(t, "the worker", func(s master.Status) bool { return s.Timers == 1 })
		wconn.Close() // the worker's session ends, and its timer with it
		r := w.result(t)
		if r.End != master.EndOK || r.Items != 0 || !strings.Contains(r.Reason, "every worker finished") {
			t.Errorf("report = %+v, want end ok: every worker finished", r)
		}
	})

	t.Run("job removed", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, long, "a")
		w := startWait(t, j, master.WaitConfig{})
		w.following(t)
		other, _ := workerOn(t, srv, j)
		if err := other.Remove(); err != nil {
			t.Fatal(err)
		}
		var res waitResult
		select {
		case res = <-w.res:
		case <-time.After(hangGuard):
			t.Fatalf("Wait has not returned %v after its job was removed", hangGuard)
		}
		// Removal deletes the children first, so the master may see the
		// job wholly or partly gone; either way it says it was removed.
		// The report says so too, for a --json report file.
		if !errors.Is(res.err, master.ErrRemoved) || res.r.End != master.EndRemoved || !strings.Contains(res.r.Reason, "removed") ||
			res.r.Items != 1 || res.r.Unfinished != 1 {
			t.Errorf("Wait = %+v, %v; want a report of the job removed, with 1 item unfinished, and master.ErrRemoved", res.r, res.err)
		}
		if !errors.Is(res.err, job.ErrNoJob) && !errors.Is(res.err, job.ErrIncomplete) {
			t.Errorf("Wait = %v; want it to say the job is gone (job.ErrNoJob or job.ErrIncomplete)", res.err)
		}
	})

	t.Run("aborted job", func(t *testing.T) {
		t.Parallel()
		// A job aborted before the master came ends at once: its workers
		// stop, so waiting for them would wait for ever.
		j := newJob(t, srv, long, "a")
		if err := j.Abort("operator said so"); err != nil {
			t.Fatal(err)
		}
		r := startWait(t, j, master.WaitConfig{}).result(t)
		if r.End != master.EndHung || !strings.Contains(r.Reason, "aborted") || !strings.Contains(r.Reason, "operator said so") {
			t.Errorf("report = %+v, want end %s naming the abort's reason", r, master.EndHung)
		}
	})

	t.Run("aborted while waiting", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, long, "a")
		w := startWait(t, j, master.WaitConfig{})
		w.following(t)
		wj, _ := workerOn(t, srv, j)
		take(t, wj, "w1")
		w.statuses.waitFor(t, "the lease", func(s master.Status) bool { return s.Running == 1 })
		if err := wj.Abort("another master gave up"); err != nil {
			t.Fatal(err)
		}
		r := w.result(t)
		if r.End != master.EndHung || !strings.Contains(r.Reason, "another master gave up") || r.Unfinished != 1 {
			t.Errorf("report = %+v, want end %s naming the abort's reason, 1 item without result", r, master.EndHung)
		}
	})

	t.Run("no job", func(t *testing.T) {
		t.Parallel()
		conn := zktest.Connect(t, srv.Addr())
		j := job.New(conn, protocol.Layout{Root: "/master/none"})
		if _, err := master.Wait(t.Context(), j, master.WaitConfig{}); !errors.Is(err, job.ErrNoJob) {
			t.Errorf("Wait on a missing job = %v, want job.ErrNoJob", err)
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		t.Parallel()
		j := newJob(t, srv, long, "a")
		ctx, cancel := context.WithCancel(t.Context())
		res := make(chan waitResult, 1)
		go func() {
			r, err := master.Wait(ctx, j, master.WaitConfig{})
			res <- waitResult{r, err}
		}()
		cancel()
		select {
		case r := <-res:
			if !errors.Is(r.err, context.Canceled) {
				t.Errorf("Wait after cancel = %v, want context.Canceled", r.err)
			}
		case <-time.After(hangGuard):
			t.Fatalf("Wait has not returned %v after its context was cancelled", hangGuard)
		}
		// An interrupted master leaves the job for its workers.
		if _, err := j.Spec(); err != nil {
			t.Errorf("the job is gone after an interrupted Wait: %v", err)
		}
	})
}

func TestCreate(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	conn := zktest.Connect(t, srv.Addr())
	j := job.New(conn, protocol.Layout{Root: "/master/create"})
	err := master.Create(j, master.Spec{Items: [][]byte{[]byte("a"), []byte("b")}, Timer: 90 * time.Second, Retries: 2, Sync: true, Master: "node1:42"})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := j.Spec()
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.Job{Protocol: protocol.Version, State: protocol.StateReady, Items: 2, TimerMillis: 90_000, Retries: 2, Sync: true, Master: "node1:42"}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("job = %+v, want %+v", spec, want)
	}
	// Nothing is overwritten.
	if err := master.Create(j, master.Spec{Items: [][]byte{[]byte("c")}, Timer: time.Second}); !errors.Is(err, job.ErrExists) {
		t.Errorf("creating over an existing job: %v, want job.ErrExists", err)
	}
}
