// Package job performs the zkdog protocol's operations on ZooKeeper: create
// and remove a job, take and release items, record results, keep timers,
// and the reads (with their watches) that the master and the workers
// decide on. Package protocol says where things are; this package is the
// only one that talks to ZooKeeper, so every participant changes the tree
// the same way and every znode is created with the job's ACL in one place.
package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// Sentinel errors.
var (
	// ErrExists: a job (or something else) is already at the root.
	ErrExists = errors.New("a job already exists")
	// ErrNoJob: nothing is at the root.
	ErrNoJob = errors.New("no job")
	// ErrNested: a job would be, or is, inside another job's tree.
	ErrNested = errors.New("inside another job")
	// ErrFinished: the job has ended and is sealed; there is nothing
	// left to take.
	ErrFinished = errors.New("finished")
	// ErrIncomplete: the root is a zkdog job, but nodes the protocol needs
	// are gone (a removal was interrupted); zkdog clear removes it.
	ErrIncomplete = errors.New("the job is partly removed")
	// ErrAbandoned: the job was left filling by a master that died.
	ErrAbandoned = errors.New("left unfinished by its master")
	// ErrBudgetSpent: the job's --max-failures is reached; no item is
	// handed out any more.
	ErrBudgetSpent = errors.New("the job's failure budget is spent")
	// ErrEmpty: no item is left to take.
	ErrEmpty = errors.New("queue empty")
	// ErrLeaseLost: the item's lease is gone, so another worker may own it
	// and this worker's result is not recorded.
	ErrLeaseLost = errors.New("lease lost")
	// ErrTimerLost: the worker's timer is gone (its session expired, or
	// someone deleted it), so it may not take items.
	ErrTimerLost = errors.New("timer lost")
	// ErrTooLarge: an item is over protocol.MaxItemBytes.
	ErrTooLarge = errors.New("item too large")
	// ErrStale: the item has moved on to a later turn.
	ErrStale = errors.New("stale attempt")
	// ErrNoAccess: the handle's identity may not read, or not change, the
	// job.
	ErrNoAccess = errors.New("not allowed")
	// ErrUnsafe: the job's ACL lets others than its owner change it.
	ErrUnsafe = errors.New("not private")
)

// RetryPause spaces out the repeats of a request that failed on a dropped
// connection: the client reconnects within a second or two after a server
// dies, and a tighter loop would only queue requests behind the outage.
const RetryPause = 200 * time.Millisecond

// Job is a handle on the job at one root.
type Job struct {
	conn *zk.Conn
	L    protocol.Layout
	// acl is what every znode the handle creates carries: the job's own,
	// once CheckAccess has read it, or the creator's (WithAccess).
	acl    []zk.ACL
	access Access

	sessOnce sync.Once
	sess     int64
	// localClock: Timers measured ages by this host's clock.
	localClock atomic.Bool
	// log names unreadable records, each once (named); nil says nothing.
	log   *slog.Logger
	named sync.Map
	// origins caches each bucket's origins (originOf).
	origins sync.Map
	// buckets caches item bucket records, chunks the last chunks read
	// (item): neither changes once the job is ready.
	buckets sync.Map
	chunks  chunkCache
}

// LocalClock reports whether the last ages were measured by this host's
// clock, not the server's: the handle may read the job but not write its
// clock node.
func (j *Job) LocalClock() bool { return j.localClock.Load() }

// New returns a handle; it does not touch the server. conn should have its
// session already: the handle remembers that session, and nodes owned by
// any later one the client opens (after an expiry) are not this handle's.
//
// Without WithAccess the handle creates world-open znodes, as a test on a
// private server may want; zkdog itself always gives an Access.
func New(conn *zk.Conn, l protocol.Layout, opts ...Option) *Job {
	j := &Job{conn: conn, L: l, acl: zk.WorldACL(zk.PermAll)}
	for _, o := range opts {
		o(j)
	}
	if id := conn.SessionID(); id != 0 {
		j.sessOnce.Do(func() { j.sess = id })
	}
	return j
}

// session is the id of the session the handle was made on.
func (j *Job) session() int64 {
	j.sessOnce.Do(func() { j.sess = j.conn.SessionID() })
	return j.sess
}

// Spec reads the job's settings. ErrNoJob when the root does not exist.
func (j *Job) Spec() (protocol.Job, error) {
	b, _, err := j.conn.Get(j.L.Root)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return protocol.Job{}, fmt.Errorf("%w at %s", ErrNoJob, j.L.Root)
	case errors.Is(err, zk.ErrNoAuth):
		return protocol.Job{}, j.noAccess()
	case err != nil:
		return protocol.Job{}, fmt.Errorf("reading %s: %w", j.L.Root, err)
	}
	return decodeJob(j.L.Root, b)
}

func decodeJob(root string, b []byte) (protocol.Job, error) {
	spec, err := protocol.DecodeJob(b)
	if err != nil {
		return protocol.Job{}, fmt.Errorf("%s: %w", root, err)
	}
	return spec, nil
}

// ServerTime writes the clock node and returns the time the server
// stamped on it. Timer ages are measured against this, never against a
// local clock, so clock skew between hosts does not count.
func (j *Job) ServerTime() (time.Time, error) {
	st, err := j.conn.Set(j.L.Clock(), nil, -1)
	if errors.Is(err, zk.ErrNoNode) {
		return time.Time{}, j.gone(err)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the server clock: %w", err)
	}
	return time.UnixMilli(st.Mtime), nil
}

// Sync makes the server this session reads from catch up with the leader.
// Reads are served by whichever server the client is connected to, which
// may lag behind writes other sessions made; a decision that must see
// them (that an item is unaccounted for, that a job does not exist) syncs
// first.
func (j *Job) Sync() error {
	if _, err := j.conn.Sync(j.L.Root); err != nil {
		return fmt.Errorf("syncing with the leader: %w", err)
	}
	return nil
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
	Workers int // timers ever created
	Aborted bool
}

// Queued is how many items are waiting to be taken.
func (c Counts) Queued() int { return c.Items - c.Issued + c.Retry }

// Counts reads the counters. The reads are pipelined, so the cost is about
// one round trip. ErrIncomplete when a counter is missing.
func (j *Job) Counts(spec protocol.Job) (Counts, error) {
	c := Counts{Items: spec.Items}
	var (
		issued, done, failed, workers *zk.Stat
		retry, leases, tmrs           []string
		aborted                       bool
	)
	err := parallel(8,
		func() (err error) { issued, err = j.stat(j.L.Cursor()); return },
		func() (err error) { done, err = j.stat(j.L.Done()); return },
		func() (err error) { failed, err = j.stat(j.L.Failed()); return },
		func() (err error) { workers, err = j.stat(j.L.Workers()); return },
		func() (err error) { retry, _, err = j.conn.Children(j.L.Retry()); return },
		func() (err error) { leases, _, err = j.conn.Children(j.L.Leases()); return },
		func() (err error) { tmrs, _, err = j.conn.Children(j.L.Timers()); return },
		func() (err error) { aborted, _, err = j.conn.Exists(j.L.Abort()); return },
	)
	if errors.Is(err, zk.ErrNoNode) || (err == nil && (issued == nil || done == nil || failed == nil || workers == nil)) {
		return c, j.gone(zk.ErrNoNode)
	}
	if err != nil {
		return c, fmt.Errorf("reading counters: %w", err)
	}
	c.Issued = min(int(issued.Version), spec.Items)
	c.Done, c.Failed, c.Workers = int(done.Version), int(failed.Version), int(workers.Version)
	c.Retry, c.Leased, c.Timers = len(retry), len(leases), len(tmrs)
	c.Aborted = aborted
	return c, nil
}

// gone explains a node of the job that is missing: the whole job was
// removed, or only part of it.
func (j *Job) gone(cause error) error {
	ok, _, err := j.conn.Exists(j.L.Root)
	switch {
	case err != nil:
		return fmt.Errorf("reading %s: %w", j.L.Root, cause)
	case !ok:
		return fmt.Errorf("%w at %s (it was removed)", ErrNoJob, j.L.Root)
	}
	if err := j.finished(); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s lacks nodes a job has; remove it with zkdog clear --root %s", ErrIncomplete, j.L.Root, j.L.Root)
}

// Abort records that the master gave up; workers watching it stop their
// children. It is idempotent.
func (j *Job) Abort(reason string) error {
	_, err := j.conn.Create(j.L.Abort(), protocol.Encode(protocol.Abort{V: protocol.Version, Reason: reason}), 0, j.acl)
	if errors.Is(err, zk.ErrNoNode) {
		return j.gone(err)
	}
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("writing %s: %w", j.L.Abort(), err)
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
		return "", false, fmt.Errorf("reading %s: %w", j.L.Abort(), err)
	}
	return abortText(b), true, nil
}

// Transient reports whether err may go away by itself: the connection
// dropped or no server answered, while the session may well live on. The
// request may or may not have been applied; every operation of this
// package is safe to repeat after it.
func Transient(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionMoved) || errors.Is(err, zk.ErrClosing)
}

// retry runs fn until it returns anything but a transient error, pausing
// RetryPause between tries, or until ctx is done.
func retry(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if !Transient(err) {
			return err
		}
		if perr := pause(ctx); perr != nil {
			return fmt.Errorf("%w (gave up: %w)", err, perr)
		}
	}
}

// pause waits RetryPause, or returns ctx's cause if it is done first.
func pause(ctx context.Context) error {
	t := time.NewTimer(RetryPause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
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

// multi runs ops in one transaction and returns the index of the
// operation that failed it, with its error (-1 and nil on success, -1
// and the request's error when it did not reach the server). The
// operations before the failed one report success and those after it a
// generic "rolled back" code, so the first error in order is the one that
// counts.
func (j *Job) multi(ops ...any) (int, error) {
	res, err := j.conn.Multi(ops...)
	if err == nil {
		return -1, nil
	}
	for i, r := range res {
		if r.Error != nil {
			return i, r.Error
		}
	}
	return -1, err
}

// stat is Exists with a nil Stat for a missing node: the client returns a
// zero Stat then, which would read as a node at version 0 (a counter
// that counts nothing, an item on its first turn).
func (j *Job) stat(p string) (*zk.Stat, error) {
	ok, st, err := j.conn.Exists(p)
	if err != nil || !ok {
		return nil, err
	}
	return st, nil
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

// FinishedError says the job has ended and is sealed, and how it ended. It
// matches ErrFinished.
type FinishedError struct {
	Root    string
	Summary protocol.Summary
}

func (e *FinishedError) Error() string {
	return fmt.Sprintf("the job at %s is finished: %s", e.Root, e.Summary.Describe())
}

// finished is a FinishedError when the job is sealed, else nil: a node
// the protocol needs may be missing because the job ended.
func (j *Job) finished() error {
	spec, err := j.Spec()
	if err != nil || spec.State != protocol.StateFinished {
		return nil
	}
	return finishedErr(j.L.Root, spec)
}

func finishedErr(root string, spec protocol.Job) error {
	e := &FinishedError{Root: root}
	if spec.Summary != nil {
		e.Summary = *spec.Summary
	}
	return e
}

// Is makes a FinishedError match ErrFinished.
func (e *FinishedError) Is(target error) bool { return target == ErrFinished }
