// Package job performs the zkdog protocol's operations on ZooKeeper: create
// and remove a job, take and release items, record results, read timers
// against the server's clock. Package protocol says where things are; this
// package is the only one that writes them, so every participant changes
// the tree the same way.
package job

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// Sentinel errors.
var (
	// ErrExists: a job (or something else) is already at the root.
	ErrExists = errors.New("job: a job already exists")
	// ErrNoJob: nothing is at the root.
	ErrNoJob = errors.New("job: no job")
	// ErrEmpty: no item is left to take.
	ErrEmpty = errors.New("job: queue empty")
	// ErrLeaseLost: the item's lease is gone, so another worker may own it
	// and this worker's result is not recorded.
	ErrLeaseLost = errors.New("job: lease lost")
	// ErrTooLarge: an item is over protocol.MaxItemBytes.
	ErrTooLarge = errors.New("job: item too large")
	// ErrStale: the item has moved on to a later attempt.
	ErrStale = errors.New("job: stale attempt")
)

// openACL: jobs are coordination data shared by every task of a batch
// array, which may run under several accounts, as the original did.
var openACL = zk.WorldACL(zk.PermAll)

// Job is a handle on the job at one root.
type Job struct {
	conn *zk.Conn
	L    protocol.Layout
}

// New returns a handle; it does not touch the server.
func New(conn *zk.Conn, l protocol.Layout) *Job { return &Job{conn: conn, L: l} }

// Conn is the connection the handle uses.
func (j *Job) Conn() *zk.Conn { return j.conn }

// Spec reads the job's settings. ErrNoJob when the root does not exist.
func (j *Job) Spec() (protocol.Job, *zk.Stat, error) {
	b, st, err := j.conn.Get(j.L.Root)
	if errors.Is(err, zk.ErrNoNode) {
		return protocol.Job{}, nil, fmt.Errorf("%w at %s", ErrNoJob, j.L.Root)
	}
	if err != nil {
		return protocol.Job{}, nil, fmt.Errorf("job: reading %s: %w", j.L.Root, err)
	}
	spec, err := protocol.DecodeJob(b)
	if err != nil {
		return protocol.Job{}, nil, fmt.Errorf("%s: %w", j.L.Root, err)
	}
	return spec, st, nil
}

// ServerTime writes the master's clock node and returns the time the
// server stamped on it. Timer ages are measured against this, never
// against a local clock, so clock skew between hosts does not count.
func (j *Job) ServerTime() (time.Time, error) {
	st, err := j.conn.Set(j.L.Clock(), nil, -1)
	if err != nil {
		return time.Time{}, fmt.Errorf("job: reading the server clock: %w", err)
	}
	return time.UnixMilli(st.Mtime), nil
}

// Counts are the job's counters, read in one pass.
type Counts struct {
	Items   int // items in the job
	Issued  int // tickets taken, capped at Items
	Retry   int // items waiting to be given out again
	Leased  int // items being worked on
	Done    int // results recorded
	Failed  int // results with a failed outcome
	Timers  int // live timers
	Aborted bool
}

// Queued is how many items are waiting to be taken.
func (c Counts) Queued() int { return c.Items - c.Issued + c.Retry }

// Counts reads the counters. The reads are pipelined, so the cost is about
// one round trip.
func (j *Job) Counts(spec protocol.Job) (Counts, error) {
	c := Counts{Items: spec.Items}
	var (
		issued, done, failed *zk.Stat
		retry, leases, tmrs  []string
		aborted              bool
	)
	err := parallel(6,
		func() (err error) { _, issued, err = j.conn.Exists(j.L.Cursor()); return },
		func() (err error) { _, done, err = j.conn.Exists(j.L.Done()); return },
		func() (err error) { _, failed, err = j.conn.Exists(j.L.Failed()); return },
		func() (err error) { retry, _, err = j.conn.Children(j.L.Retry()); return },
		func() (err error) { leases, _, err = j.conn.Children(j.L.Leases()); return },
		func() (err error) { tmrs, _, err = j.conn.Children(j.L.Timers()); return },
		func() (err error) { aborted, _, err = j.conn.Exists(j.L.Abort()); return },
	)
	if err != nil {
		return c, fmt.Errorf("job: reading counters: %w", err)
	}
	if issued == nil || done == nil || failed == nil {
		return c, fmt.Errorf("%w at %s (it was removed)", ErrNoJob, j.L.Root)
	}
	c.Issued = min(int(issued.Version), spec.Items)
	c.Done, c.Failed = int(done.Version), int(failed.Version)
	c.Retry, c.Leased, c.Timers = len(retry), len(leases), len(tmrs)
	c.Aborted = aborted
	return c, nil
}

// Abort records that the master gave up; workers watching it stop their
// children. It is idempotent.
func (j *Job) Abort(reason string) error {
	_, err := j.conn.Create(j.L.Abort(), protocol.Encode(protocol.Abort{V: protocol.Version, Reason: reason}), 0, openACL)
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("job: writing %s: %w", j.L.Abort(), err)
	}
	return nil
}

// AbortReason reads the abort node; ok is false when the job is not aborted.
func (j *Job) AbortReason() (reason string, ok bool, err error) {
	b, _, err := j.conn.Get(j.L.Abort())
	if errors.Is(err, zk.ErrNoNode) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	a, err := protocol.DecodeAbort(b)
	if err != nil {
		return "", true, err
	}
	return a.Reason, true, nil
}

// Transient reports whether err may go away by itself: the connection
// dropped or no server answered, while the session may well live on. The
// request may or may not have been applied; every operation of this
// package is safe to repeat after it (a repeated ticket leaves an item
// unaccounted for, which the master's sweep finds).
func Transient(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionMoved) || errors.Is(err, zk.ErrClosing)
}

// parallel runs fns with at most n in flight. The client pipelines
// concurrent requests on its one connection, so this turns k round trips
// into about one; the server answers a session's requests in order.
func parallel(n int, fns ...func() error) error {
	sem := make(chan struct{}, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for _, fn := range fns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// multiErr returns the error of the operation that failed a Multi. The
// operations before it report success and those after it a generic
// "rolled back" code, so the first error in order is the one that counts.
func multiErr(res []zk.MultiResponse, err error) error {
	if err == nil {
		return nil
	}
	for _, r := range res {
		if r.Error != nil {
			return r.Error
		}
	}
	return err
}

// sortedChildren lists a node's children in name order.
func (j *Job) sortedChildren(path string) ([]string, error) {
	kids, _, err := j.conn.Children(path)
	if err != nil {
		return nil, err
	}
	slices.Sort(kids)
	return kids, nil
}

func isTimerName(name string) bool { return strings.HasPrefix(name, protocol.TimerPrefix) }
