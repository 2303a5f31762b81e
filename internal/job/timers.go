package job

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// CreateTimer creates a worker's ephemeral sequential timer and returns its
// path. The znode lives as long as the worker's session; its mtime moves
// on every kick. The same transaction counts the worker in the job's
// workers counter, so that the master of a job without items knows
// workers came even if it never saw one's timer.
func (j *Job) CreateTimer(t protocol.Timer) (string, error) {
	t.V = protocol.Version
	res, err := j.conn.Multi(
		&zk.CreateRequest{Path: j.L.Timer(protocol.TimerPrefix), Data: protocol.Encode(t), Acl: j.acl, Flags: zk.FlagEphemeral | zk.FlagSequence},
		&zk.SetDataRequest{Path: j.L.Workers(), Version: -1},
	)
	if err == nil {
		return res[0].String, nil
	}
	for _, r := range res {
		if r.Error != nil {
			err = r.Error
			break
		}
	}
	if errors.Is(err, zk.ErrNoNode) {
		return "", j.gone(err)
	}
	return "", fmt.Errorf("creating a timer: %w", err)
}

// KickTimer rewrites the worker's own timer with data, which moves its
// mtime on the server. ErrTimerLost when the node is gone or belongs to
// another session than this handle's; other errors may pass (a dropped
// connection).
func (j *Job) KickTimer(name string, data protocol.Timer) error {
	data.V = protocol.Version
	st, err := j.conn.Set(j.L.Timer(name), protocol.Encode(data), -1)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return fmt.Errorf("%w: %s no longer exists", ErrTimerLost, j.L.Timer(name))
	case err != nil:
		return fmt.Errorf("kicking %s: %w", j.L.Timer(name), err)
	case st.EphemeralOwner != j.session():
		return fmt.Errorf("%w: %s now belongs to session 0x%x", ErrTimerLost, j.L.Timer(name), st.EphemeralOwner)
	}
	return nil
}

// WatchTimer reports whether the worker's timer still exists and watches
// it; a kick fires the watch too.
func (j *Job) WatchTimer(name string) (exists bool, w Watch, err error) {
	ok, _, ch, err := j.conn.ExistsW(j.L.Timer(name))
	if err != nil {
		return false, nil, fmt.Errorf("reading %s: %w", j.L.Timer(name), err)
	}
	return ok, watchOf(ch), nil
}

// DeleteTimer deletes the worker's timer, which spares the master waiting
// for the session to close. Gone already is not an error.
func (j *Job) DeleteTimer(name string) error {
	if err := j.conn.Delete(j.L.Timer(name), -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("deleting %s: %w", j.L.Timer(name), err)
	}
	return nil
}

// TimerState is one timer as read from the server.
type TimerState struct {
	Name string
	protocol.Timer
	// Item, Attempt and Label say what the worker is working on, once
	// AttachWork has looked; Item is -1 when nothing (or not looked).
	Item    int
	Attempt int
	Label   string
	// Kicked is the server time of the last kick (or the creation).
	Kicked time.Time
	// Age is how long ago, by the server's clock, it was last kicked.
	Age   time.Duration
	Owner int64
}

// Expired reports whether the timer has gone un-kicked longer than its
// limit in a job whose timer is limit (protocol.Timer.Limit).
func (t TimerState) Expired(limit time.Duration) bool { return t.Age > t.Limit(limit) }

// Timers reads every timer and its age against the server's clock, and
// the server time it was measured at. A timer that vanishes while being
// read is left out: its worker ended.
//
// The clock is written first, and the timers read after it on the same
// session: the server answers a session's requests in order, so the reads
// see every kick that landed before "now". Read alongside, they could be
// served by a lagging follower before the write and show an old kick
// against a fresh clock: a live worker called hung.
func (j *Job) Timers() (time.Time, []TimerState, error) {
	now, err := j.ServerTime()
	if errors.Is(err, zk.ErrNoAuth) {
		// A reader of a public job may not stamp the server's clock: its
		// ages are by its own, and say so (LocalClock).
		now, err = time.Now(), nil
		j.localClock.Store(true)
	}
	if err != nil {
		return time.Time{}, nil, err
	}
	names, _, err := j.conn.Children(j.L.Timers())
	if err != nil {
		return time.Time{}, nil, j.listErr(j.L.Timers(), err)
	}
	slices.Sort(names)
	states := make([]*TimerState, len(names))
	fns := make([]func() error, 0, len(names))
	for i, name := range names {
		if !isTimerName(name) {
			continue
		}
		fns = append(fns, func() (err error) { states[i], err = j.readTimer(name); return })
	}
	if err := parallel(32, fns...); err != nil {
		return time.Time{}, nil, fmt.Errorf("reading timers: %w", err)
	}
	out := make([]TimerState, 0, len(states))
	for _, s := range states {
		if s == nil {
			continue
		}
		s.Age = max(now.Sub(s.Kicked), 0)
		out = append(out, *s)
	}
	return now, out, nil
}

// readTimer reads one timer; nil if it is gone.
func (j *Job) readTimer(name string) (*TimerState, error) {
	b, st, err := j.conn.Get(j.L.Timer(name))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	t, err := protocol.DecodeTimer(b)
	if err != nil {
		j.unreadable(j.L.Timer(name), err)
		// Its age still counts: a timer nobody can read must not hide
		// a hung worker.
		t = protocol.Timer{ID: fmt.Sprintf("(unreadable %s: %v)", path.Join(j.L.Timers(), name), err)}
	}
	return &TimerState{Name: name, Timer: t, Item: -1, Kicked: time.UnixMilli(st.Mtime), Owner: st.EphemeralOwner}, nil
}

// Kick moves a timer's mtime by rewriting its data unchanged, for an
// operator kicking a worker's timer by hand. The version check keeps a
// concurrent kick by the worker itself from being overwritten by stale
// data.
func (j *Job) Kick(name string) error {
	p := j.L.Timer(name)
	b, st, err := j.conn.Get(p)
	if errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("no timer %s in %s; zkdog timers lists them", name, j.L.Timers())
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	if _, err := j.conn.Set(p, b, st.Version); err != nil && !errors.Is(err, zk.ErrBadVersion) {
		// A version conflict means the worker kicked it meanwhile.
		return fmt.Errorf("kicking %s: %w", p, err)
	}
	return nil
}

// AttachWork fills in what each timer's worker is working on, from the
// leases (which name their worker's timer) and the items' text: a listing
// and AttachWorkOf, so it is for reports, not for every poll. A worker
// taking ahead holds two leases; the lower index is, in ticket order, the
// one it runs.
func (j *Job) AttachWork(timers []TimerState) error {
	leases, err := j.Leases()
	if err != nil {
		return err
	}
	slices.SortFunc(leases, func(a, b protocol.Turn) int { return a.Index - b.Index })
	return j.AttachWorkOf(timers, leases)
}

// LiveTimers counts the live timers; none when the timers node is gone
// (a job partly removed).
func (j *Job) LiveTimers() (int, error) {
	names, _, err := j.conn.Children(j.L.Timers())
	if errors.Is(err, zk.ErrNoNode) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing timers: %w", err)
	}
	return len(names), nil
}
