package job

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// Gauge is the job's accounting read from znode stats alone: a counter's
// version, a directory's child count. Its cost is a fixed number of small
// reads whatever the number of workers, where a listing of leases or
// timers grows with them.
type Gauge struct {
	Issued int // tickets taken, capped at the job's items
	Retry  int // retry entries
	Leased int // leases
	Done   int // results recorded
	Failed int // results whose outcome is not ok
	Came   int // timers ever created
	Live   int // timers alive
}

// Unaccounted is tickets taken minus the items that have a result, a lease
// or a retry entry: above zero while a take is between its ticket and its
// lease, or when a lease vanished without a result, or a ticket's reply
// was lost. ReadGauge's order of reads never makes it larger than that.
func (g Gauge) Unaccounted() int { return g.Issued - g.Done - g.Leased - g.Retry }

// Departed is how many timers have gone: every timer is counted in
// workers by the transaction that creates it.
func (g Gauge) Departed() int { return g.Came - g.Live }

// ReadGauge reads the counters one after the other on this session, which
// the server answers in order. The order keeps Unaccounted from rising
// above the truth through a change between two reads: the cursor comes
// first (a later ticket is not counted); the retry list before the leases
// (a take from the retry list moves an item from one to the other in one
// transaction, so it is counted twice rather than missed); the leases
// before done (a result deletes a lease and bumps done at once, likewise).
// A requeue (lease to retry entry) can still be missed by one for a read:
// the sweep judges an item only when two sweeps agree. The workers counter
// is read before the timers, so every worker counted is alive or gone,
// never yet to come (Departed is never too high).
func (j *Job) ReadGauge(spec protocol.Job) (Gauge, error) {
	paths := []string{j.L.Cursor(), j.L.Retry(), j.L.Leases(), j.L.Done(), j.L.Failed(), j.L.Workers(), j.L.Timers()}
	sts := make([]*zk.Stat, len(paths))
	for i, p := range paths {
		st, err := j.stat(p)
		if err != nil {
			return Gauge{}, fmt.Errorf("reading %s: %w", p, err)
		}
		if st == nil {
			return Gauge{}, j.gone(zk.ErrNoNode)
		}
		sts[i] = st
	}
	return Gauge{
		Issued: min(int(sts[0].Version), spec.Items),
		Retry:  int(sts[1].NumChildren), Leased: int(sts[2].NumChildren),
		Done: int(sts[3].Version), Failed: int(sts[4].Version),
		Came: int(sts[5].Version), Live: int(sts[6].NumChildren),
	}, nil
}

// ReadPresence reads how many timers were ever created and how many are
// alive, in that order (see ReadGauge): two small reads.
func (j *Job) ReadPresence() (came, live int, err error) {
	workers, err := j.stat(j.L.Workers())
	if err != nil {
		return 0, 0, fmt.Errorf("reading %s: %w", j.L.Workers(), err)
	}
	timers, err := j.stat(j.L.Timers())
	if err != nil {
		return 0, 0, fmt.Errorf("reading %s: %w", j.L.Timers(), err)
	}
	if workers == nil || timers == nil {
		return 0, 0, j.gone(zk.ErrNoNode)
	}
	return int(workers.Version), int(timers.NumChildren), nil
}

// TimerNames lists the live timers' names, and what the workers counter
// said just before: every timer it counts is listed unless it has gone.
func (j *Job) TimerNames() (names []string, came int, err error) {
	workers, err := j.stat(j.L.Workers())
	if err != nil {
		return nil, 0, fmt.Errorf("reading %s: %w", j.L.Workers(), err)
	}
	if workers == nil {
		return nil, 0, j.gone(zk.ErrNoNode)
	}
	names, _, err = j.conn.Children(j.L.Timers())
	if err != nil {
		return nil, 0, j.listErr(j.L.Timers(), err)
	}
	out := names[:0]
	for _, n := range names {
		if isTimerName(n) {
			out = append(out, n)
		}
	}
	return out, int(workers.Version), nil
}

// Clock is "now" on the server's clock (ServerTime); a reader of a public
// job, who may not write the clock, gets its own and is told so
// (LocalClock). Timers read after it on this handle see every kick that
// landed before it (see Timers).
func (j *Job) Clock() (time.Time, error) {
	now, err := j.ServerTime()
	if errors.Is(err, zk.ErrNoAuth) {
		j.localClock.Store(true)
		return time.Now(), nil
	}
	return now, err
}

// ReadTimers reads the named timers and their ages at now, which Clock
// returned before: one read each. A timer gone is nil.
func (j *Job) ReadTimers(now time.Time, names []string) ([]*TimerState, error) {
	states := make([]*TimerState, len(names))
	fns := make([]func() error, len(names))
	for i, name := range names {
		fns[i] = func() (err error) { states[i], err = j.readTimer(name); return }
	}
	if err := parallel(32, fns...); err != nil {
		return nil, fmt.Errorf("reading timers: %w", err)
	}
	for _, s := range states {
		if s != nil {
			s.Age = max(now.Sub(s.Kicked), 0)
		}
	}
	return states, nil
}

// attachBatch is how many leases AttachWorkOf reads at once: the reads
// are small and the session pipelines them, so a batch costs about a
// round trip, and a hung worker found in the first batches spares the
// rest.
const attachBatch = 256

// AttachWorkOf is AttachWork for a caller that has just listed the leases:
// it reads them in the order given, a batch at a time, and stops once
// every timer has its item. A master passes the leases oldest first: a
// hung worker has held its item about as long as it has not kicked, so
// it is found among the first, without a read of every worker's lease.
func (j *Job) AttachWorkOf(timers []TimerState, leases []protocol.Turn) error {
	byTimer := make(map[string]int, len(timers))
	for i := range timers {
		byTimer[timers[i].Name] = i
	}
	var labels []func() error
	for start := 0; start < len(leases) && len(byTimer) > 0; start += attachBatch {
		batch := leases[start:min(start+attachBatch, len(leases))]
		owners, err := j.leaseOwners(batch)
		if err != nil {
			return err
		}
		for i, turn := range batch {
			k, ok := byTimer[owners[i]]
			if !ok {
				continue
			}
			delete(byTimer, owners[i])
			t := &timers[k]
			t.Item, t.Attempt = turn.Index, turn.Attempt
			labels = append(labels, func() error {
				if b, err := j.item(context.Background(), turn.Index); err == nil {
					t.Label = protocol.Label(b)
				}
				return nil // the label is a courtesy
			})
		}
	}
	return parallel(32, labels...)
}

// leaseOwners reads the timer each lease names; "" for a lease gone or
// unreadable.
func (j *Job) leaseOwners(turns []protocol.Turn) ([]string, error) {
	owners := make([]string, len(turns))
	fns := make([]func() error, len(turns))
	for i, t := range turns {
		fns[i] = func() error {
			b, _, err := j.conn.Get(j.L.Lease(t))
			if errors.Is(err, zk.ErrNoNode) {
				return nil // finished meanwhile
			}
			if err != nil {
				return err
			}
			if l, err := protocol.DecodeLease(b); err == nil {
				owners[i] = l.Timer
			}
			return nil
		}
	}
	if err := parallel(attachBatch, fns...); err != nil {
		return nil, fmt.Errorf("reading leases: %w", err)
	}
	return owners, nil
}
