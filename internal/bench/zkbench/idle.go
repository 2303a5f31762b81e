package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zkdog/zkdog/internal/bench"
	"github.com/zkdog/zkdog/internal/job"
)

// procCost is what a process used over a window, from /proc.
type procCost struct {
	cpu      time.Duration // its own, not its children's
	mem      bench.Memory  // at the end of the window
	received int64         // requests and pings from its session, from cons
}

func (c procCost) percent(window time.Duration) float64 {
	return 100 * c.cpu.Seconds() / window.Seconds()
}

// idleResult is what one supervised run cost over its measured window.
type idleResult struct {
	window time.Duration
	worker procCost
	writes float64 // the worker's writes: server-wide less the master's
	kicks  int32   // the timer's data version moved by this much
	master *procCost
	clock  int32 // the master's writes: the clock node's version moved by this much
}

func perMinute(n float64, window time.Duration) float64 { return n / window.Minutes() }

// idle measures what zkdog run costs while its command runs: its own CPU
// over wall time and its peak RSS, from /proc, and the load it puts on
// ZooKeeper, with default sampling (1s) and progress kinds (all). Once
// with a command that sleeps (no progress, so no kicks: the floor); once
// with a command that spins (progress at every sample, so a kick every
// kick interval, a quarter of the job's timer), with a master (zkdog
// wait) following the job meanwhile, whose own standing cost is measured
// too. Not with the sleeper: its timer goes un-kicked, so a master would
// rightly call it hung once the job's timer has passed, and abort it.
//
// zkdog run has no timer flag: the limit is the job's (zkdog master
// --timer), here -idle-timer.
func (e *env) idle() []bench.Row {
	window := e.sz.Idle
	cpuMetric := fmt.Sprintf("idle supervision CPU, zkdog run -- sleep, %v window", window)
	rssMetric := "idle supervision peak RSS (VmHWM of zkdog run)"
	quietMetric := "ZooKeeper writes per minute per worker, sleeping child"
	busyMetric := "ZooKeeper writes per minute per worker, busy child (CPU loop)"
	masterMetric := "ZooKeeper writes per minute of a master (zkdog wait) on the busy job"
	quiet, err := e.idleRun("idle-sleep", false, "sleep", "1000000")
	if err != nil {
		return []bench.Row{bench.Failed(cpuMetric, err)}
	}
	cpu := bench.Figure{Value: quiet.worker.percent(quiet.window), Unit: "% of a core"}
	rss := bench.MiB(quiet.worker.mem.HWM)
	rows := []bench.Row{
		{Metric: cpuMetric, Zkdog: &cpu, Goal: bench.AtMost(1, "% of a core"),
			Notes: []string{fmt.Sprintf("utime+stime of the zkdog process from /proc: %v over %v of wall time; job timer %v (zkdog run has no timer flag: the job's applies), so at most one kick per %v",
				quiet.worker.cpu, quiet.window.Round(time.Millisecond), e.sz.IdleTimer, e.sz.IdleTimer/4)}},
		{Metric: rssMetric, Zkdog: &rss, Goal: bench.AtMost(20, "MiB"),
			Notes: []string{fmt.Sprintf("VmRSS at the end of the window: %s", bench.MiB(quiet.worker.mem.RSS))}},
		e.writesRow(quietMetric, quiet),
	}
	busy, err := e.idleRun("idle-busy", true, "sh", "-c", "while :; do :; done")
	if err != nil {
		return append(rows, bench.Failed(busyMetric, err))
	}
	br := e.writesRow(busyMetric, busy)
	br.Notes = append(br.Notes, fmt.Sprintf("zkdog itself meanwhile: %.2f%% of a core, peak RSS %s",
		busy.worker.percent(busy.window), bench.MiB(busy.worker.mem.HWM)))
	rows = append(rows, br)
	if m := busy.master; m != nil {
		w := bench.Figure{Value: perMinute(float64(busy.clock), busy.window), Unit: "writes/min"}
		rows = append(rows, bench.Row{Metric: masterMetric, Zkdog: &w, Notes: []string{
			fmt.Sprintf("the master writes the clock node to read timer ages against the server's time, once per poll: a tenth of the job's %v timer, between 50ms and 5s", e.sz.IdleTimer),
			fmt.Sprintf("all its requests: %s per minute; its CPU %.2f%% of a core, peak RSS %s",
				bench.Number(perMinute(float64(m.received), busy.window)), m.percent(busy.window), bench.MiB(m.mem.HWM)),
		}})
	}
	return rows
}

func (e *env) writesRow(metric string, r idleResult) bench.Row {
	w := bench.Figure{Value: perMinute(r.writes, r.window), Unit: "writes/min"}
	return bench.Row{Metric: metric, Zkdog: &w, Notes: []string{
		fmt.Sprintf("%s writes in %v (mntr, less the master's); the timer's version moved by %d kicks",
			bench.Count(int(r.writes)), r.window.Round(time.Millisecond), r.kicks),
		fmt.Sprintf("all requests from the worker's session (reads, watches, pings; from cons): %s per minute",
			bench.Number(perMinute(float64(r.worker.received), r.window))),
	}}
}

// idleRun runs zkdog run on a one-item job with command as its program,
// and with a master following the job if withMaster; it waits until the
// program has started and everyone has settled, and measures one window.
func (e *env) idleRun(name string, withMaster bool, command ...string) (idleResult, error) {
	var r idleResult
	root := benchRoot + "/" + name
	j, _, err := e.createJob(root, [][]byte{[]byte(name)}, e.sz.IdleTimer)
	if err != nil {
		return r, err
	}
	defer e.cleanup(root)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	p, err := bench.Start(ctx, e.zkdogSpec(name, "run", append([]string{"--root", root, "--"}, command...)...))
	if err != nil {
		return r, err
	}
	// zkdog relays TERM to its program and exits; the job is removed after.
	defer p.Terminate(15 * time.Second)
	timer, err := e.waitWorking(ctx, j, p)
	if err != nil {
		return r, err
	}

	w := watched{pid: p.Pid(), session: timer.Owner}
	var m *watched
	if withMaster {
		mp, err := bench.Start(ctx, e.zkdogSpec(name+"-master", "wait", "--root", root))
		if err != nil {
			return r, err
		}
		// Stopped before the worker: a master that sees the worker's
		// result would finish, and its exit status is not what is measured.
		defer mp.Terminate(15 * time.Second)
		sid, err := e.newSession(ctx, mp, e.sess.ID(), timer.Owner)
		if err != nil {
			return r, err
		}
		m = &watched{pid: mp.Pid(), session: sid}
	}
	if err := sleep(ctx, p, e.sz.SettleDelay); err != nil {
		return r, err
	}
	start, err := e.sampleIdle(j, timer.Name, w, m)
	if err != nil {
		return r, err
	}
	if err := sleep(ctx, p, e.sz.Idle); err != nil {
		return r, err
	}
	end, err := e.sampleIdle(j, timer.Name, w, m)
	if err != nil {
		return r, err
	}
	r.window = end.at.Sub(start.at)
	r.worker = end.worker.since(start.worker)
	r.kicks = end.timer - start.timer
	r.clock = end.clock - start.clock
	r.writes = end.counters[bench.Writes] - start.counters[bench.Writes] - float64(r.clock)
	if m != nil {
		mc := end.master.since(start.master)
		r.master = &mc
	}
	e.log.Debug("idle window", "name", name, "result", fmt.Sprintf("%+v", r))
	return r, nil
}

// watched is a process whose cost a window measures.
type watched struct {
	pid     int
	session int64
}

type idleSample struct {
	at             time.Time
	worker, master procCost
	counters       bench.Counters
	timer, clock   int32 // data versions
}

// since turns two cumulative readings into the cost between them; the
// memory is the later reading's.
func (c procCost) since(earlier procCost) procCost {
	return procCost{cpu: c.cpu - earlier.cpu, mem: c.mem, received: c.received - earlier.received}
}

// sampleIdle reads everything a window compares, back to back.
func (e *env) sampleIdle(j *job.Job, timer string, w watched, m *watched) (idleSample, error) {
	s := idleSample{at: time.Now()}
	var err error
	if s.counters, err = bench.Mntr(e.ctx, e.addr); err != nil {
		return s, err
	}
	clients, err := bench.Cons(e.ctx, e.addr)
	if err != nil {
		return s, err
	}
	if s.worker, err = readCost(w, clients); err != nil {
		return s, fmt.Errorf("zkdog run: %w", err)
	}
	for path, v := range map[string]*int32{j.L.Timer(timer): &s.timer, j.L.Clock(): &s.clock} {
		_, st, err := e.conn().Exists(path)
		if err != nil || st == nil {
			return s, fmt.Errorf("reading %s: %v", path, err)
		}
		*v = st.Version
	}
	if m != nil {
		if s.master, err = readCost(*m, clients); err != nil {
			return s, fmt.Errorf("zkdog wait: %w", err)
		}
	}
	return s, nil
}

func readCost(w watched, clients []bench.Client) (procCost, error) {
	var c procCost
	var err error
	if c.cpu, err = bench.ProcCPU(w.pid); err != nil {
		return c, err
	}
	if c.mem, err = bench.ProcMemory(w.pid); err != nil {
		return c, err
	}
	i := slices.IndexFunc(clients, func(c bench.Client) bool { return c.Session == w.session })
	if i < 0 {
		return c, fmt.Errorf("its session 0x%x is not among the server's connections", w.session)
	}
	c.received = clients[i].Received
	return c, nil
}

// newSession waits for a session other than known ones to appear in the
// server's connections: the one process p opened. Only the benchmark's
// own processes talk to this server, so there is no other candidate.
func (e *env) newSession(ctx context.Context, p *bench.Proc, known ...int64) (int64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		clients, err := bench.Cons(ctx, e.addr)
		if err != nil {
			return 0, err
		}
		for _, c := range clients {
			if !slices.Contains(known, c.Session) {
				return c.Session, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, errors.New("the master opened no session within 30s")
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-p.Done():
			return 0, fmt.Errorf("zkdog wait exited: %v", p.Wait())
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// waitWorking waits until the worker holds a lease, that is, has taken its
// item and is about to start the program, and returns its timer.
func (e *env) waitWorking(ctx context.Context, j *job.Job, p *bench.Proc) (job.TimerState, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		leases, _, err := e.conn().Children(j.L.Leases())
		if err != nil {
			return job.TimerState{}, err
		}
		if len(leases) > 0 {
			_, timers, err := j.Timers()
			if err != nil {
				return job.TimerState{}, err
			}
			if len(timers) == 1 {
				return timers[0], nil
			}
		}
		if time.Now().After(deadline) {
			return job.TimerState{}, errors.New("the worker took no item within 30s")
		}
		if err := sleep(ctx, p, 20*time.Millisecond); err != nil {
			return job.TimerState{}, err
		}
	}
}

// sleep waits d, failing if the worker exits meanwhile: it should be
// running its program for the whole measurement.
func sleep(ctx context.Context, p *bench.Proc, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-p.Done():
		if err := p.Wait(); err != nil {
			return fmt.Errorf("zkdog run exited during the measurement: %w", err)
		}
		return errors.New("zkdog run exited (status 0) during the measurement: its program ended early")
	case <-ctx.Done():
		return ctx.Err()
	}
}
