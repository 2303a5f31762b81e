// Package heartbeat keeps a worker's timer znode: an ephemeral node whose
// mtime the master reads as "last sign of life". It knows nothing of
// processes: whoever watches the work calls Progress, and the timer is
// kicked, at most once per kick interval, only if Progress was called since
// the last kick. A worker that stops making progress therefore stops
// kicking, and the master sees its timer age.
//
// The timer's goroutine owns its shutdown: Done closes when the timer is
// gone for any reason (Close, the session lost, the node deleted by
// someone else), and Err says which.
package heartbeat

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
)

// Sentinel errors.
var (
	// ErrLost: the timer is gone while the worker still runs (its session
	// expired, or the node was deleted or taken over).
	ErrLost = errors.New("timer lost")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("timer closed")
)

// MinKickInterval keeps a misconfigured worker from writing to ZooKeeper
// in a tight loop; every kick is a replicated write.
const MinKickInterval = 50 * time.Millisecond

type options struct {
	interval time.Duration
	log      *slog.Logger
}

// Option configures a Timer.
type Option func(*options)

// WithKickInterval sets the most often the timer is kicked. It must be well
// under the job's timer limit: a quarter of it leaves three missed kicks of
// slack before the master calls the worker hung.
func WithKickInterval(d time.Duration) Option { return func(o *options) { o.interval = d } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// Timer is one worker's timer znode.
type Timer struct {
	sess *zkconn.Session
	j    *job.Job
	path string
	opts options

	progress atomic.Bool
	kicks    atomic.Int64
	lastKick atomic.Int64 // local monotonic nanoseconds since start, of the last kick

	mu   sync.Mutex
	data protocol.Timer
	now  func() time.Duration

	stop chan struct{}
	done chan struct{}
	err  error // set before done closes
	once sync.Once
}

// Start creates the timer and starts kicking it. The node is created kicked,
// so a worker gets a whole timer limit to show progress.
func Start(sess *zkconn.Session, j *job.Job, data protocol.Timer, opts ...Option) (*Timer, error) {
	o := options{interval: 30 * time.Second, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	o.interval = max(o.interval, MinKickInterval)
	data.V = protocol.Version
	data.SessionMillis = sess.Timeout().Milliseconds()
	p, err := j.CreateTimer(data)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	t := &Timer{
		sess: sess, j: j, path: p, opts: o, data: data,
		now:  func() time.Duration { return time.Since(start) },
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	t.lastKick.Store(int64(t.now()))
	go t.run()
	return t, nil
}

// Path is the timer's znode.
func (t *Timer) Path() string { return t.path }

// Name is the timer's child name under the job's timers node.
func (t *Timer) Name() string { return t.path[len(t.j.L.Timers())+1:] }

// Progress records that the work progressed. It never blocks.
func (t *Timer) Progress() { t.progress.Store(true) }

// SinceKick is how long ago, by the local clock, the timer was last kicked.
func (t *Timer) SinceKick() time.Duration { return t.now() - time.Duration(t.lastKick.Load()) }

// Kicks is how many times the timer has been kicked.
func (t *Timer) Kicks() int64 { return t.kicks.Load() }

// Done is closed once the timer is gone.
func (t *Timer) Done() <-chan struct{} { return t.done }

// Err says why Done closed: ErrClosed after Close, ErrLost otherwise.
func (t *Timer) Err() error {
	select {
	case <-t.done:
		return t.err
	default:
		return nil
	}
}

// Close stops kicking and deletes the timer, if it is still this
// session's. It returns once the kicking goroutine has ended.
func (t *Timer) Close() {
	t.once.Do(func() { close(t.stop) })
	<-t.done
}

func (t *Timer) run() {
	ticker := time.NewTicker(t.opts.interval)
	defer ticker.Stop()
	gone := t.watch()
	if gone == nil {
		t.finish(t.deleted(), false)
		return
	}
	for {
		select {
		case <-t.stop:
			t.finish(ErrClosed, true)
			return
		case <-t.sess.Lost():
			t.finish(fmt.Errorf("%w: %v", ErrLost, t.sess.Err()), false)
			return
		case <-gone:
			if gone = t.watch(); gone == nil {
				t.finish(t.deleted(), false)
				return
			}
		case <-ticker.C:
			if !t.progress.Swap(false) {
				continue
			}
			if err := t.kick(); err != nil {
				t.finish(err, false)
				return
			}
		}
	}
}

// watch arms a watch on the timer node, nil if the node is gone. A kick
// fires it too; the loop simply re-arms. If the watch cannot be set the
// loop learns of a lost timer from its next kick instead.
func (t *Timer) watch() job.Watch {
	ok, w, err := t.j.WatchTimer(t.Name())
	switch {
	case err != nil:
		return make(job.Watch) // never fires
	case !ok:
		return nil
	}
	return w
}

func (t *Timer) deleted() error {
	return fmt.Errorf("%w: %s was deleted by someone else (the job removed or aborted?)", ErrLost, t.path)
}

// kick rewrites the timer's data, which moves its mtime on the server.
// Only a missing node or a foreign owner is fatal; a failed write during a
// disconnection is retried at the next tick, and the session's own deadline
// decides when the disconnection has lasted too long.
func (t *Timer) kick() error {
	t.mu.Lock()
	t.data.Kicks = t.kicks.Load() + 1
	data := t.data
	t.mu.Unlock()
	err := t.j.KickTimer(t.Name(), data)
	switch {
	case errors.Is(err, job.ErrTimerLost):
		return fmt.Errorf("%w: %w", ErrLost, err)
	case err != nil:
		t.opts.log.Warn("timer kick failed; will retry", "timer", t.path, "err", err)
		t.progress.Store(true)
		return nil
	}
	t.kicks.Add(1)
	t.lastKick.Store(int64(t.now()))
	t.opts.log.Debug("timer kicked", "timer", t.path, "kicks", t.kicks.Load())
	return nil
}

func (t *Timer) finish(err error, remove bool) {
	if remove && t.sess.Err() == nil {
		// Deleting at once spares the master waiting for the session to
		// close; only this session writes the node.
		if derr := t.j.DeleteTimer(t.Name()); derr != nil {
			t.opts.log.Debug("deleting timer", "timer", t.path, "err", derr)
		}
	}
	if !errors.Is(err, ErrClosed) {
		t.opts.log.Warn("timer lost", "timer", t.path, "err", err)
	}
	t.err = err
	close(t.done)
}
