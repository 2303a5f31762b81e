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
// on every kick.
func (j *Job) CreateTimer(t protocol.Timer) (string, error) {
	t.V = protocol.Version
	p, err := j.conn.Create(j.L.Timer(protocol.TimerPrefix), protocol.Encode(t), zk.FlagEphemeral|zk.FlagSequence, openACL)
	if errors.Is(err, zk.ErrNoNode) {
		return "", fmt.Errorf("%w at %s (it was removed)", ErrNoJob, j.L.Root)
	}
	if err != nil {
		return "", fmt.Errorf("job: creating a timer: %w", err)
	}
	return p, nil
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

// Expired reports whether the timer has gone un-kicked longer than limit.
func (t TimerState) Expired(limit time.Duration) bool { return t.Age > limit }

// Timers reads every timer and its age against the server's clock, and
// the server time it was measured at. A timer that vanishes while being
// read is left out: its worker ended.
func (j *Job) Timers() (time.Time, []TimerState, error) {
	names, _, err := j.conn.Children(j.L.Timers())
	if errors.Is(err, zk.ErrNoNode) {
		return time.Time{}, nil, fmt.Errorf("%w at %s (it was removed)", ErrNoJob, j.L.Root)
	}
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("job: listing timers: %w", err)
	}
	slices.Sort(names)
	// The clock is read after the list and with the timers, so a timer
	// kicked meanwhile shows a smaller age, never a negative one.
	var now time.Time
	states := make([]*TimerState, len(names))
	fns := []func() error{func() (err error) { now, err = j.ServerTime(); return }}
	for i, name := range names {
		if !isTimerName(name) {
			continue
		}
		fns = append(fns, func() error {
			b, st, err := j.conn.Get(j.L.Timer(name))
			if errors.Is(err, zk.ErrNoNode) {
				return nil
			}
			if err != nil {
				return err
			}
			t, err := protocol.DecodeTimer(b)
			if err != nil {
				// Its age still counts: a timer nobody can read must
				// not hide a hung worker.
				t = protocol.Timer{ID: fmt.Sprintf("(unreadable %s: %v)", path.Join(j.L.Timers(), name), err)}
			}
			states[i] = &TimerState{Name: name, Timer: t, Item: -1, Kicked: time.UnixMilli(st.Mtime), Owner: st.EphemeralOwner}
			return nil
		})
	}
	if err := parallel(32, fns...); err != nil {
		return time.Time{}, nil, fmt.Errorf("job: reading timers: %w", err)
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

// Kick moves a timer's mtime by rewriting its data unchanged, for an
// operator kicking a worker's timer by hand. The version check keeps a
// concurrent kick by the worker itself from being overwritten by stale
// data.
func (j *Job) Kick(name string) error {
	p := j.L.Timer(name)
	b, st, err := j.conn.Get(p)
	if errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("job: no timer %s in %s; zkdog timers lists them", name, j.L.Timers())
	}
	if err != nil {
		return fmt.Errorf("job: reading %s: %w", p, err)
	}
	if _, err := j.conn.Set(p, b, st.Version); err != nil && !errors.Is(err, zk.ErrBadVersion) {
		// A version conflict means the worker kicked it meanwhile.
		return fmt.Errorf("job: kicking %s: %w", p, err)
	}
	return nil
}

// AttachWork fills in what each timer's worker is working on, from the
// leases (which name their worker's timer) and the items' text. It costs a
// read per lease and per item found, so it is for reports, not for every
// poll.
func (j *Job) AttachWork(timers []TimerState) error {
	names, _, err := j.conn.Children(j.L.Leases())
	if err != nil {
		return fmt.Errorf("job: listing leases: %w", err)
	}
	owners := make([]string, len(names))
	fns := make([]func() error, 0, len(names))
	for i, n := range names {
		fns = append(fns, func() error {
			b, _, err := j.conn.Get(j.L.Leases() + "/" + n)
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
		})
	}
	if err := parallel(32, fns...); err != nil {
		return fmt.Errorf("job: reading leases: %w", err)
	}
	byTimer := make(map[string]int, len(timers))
	for i := range timers {
		byTimer[timers[i].Name] = i
	}
	fns = fns[:0]
	for i, n := range names {
		k, ok := byTimer[owners[i]]
		turn, err := protocol.ParseTurn(n)
		if !ok || err != nil {
			continue
		}
		t := &timers[k]
		t.Item, t.Attempt = turn.Index, turn.Attempt
		fns = append(fns, func() error {
			b, _, err := j.conn.Get(j.L.Item(turn.Index))
			if err == nil {
				t.Label = protocol.Label(b)
			}
			return nil // the label is a courtesy
		})
	}
	return parallel(32, fns...)
}
