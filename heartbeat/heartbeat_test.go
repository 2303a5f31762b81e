package heartbeat_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/heartbeat"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/internal/zktest"
)

// hangGuard bounds every wait. It is a guard against a hang, not a
// performance assertion: the machines running these tests are shared.
const hangGuard = 30 * time.Second

// never is a kick interval no test lives to see: with it, anything written
// to the timer was written for another reason than the ticker.
const never = time.Hour

// fixture is a job and the worker's session on it, plus an observer's
// connection that plays the master or an operator.
type fixture struct {
	sess     *zkconn.Session
	j        *job.Job
	observer *zk.Conn
}

func setup(t *testing.T, srv *zkserver.Server, sessionTimeout time.Duration) fixture {
	t.Helper()
	root := "/hb/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	l, err := protocol.NewLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	observer := zktest.Connect(t, srv.Addr())
	if err := job.New(observer, l).Create(protocol.Job{TimerMillis: 60_000}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	sess, err := zkconn.Dial(ctx, srv.Addr(), sessionTimeout, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	return fixture{sess: sess, j: job.New(sess.Conn(), l), observer: observer}
}

func start(t *testing.T, f fixture, data protocol.Timer, interval time.Duration) *heartbeat.Timer {
	t.Helper()
	tm, err := heartbeat.Start(f.sess, f.j, data, heartbeat.WithKickInterval(interval))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tm.Close)
	return tm
}

func workerTimer() protocol.Timer {
	return protocol.Timer{ID: "100_3", Host: "node7", Pid: 4242}
}

// read returns the timer's data and stat as the master sees them.
func read(t *testing.T, f fixture, tm *heartbeat.Timer) (protocol.Timer, *zk.Stat) {
	t.Helper()
	b, st, err := f.observer.Get(tm.Path())
	if err != nil {
		t.Fatalf("reading %s: %v", tm.Path(), err)
	}
	d, err := protocol.DecodeTimer(b)
	if err != nil {
		t.Fatalf("decoding %s: %v", tm.Path(), err)
	}
	return d, st
}

// eventually polls cond, for state no watch or channel reports.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after %v", what, hangGuard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitDone(t *testing.T, tm *heartbeat.Timer, why string) {
	t.Helper()
	select {
	case <-tm.Done():
	case <-time.After(hangGuard):
		t.Fatalf("Done still open %v after %s", hangGuard, why)
	}
}

func TestTimer(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))

	t.Run("start creates an ephemeral sequential timer", func(t *testing.T) {
		t.Parallel()
		f := setup(t, srv, 10*time.Second)
		tm := start(t, f, workerTimer(), never)
		if !strings.HasPrefix(tm.Path(), f.j.L.Timers()+"/"+protocol.TimerPrefix) {
			t.Fatalf("Path() = %s, want a child %s* of %s", tm.Path(), protocol.TimerPrefix, f.j.L.Timers())
		}
		if f.j.L.Timer(tm.Name()) != tm.Path() {
			t.Errorf("Name() = %q is not the child name of %s", tm.Name(), tm.Path())
		}
		kids, _, err := f.observer.Children(f.j.L.Timers())
		if err != nil || len(kids) != 1 || kids[0] != tm.Name() {
			t.Fatalf("timers = %q, %v; want just %q", kids, err, tm.Name())
		}
		// Sequential: ten digits after the prefix.
		if seq := strings.TrimPrefix(tm.Name(), protocol.TimerPrefix); len(seq) != 10 || strings.Trim(seq, "0123456789") != "" {
			t.Errorf("timer name %q has no ten-digit sequence number", tm.Name())
		}
		d, st := read(t, f, tm)
		if st.EphemeralOwner != f.sess.ID() {
			t.Errorf("timer owner %#x, want the worker's session %#x (ephemeral)", st.EphemeralOwner, f.sess.ID())
		}
		// The timer carries the session timeout the server granted, which
		// readers use to judge it no sooner than the session could expire.
		want := workerTimer()
		want.V = protocol.Version
		want.SessionMillis = f.sess.Timeout().Milliseconds()
		if want.SessionMillis <= 0 {
			t.Fatalf("session timeout %v, want a granted one", f.sess.Timeout())
		}
		if d != want {
			t.Errorf("timer data = %+v, want %+v", d, want)
		}
		if tm.Kicks() != 0 || tm.Err() != nil {
			t.Errorf("new timer: Kicks() = %d, Err() = %v; want 0, nil", tm.Kicks(), tm.Err())
		}
		select {
		case <-tm.Done():
			t.Fatalf("Done closed on a new timer: %v", tm.Err())
		default:
		}

		// A second worker gets a second timer.
		tm2 := start(t, f, protocol.Timer{ID: "100_4"}, never)
		if tm2.Name() <= tm.Name() {
			t.Errorf("second timer %q does not sort after the first %q", tm2.Name(), tm.Name())
		}
	})

	t.Run("no progress, no kicks", func(t *testing.T) {
		t.Parallel()
		f := setup(t, srv, 10*time.Second)
		const interval = 50 * time.Millisecond
		tm := start(t, f, workerTimer(), interval)
		// Nothing reports the absence of a write, so this one has to wait:
		// six kick intervals, looking at the node's data version after each.
		// A timer that kicked without progress would have written by then.
		look := time.NewTicker(interval)
		defer look.Stop()
		for range 6 {
			<-look.C
			if _, st := read(t, f, tm); st.Version != 0 {
				t.Fatalf("timer data version %d without any Progress call; a stalled worker would look alive", st.Version)
			}
		}
		if tm.Kicks() != 0 {
			t.Errorf("Kicks() = %d without any Progress call", tm.Kicks())
		}
	})

	t.Run("progress kicks", func(t *testing.T) {
		t.Parallel()
		f := setup(t, srv, 10*time.Second)
		tm := start(t, f, workerTimer(), 50*time.Millisecond)
		_, before := read(t, f, tm)
		eventually(t, "kicked after Progress", func() bool {
			tm.Progress()
			_, st := read(t, f, tm)
			return st.Version > before.Version
		})
		d, st := read(t, f, tm)
		if st.Mtime < before.Mtime {
			t.Errorf("mtime went back from %d to %d on a kick", before.Mtime, st.Mtime)
		}
		if d.Kicks < 1 || tm.Kicks() < 1 {
			t.Errorf("after a kick: data kicks %d, Kicks() %d; want at least 1", d.Kicks, tm.Kicks())
		}
		if d.ID != "100_3" || d.Host != "node7" || d.Pid != 4242 || d.V != protocol.Version {
			t.Errorf("a kick changed the timer's identity: %+v", d)
		}
		if st.EphemeralOwner != f.sess.ID() {
			t.Errorf("owner after a kick %#x, want %#x", st.EphemeralOwner, f.sess.ID())
		}
	})

	t.Run("at most one kick per interval", func(t *testing.T) {
		t.Parallel()
		f := setup(t, srv, 10*time.Second)
		const interval = 100 * time.Millisecond
		tm := start(t, f, workerTimer(), interval)
		began := time.Now()
		ticker := time.NewTicker(5 * time.Millisecond)
		defer ticker.Stop()
		for range 100 {
			<-ticker.C
			tm.Progress()
		}
		elapsed := time.Since(began)
		// A slow machine only makes fewer kicks, so this bound is safe:
		// one per whole interval elapsed, and one more in flight.
		if limit := int64(elapsed/interval) + 1; tm.Kicks() > limit {
			t.Errorf("%d kicks in %v with a %v interval; want at most %d", tm.Kicks(), elapsed, interval, limit)
		}
	})

	t.Run("deleted by someone else", func(t *testing.T) {
		t.Parallel()
		f := setup(t, srv, 10*time.Second)
		tm := start(t, f, workerTimer(), never)
		// As the master does when it removes the job.
		if err := f.observer.Delete(tm.Path(), -1); err != nil {
			t.Fatal(err)
		}
		// No kick is due for an hour: only the watch can tell.
		waitDone(t, tm, "its node was deleted")
		err := tm.Err()
		if !errors.Is(err, heartbeat.ErrLost) || errors.Is(err, heartbeat.ErrClosed) {
			t.Fatalf("Err() = %v, want ErrLost", err)
		}
		if !strings.Contains(err.Error(), tm.Path()) {
			t.Errorf("Err() = %q, want it to name %s", err, tm.Path())
		}
		// Close afterwards neither hangs nor rewrites why it ended.
		tm.Close()
		if !errors.Is(tm.Err(), heartbeat.ErrLost) {
			t.Errorf("Err() after Close = %v, want still ErrLost", tm.Err())
		}
		if ok, _, _ := f.observer.Exists(tm.Path()); ok {
			t.Errorf("%s exists again", tm.Path())
		}
	})

	t.Run("close deletes the node", func(t *testing.T) {
		t.Parallel()
		f := setup(t, srv, 10*time.Second)
		tm := start(t, f, workerTimer(), 50*time.Millisecond)
		tm.Progress()
		tm.Close()
		select {
		case <-tm.Done():
		default:
			t.Fatal("Done still open after Close returned")
		}
		if !errors.Is(tm.Err(), heartbeat.ErrClosed) || errors.Is(tm.Err(), heartbeat.ErrLost) {
			t.Errorf("Err() = %v after Close, want ErrClosed", tm.Err())
		}
		// Deleted before Close returned, not when the session ends: the
		// master need not wait a session timeout to see the worker gone.
		if ok, _, err := f.observer.Exists(tm.Path()); ok || err != nil {
			t.Errorf("%s after Close: exists %v, %v; want it deleted", tm.Path(), ok, err)
		}
		if f.sess.Err() != nil {
			t.Errorf("closing the timer hurt the session: %v", f.sess.Err())
		}
		tm.Close() // again: a no-op
		if !errors.Is(tm.Err(), heartbeat.ErrClosed) {
			t.Errorf("Err() after a second Close = %v", tm.Err())
		}
	})

	t.Run("no job", func(t *testing.T) {
		t.Parallel()
		f := setup(t, srv, 10*time.Second)
		gone := job.New(f.sess.Conn(), protocol.Layout{Root: "/hb/never-created"})
		if _, err := heartbeat.Start(f.sess, gone, workerTimer()); !errors.Is(err, job.ErrNoJob) {
			t.Errorf("Start on a missing job = %v, want job.ErrNoJob", err)
		}
	})
}

// TestTimerSessionLost: the worker's ZooKeeper goes away for longer than
// the session timeout. Its timer (and lease) are gone or about to be, so
// the timer reports itself lost and the worker stops its command.
func TestTimerSessionLost(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	f := setup(t, srv, time.Second)
	tm := start(t, f, workerTimer(), never)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, tm, "the server was killed")
	err := tm.Err()
	if !errors.Is(err, heartbeat.ErrLost) || errors.Is(err, heartbeat.ErrClosed) {
		t.Fatalf("Err() = %v, want ErrLost", err)
	}
	if !strings.Contains(err.Error(), "session") {
		t.Errorf("Err() = %q; want it to say the session was lost", err)
	}
	select {
	case <-f.sess.Lost():
	default:
		t.Errorf("the timer reported a lost session the session itself does not: %v", err)
	}
}
