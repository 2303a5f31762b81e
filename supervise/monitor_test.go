//go:build linux

package supervise

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sources are the process-table readers to run the monitor tests with.
func sources() map[string]func() procSource {
	return map[string]func() procSource{
		"procfs": func() procSource { return newProcfs() },
		"psutil": func() procSource { return psutil{} },
	}
}

const testInterval = 50 * time.Millisecond

func newTestMonitor(pid int, cfg MonitorConfig, src procSource) *Monitor {
	if cfg.Interval == 0 {
		cfg.Interval = testInterval
	}
	m := NewMonitor(pid, cfg)
	m.src = src
	return m
}

// monitorRun runs a Monitor in the background and records what it reports.
type monitorRun struct {
	mu      sync.Mutex
	samples []Activity // what each sample reported, the first included
	changed chan struct{}
	cancel  context.CancelFunc
	done    chan error
	seen    func(i int) // called on the Run goroutine after sample i (from 0)
}

func startMonitor(t *testing.T, m *Monitor, seen func(i int)) *monitorRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &monitorRun{changed: make(chan struct{}), cancel: cancel, done: make(chan error, 1), seen: seen}
	var reported []Activity
	m.afterSample = func(a Activity) {
		r.mu.Lock()
		r.samples = append(r.samples, a)
		i := len(r.samples) - 1
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
		if r.seen != nil {
			r.seen(i)
		}
	}
	go func() {
		r.done <- m.Run(ctx, func(a Activity) { reported = append(reported, a) })
		// progress and afterSample must agree.
		var want []Activity
		for _, a := range r.get() {
			if a != 0 {
				want = append(want, a)
			}
		}
		if len(want) != len(reported) {
			t.Errorf("progress called %d times for %d active samples", len(reported), len(want))
		}
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *monitorRun) get() []Activity {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Activity(nil), r.samples...)
}

// waitSamples waits until at least n samples have been taken and returns
// all of them.
func (r *monitorRun) waitSamples(t *testing.T, n int) []Activity {
	t.Helper()
	deadline := time.After(guard)
	for {
		r.mu.Lock()
		s, ch := append([]Activity(nil), r.samples...), r.changed
		r.mu.Unlock()
		if len(s) >= n {
			return s
		}
		select {
		case <-ch:
		case <-r.done:
			t.Fatalf("Run returned after %d samples", len(s))
		case <-deadline:
			t.Fatalf("only %d samples", len(s))
		}
	}
}

// waitActivity waits until a sample after the first reports all of want.
func (r *monitorRun) waitActivity(t *testing.T, want Activity) {
	t.Helper()
	deadline := time.After(guard)
	for {
		r.mu.Lock()
		s, ch := append([]Activity(nil), r.samples...), r.changed
		r.mu.Unlock()
		for _, a := range s[min(1, len(s)):] {
			if a.Has(want) {
				return
			}
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("never saw %v; samples: %v", want, s)
		}
	}
}

func (r *monitorRun) stop(t *testing.T) {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(guard):
		t.Errorf("Run did not return after cancel")
	}
}

func union(as []Activity) Activity {
	var u Activity
	for _, a := range as {
		u |= a
	}
	return u
}

func forEachSource(t *testing.T, f func(t *testing.T, src func() procSource)) {
	for name, src := range sources() {
		t.Run(name, func(t *testing.T) { f(t, src) })
	}
}

func TestMonitorCPU(t *testing.T) {
	forEachSource(t, func(t *testing.T, src func() procSource) {
		c := startSh(t, "while :; do :; done", Config{})
		r := startMonitor(t, newTestMonitor(c.Pid(), MonitorConfig{Kinds: ActivityCPU}, src()), nil)
		r.waitActivity(t, ActivityCPU)
	})
}

// Only a grandchild works; its parent waits. The tree is what counts.
func TestMonitorGrandchildCPU(t *testing.T) {
	forEachSource(t, func(t *testing.T, src func() procSource) {
		c := startSh(t, "while :; do :; done & wait", Config{})
		r := startMonitor(t, newTestMonitor(c.Pid(), MonitorConfig{Kinds: ActivityCPU}, src()), nil)
		r.waitActivity(t, ActivityCPU)
	})
}

// A busy orphan whose parent exited under it is no descendant any more,
// but still in the child's process group.
func TestMonitorOrphanInGroupCPU(t *testing.T) {
	forEachSource(t, func(t *testing.T, src func() procSource) {
		c := startSh(t, "(while :; do :; done &); exec sleep 1000", Config{})
		waitAsleep(t, c.Pid(), "sleep")
		r := startMonitor(t, newTestMonitor(c.Pid(), MonitorConfig{Kinds: ActivityCPU}, src()), nil)
		r.waitActivity(t, ActivityCPU)
	})
}

func TestMonitorIO(t *testing.T) {
	for name, script := range map[string]string{
		// One long-lived process whose counters grow.
		"dd": `exec dd if=/dev/zero of=/dev/null bs=1k`,
		// Short-lived processes, seen being born and reaped.
		"loop": `while :; do dd if=/dev/zero of="$F" bs=64k count=4 2>/dev/null; cat "$F" >/dev/null; done`,
	} {
		t.Run(name, func(t *testing.T) {
			forEachSource(t, func(t *testing.T, src func() procSource) {
				f := filepath.Join(t.TempDir(), "data")
				c := startSh(t, script, Config{Env: []string{"F=" + f, "PATH=" + os.Getenv("PATH")}})
				r := startMonitor(t, newTestMonitor(c.Pid(), MonitorConfig{Kinds: ActivityIO}, src()), nil)
				r.waitActivity(t, ActivityIO)
			})
		})
	}
}

func TestMonitorOutput(t *testing.T) {
	var counter Counter
	c := startSh(t, "while :; do echo tick; sleep 0.2; done", Config{Stdout: newOutput(), Output: &counter})
	r := startMonitor(t, newTestMonitor(c.Pid(), MonitorConfig{Kinds: ActivityOutput, Output: &counter}, newProcfs()), nil)
	r.waitActivity(t, ActivityOutput)
}

// An idle child shows nothing, over several samples.
func TestMonitorIdle(t *testing.T) {
	forEachSource(t, func(t *testing.T, src func() procSource) {
		var counter Counter
		c := startSh(t, "exec sleep 1000", Config{Stdout: newOutput(), Output: &counter})
		waitAsleep(t, c.Pid(), "sleep")
		m := newTestMonitor(c.Pid(), MonitorConfig{Kinds: ActivityCPU | ActivityIO | ActivityOutput, Output: &counter}, src())
		r := startMonitor(t, m, nil)
		if u := union(r.waitSamples(t, 8)); u != 0 {
			t.Fatalf("idle sleep reported %v", u)
		}
	})
}

// A child blocked reading a FIFO that has a writer who never writes.
func TestMonitorBlockedOnFIFO(t *testing.T) {
	forEachSource(t, func(t *testing.T, src func() procSource) {
		fifo := filepath.Join(t.TempDir(), "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		// O_RDWR never blocks on a FIFO and makes us its writer.
		w, err := os.OpenFile(fifo, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		var counter Counter
		c := startSh(t, `exec cat "$F"`, Config{
			Env: []string{"F=" + fifo, "PATH=" + os.Getenv("PATH")}, Stdout: newOutput(), Output: &counter,
		})
		waitAsleep(t, c.Pid(), "cat")
		m := newTestMonitor(c.Pid(), MonitorConfig{Kinds: ActivityAll, Output: &counter}, src())
		r := startMonitor(t, m, nil)
		if u := union(r.waitSamples(t, 8)); u != 0 {
			t.Fatalf("blocked cat reported %v", u)
		}
	})
}

func TestMonitorKickAndFiles(t *testing.T) {
	dir := t.TempDir()
	kick, progress := filepath.Join(dir, "kick"), filepath.Join(dir, "progress")
	if err := os.WriteFile(progress, []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startSh(t, "exec sleep 1000", Config{})
	m := newTestMonitor(c.Pid(), MonitorConfig{
		Kinds: ActivityFile | ActivityKick, KickFile: kick, Files: []string{progress},
	}, newProcfs())
	// Each change is made right after a sample, on the Run goroutine, so
	// the next sample is the one that must see it.
	errs := make(chan error, 8)
	r := startMonitor(t, m, func(i int) {
		var err error
		switch i {
		case 1:
			err = os.WriteFile(kick, nil, 0o644) // appears
		case 3:
			future := time.Now().Add(time.Hour)
			err = os.Chtimes(kick, future, future) // touched
		case 5:
			err = os.WriteFile(progress, []byte("12"), 0o644) // grows
		case 7:
			err = os.Remove(kick) // goes away
		}
		if err != nil {
			errs <- err
		}
	})
	got := r.waitSamples(t, 10)[:10]
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	want := []Activity{0, 0, ActivityKick, 0, ActivityKick, 0, ActivityFile, 0, ActivityKick, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("samples %v, want %v", got, want)
		}
	}
}

// alive is reported on every sample, and Run returns nil once the child
// has exited.
func TestMonitorAliveAndExit(t *testing.T) {
	forEachSource(t, func(t *testing.T, src func() procSource) {
		c := startSh(t, "exec sleep 1000", Config{})
		r := startMonitor(t, newTestMonitor(c.Pid(), MonitorConfig{Kinds: ActivityAlive}, src()), nil)
		for _, a := range r.waitSamples(t, 3) {
			if a != ActivityAlive {
				t.Fatalf("sample reported %v", a)
			}
		}
		if err := c.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-r.done:
			r.done <- err // for the cleanup
			if err != nil {
				t.Fatalf("Run = %v, want nil after the child exited", err)
			}
		case <-time.After(guard):
			t.Fatal("Run did not return after the child exited")
		}
	})
}

func TestMonitorGoneAtStart(t *testing.T) {
	c := startSh(t, "exit 0", Config{})
	waitDone(t, c)
	m := newTestMonitor(c.Pid(), MonitorConfig{}, newProcfs())
	if err := m.Run(context.Background(), func(Activity) { t.Error("progress called") }); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

func TestParseStat(t *testing.T) {
	line := "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 11 13 20 0 1 0 987654 1000 100 18446744073709551615\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{ppid: 1, pgid: 4242, sid: 4242, start: 987654, cpu: 7 + 3 + 11 + 13}
	if st != want {
		t.Fatalf("parseStat = %+v, want %+v", st, want)
	}
	if st, _ := parseStat([]byte("1 (x) Z 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5\n")); !st.zombie {
		t.Fatal("zombie not seen")
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

func TestParseIO(t *testing.T) {
	in := "rchar: 100\nwchar: 20\nsyscr: 5\nsyscw: 6\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 1\n"
	if got := parseIO([]byte(in)); got != 100+20+4096+8192 {
		t.Fatalf("parseIO = %d", got)
	}
}

func TestProcfsListsSelf(t *testing.T) {
	pids, err := newProcfs().pids(nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range pids {
		found = found || p == os.Getpid()
	}
	if !found || len(pids) < 2 {
		t.Fatalf("pids %v lack %d", pids, os.Getpid())
	}
}
