package job

import (
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// Watch is closed once what it was set on changes, or when the session
// loses its watches (a closed or expired session); either way the reader
// reads again. ZooKeeper watches fire once, so a Watch does too.
type Watch <-chan struct{}

// watchOf turns a client watch into a Watch. The client closes every
// watch channel when the session ends, so the goroutine never outlives it.
func watchOf(ch <-chan zk.Event) Watch {
	out := make(chan struct{})
	go func() {
		<-ch
		close(out)
	}()
	return out
}

// either fires when a or b does.
func either(a, b Watch) Watch {
	out := make(chan struct{})
	go func() {
		select {
		case <-a:
		case <-b:
		}
		close(out)
	}()
	return out
}

// Tally is the result counters.
type Tally struct {
	Done   int // results recorded
	Failed int // results whose outcome is not ok
}

// WatchTally reads the result counters and watches the done counter, which
// every result moves.
func (j *Job) WatchTally() (Tally, Watch, error) {
	var (
		ch           <-chan zk.Event
		done, failed *zk.Stat
		ok           bool
	)
	err := parallel(2,
		func() (err error) { ok, done, ch, err = j.conn.ExistsW(j.L.Done()); return },
		func() (err error) { failed, err = j.stat(j.L.Failed()); return },
	)
	if err == nil && (!ok || failed == nil) {
		err = zk.ErrNoNode
	}
	if errors.Is(err, zk.ErrNoNode) {
		return Tally{}, nil, j.gone(err)
	}
	if err != nil {
		return Tally{}, nil, fmt.Errorf("reading the result counters: %w", err)
	}
	return Tally{Done: int(done.Version), Failed: int(failed.Version)}, watchOf(ch), nil
}

// Presence is who is working on the job now and who ever came.
type Presence struct {
	Timers []string // child names of the live timers
	Came   int      // timers ever created
}

// WatchTimers lists the live timers, reads how many were ever created, and
// watches the list.
func (j *Job) WatchTimers() (Presence, Watch, error) {
	var (
		p  Presence
		ch <-chan zk.Event
	)
	// The counter first, then the list: the server answers a session's
	// requests in order, so every worker counted is listed unless it has
	// gone already. Read the other way round, a worker arriving between
	// the two reads would be counted and not listed, and a job without
	// items would look finished while it runs.
	workers, err := j.stat(j.L.Workers())
	if err == nil {
		p.Timers, _, ch, err = j.conn.ChildrenW(j.L.Timers())
	}
	if err == nil && workers == nil {
		err = zk.ErrNoNode
	}
	if errors.Is(err, zk.ErrNoNode) {
		return Presence{}, nil, j.gone(err)
	}
	if err != nil {
		return Presence{}, nil, fmt.Errorf("listing timers: %w", err)
	}
	p.Came = int(workers.Version)
	return p, watchOf(ch), nil
}

// WatchLeases lists the turns being worked on and watches the list.
func (j *Job) WatchLeases() ([]protocol.Turn, Watch, error) {
	names, _, ch, err := j.conn.ChildrenW(j.L.Leases())
	if err != nil {
		return nil, nil, j.listErr(j.L.Leases(), err)
	}
	return j.turns(j.L.Leases(), names), watchOf(ch), nil
}

// Leases lists the turns being worked on.
func (j *Job) Leases() ([]protocol.Turn, error) {
	names, _, err := j.conn.Children(j.L.Leases())
	if err != nil {
		return nil, j.listErr(j.L.Leases(), err)
	}
	return j.turns(j.L.Leases(), names), nil
}

// Retries lists the turns waiting for a worker on the retry list.
func (j *Job) Retries() ([]protocol.Turn, error) {
	names, _, err := j.conn.Children(j.L.Retry())
	if err != nil {
		return nil, j.listErr(j.L.Retry(), err)
	}
	return j.turns(j.L.Retry(), names), nil
}

func (j *Job) listErr(p string, err error) error {
	if errors.Is(err, zk.ErrNoNode) {
		return j.gone(err)
	}
	return fmt.Errorf("listing %s: %w", p, err)
}

// turns parses the lease or retry entry names under dir; a name of another
// shape is no turn of this protocol: it is named (once) and left out.
func (j *Job) turns(dir string, names []string) []protocol.Turn {
	out := make([]protocol.Turn, 0, len(names))
	for _, n := range names {
		t, err := protocol.ParseTurn(n)
		if err != nil {
			j.unreadable(dir+"/"+n, err)
			continue
		}
		out = append(out, t)
	}
	return out
}

// WatchBarrier reports whether the sync barrier is released (gone) and,
// while it is not, watches it.
func (j *Job) WatchBarrier() (released bool, w Watch, err error) {
	ok, _, ch, err := j.conn.ExistsW(j.L.Sync())
	if err != nil {
		return false, nil, fmt.Errorf("reading the sync barrier: %w", err)
	}
	return !ok, watchOf(ch), nil
}

// WatchAbort reads the abort node and, while there is none, watches for
// it.
func (j *Job) WatchAbort() (reason string, aborted bool, w Watch, err error) {
	ok, _, ch, err := j.conn.ExistsW(j.L.Abort())
	if err != nil {
		return "", false, nil, fmt.Errorf("reading %s: %w", j.L.Abort(), err)
	}
	if !ok {
		return "", false, watchOf(ch), nil
	}
	reason, aborted, err = j.AbortReason()
	return reason, aborted, watchOf(ch), err
}

// abortText is the abort's reason; an abort nobody can read still aborts.
func abortText(b []byte) string {
	a, err := protocol.DecodeAbort(b)
	if err != nil {
		return fmt.Sprintf("(unreadable abort record: %v)", err)
	}
	if a.Reason == "" {
		return "no reason given"
	}
	return a.Reason
}

// WatchRetryOrDone, for a worker with nothing left to take, reads how many
// items wait on the retry list and how many have results, and watches
// both.
func (j *Job) WatchRetryOrDone() (retry, done int, w Watch, err error) {
	var (
		names  []string
		st     *zk.Stat
		ok     bool
		rw, dw <-chan zk.Event
	)
	err = parallel(2,
		func() (err error) { names, _, rw, err = j.conn.ChildrenW(j.L.Retry()); return },
		func() (err error) { ok, st, dw, err = j.conn.ExistsW(j.L.Done()); return },
	)
	if err == nil && !ok {
		err = zk.ErrNoNode
	}
	if errors.Is(err, zk.ErrNoNode) {
		return 0, 0, nil, j.gone(err)
	}
	if err != nil {
		return 0, 0, nil, fmt.Errorf("reading the retry list and results: %w", err)
	}
	return len(names), int(st.Version), either(watchOf(rw), watchOf(dw)), nil
}
