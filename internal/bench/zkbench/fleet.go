package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/bench"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkproxy"
	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/master"
)

// scale10k works a job with ten thousand concurrent workers on a
// three-member ensemble, a few of them hung, under a real zkdog wait with
// --on-hang stall, and measures what the master costs: its requests a
// second with a tenth of the workers and with all of them, in the same
// run and at the same rate of results, and its CPU. The workers run in this process, each with its own
// session and timer, the take/record loop of zkdog run and a pause for
// the command it does not run (which keeps the job going long enough to
// measure both windows). The master reaches ZooKeeper through a proxy
// that counts its requests. Opt-in (-only scale10k): it takes minutes.
func (e *env) scale10k() []bench.Row {
	f := &fleet{e: e, sz: e.sz}
	metric := fmt.Sprintf("%s in-process workers (%d hung) on a 3-member ensemble, %s items, zkdog wait --on-hang stall: the job completes",
		bench.Count(f.sz.Fleet), f.sz.FleetHung, bench.Count(f.sz.FleetItems))
	if err := f.setUp(); err != nil {
		f.tearDown()
		return []bench.Row{bench.Failed(metric, err)}
	}
	defer f.tearDown()
	rows, err := f.run(metric)
	if err != nil {
		return append(rows, bench.Failed(metric, err))
	}
	return rows
}

// fleet is the scale10k step's state.
type fleet struct {
	e  *env
	sz sizes

	ens     *zkserver.Ensemble
	servers []string
	driver  *zk.Conn
	l       protocol.Layout
	spec    protocol.Job
	proxy   *zkproxy.Proxy
	seen    *zkproxy.Rule
	master  *bench.Proc
	report  bytes.Buffer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
	hung   []time.Duration // from each hung worker's last kick to its stall
	done   atomic.Int64    // items recorded by the workers
	joined atomic.Int64
	// expired counts the workers whose session expired (a machine too
	// busy to ping in time): they stop, as zkdog run does, and the master
	// hands their items out again.
	expired atomic.Int64
	// pace is the mean time a worker spends on an item (ns): a tenth of
	// FleetWork while a tenth of the workers run, so that both windows see
	// the same rate of results and differ in the number of workers alone.
	pace atomic.Int64
}

// fleetSession is each worker's session timeout; a hung worker's timer
// limit is the job's timer or twice this, whichever is longer.
const fleetSession = 15 * time.Second

func (f *fleet) setUp() error {
	f.ctx, f.cancel = context.WithCancel(f.e.ctx)
	var err error
	f.e.log.Info("starting a 3-member ensemble")
	f.ens, err = zkserver.StartEnsemble(f.ctx, 3, zkserver.Config{Heap: *zkHeap << 20})
	if err != nil {
		return err
	}
	f.servers = f.ens.Addrs()
	if f.driver, err = f.dial(30*time.Second, false); err != nil {
		return fmt.Errorf("the driver's session: %w", err)
	}
	if f.l, err = protocol.NewLayout(benchRoot + "/scale10k"); err != nil {
		return err
	}
	j := job.New(f.driver, f.l, job.WithAccess(f.e.access))
	if err := j.Authenticate(); err != nil {
		return err
	}
	spec := jobSpec(f.sz.FleetTimer)
	spec.Policy.OnHang = protocol.OnHangStall
	spec.Retries = 2
	f.e.log.Info("filling the job", "items", f.sz.FleetItems)
	if err := j.Create(spec, bench.Items(f.sz.FleetItems)); err != nil {
		return err
	}
	if f.spec, err = j.Spec(); err != nil {
		return err
	}
	if f.proxy, err = zkproxy.Start(f.servers[0]); err != nil {
		return err
	}
	f.seen = f.proxy.Observe(zkproxy.Match{Times: zkproxy.Forever})
	ms := bench.Spec{
		Path: f.e.zkdog,
		Args: []string{"wait", "--zk", f.proxy.Addr(), "--log-level", "warn", "--root", f.l.Root, "--json", "--keep"},
		Log:  f.e.logPath("scale10k-master"), Stdout: &f.report,
	}
	f.master, err = bench.Start(f.ctx, ms)
	return err
}

func (f *fleet) tearDown() {
	f.cancel()
	f.wg.Wait()
	if f.master != nil {
		f.master.Terminate(time.Second)
	}
	if f.proxy != nil {
		f.proxy.Close()
	}
	if f.driver != nil {
		f.driver.Close()
	}
	if f.ens != nil {
		if err := f.ens.Stop(); err != nil {
			f.e.log.Warn("stopping the ensemble", "err", err)
		}
	}
}

// window is what the master did over a stretch of the run.
type window struct {
	workers  int
	wall     time.Duration
	requests []zkproxy.Request
	cpu      time.Duration
	items    int64
}

func (w window) perSecond(n int) float64 { return float64(n) / w.wall.Seconds() }

func (f *fleet) run(metric string) ([]bench.Row, error) {
	began := time.Now()
	limit := max(f.sz.FleetTimer, 2*fleetSession)
	poll := min(max(f.sz.FleetTimer/10, master.MinPoll), master.MaxPoll)
	// Each window starts a whole limit and a poll after the last worker
	// joined, when every timer is read on its own schedule, and lasts a
	// limit, over which each timer is read about once.
	f.pace.Store(int64(f.sz.FleetWork) * int64(f.sz.FleetFirst) / int64(f.sz.Fleet))
	if err := f.join(f.sz.FleetFirst, 0); err != nil {
		return nil, err
	}
	if err := f.pause(limit + poll); err != nil {
		return nil, err
	}
	small, err := f.measure(limit)
	if err != nil {
		return nil, err
	}
	f.pace.Store(int64(f.sz.FleetWork))
	if err := f.join(f.sz.Fleet-f.sz.FleetFirst-f.sz.FleetHung, f.sz.FleetHung); err != nil {
		return nil, err
	}
	if err := f.pause(limit + poll); err != nil {
		return nil, err
	}
	large, err := f.measure(limit)
	if err != nil {
		return nil, err
	}
	busy := f.done.Load() < int64(f.sz.FleetItems-f.sz.FleetHung)
	f.wg.Wait()
	if f.err != nil {
		return nil, f.err
	}
	drained := time.Since(began)
	if err := waitFor(f.ctx, f.master, 5*time.Minute); err != nil {
		return nil, err
	}
	var r master.Report
	if err := json.Unmarshal(f.report.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("zkdog wait's report: %w (%q; see %s)", err, f.report.String(), f.e.logPath("scale10k-master"))
	}
	return f.rows(metric, r, drained, limit, poll, small, large, busy), nil
}

func (f *fleet) rows(metric string, r master.Report, drained, limit, poll time.Duration, small, large window, busy bool) []bench.Row {
	n := f.sz.FleetItems
	complete := bench.Rate(n, drained, "items/s")
	rows := []bench.Row{{Metric: metric, Zkdog: &complete, Notes: []string{
		fmt.Sprintf("report: end %s, %s ok, %d stalled, %d lost, %d unfinished of %s items; %v from the first worker's start to the last one's exit",
			r.End, bench.Count(r.OK), r.Stalled, r.Lost, r.Unfinished, bench.Count(r.Items), drained.Round(time.Second)),
	}}}
	if x := f.expired.Load(); x > 0 {
		rows[0].Notes = append(rows[0].Notes, fmt.Sprintf("%d workers lost their session (the machine too busy for their pings) and stopped; the master handed their items out again (%d retried)", x, r.Retried))
	}
	if r.OK+r.Stalled != n || r.Stalled != f.sz.FleetHung || r.Unfinished != 0 {
		rows[0].Err = fmt.Sprintf("the report does not account for every item as ok or stalled (%d hung workers): %+v", f.sz.FleetHung, r.OutcomeCounts)
	}

	slices.Sort(f.hung)
	hungMetric := fmt.Sprintf("each hung worker stalled within timer + one poll (%v + %v), from its last kick", limit, poll)
	if len(f.hung) != f.sz.FleetHung {
		rows = append(rows, bench.Failed(hungMetric, fmt.Errorf("%d of %d hung workers saw their timer deleted", len(f.hung), f.sz.FleetHung)))
	} else {
		worst := bench.Millis(f.hung[len(f.hung)-1])
		rows = append(rows, bench.Row{Metric: hungMetric, Zkdog: &worst, Goal: bench.AtMost(float64((limit + poll).Milliseconds()), "ms"),
			Notes: []string{fmt.Sprintf("all: %v", roundAll(f.hung))}})
	}

	reqMetric := fmt.Sprintf("the master's requests/s with %s workers vs %s (same run, same job)", bench.Count(large.workers), bench.Count(small.workers))
	a, b := small.perSecond(len(small.requests)), large.perSecond(len(large.requests))
	fa, fb := bench.Figure{Value: b, Unit: "requests/s"}, bench.Figure{Value: a, Unit: "requests/s"}
	rr := bench.Row{Metric: reqMetric, Zkdog: &fa, Baseline: &fb, Ratio: b / a, Goal: bench.RatioAtMost(1.0), Notes: []string{
		fmt.Sprintf("%s workers, %v window, %s items/s: %s", bench.Count(small.workers), small.wall.Round(time.Second), bench.Number(small.perSecond(int(small.items))), breakdown(small, f.l)),
		fmt.Sprintf("%s workers, %v window, %s items/s: %s", bench.Count(large.workers), large.wall.Round(time.Second), bench.Number(large.perSecond(int(large.items))), breakdown(large, f.l)),
		fmt.Sprintf("the master's requests counted by a proxy between it and member 1; timer limit %v, poll %v", limit, poll),
	}}
	if !busy {
		rr.Notes = append(rr.Notes, "the job ran out of items before the second window ended: its figures are low")
	}
	cpu := bench.Figure{Value: large.cpu.Seconds() / large.wall.Seconds(), Unit: "cores"}
	cpuSmall := bench.Figure{Value: small.cpu.Seconds() / small.wall.Seconds(), Unit: "cores"}
	rows = append(rows, rr, bench.Row{
		Metric: fmt.Sprintf("the master's CPU with %s workers, share of one core", bench.Count(large.workers)),
		Zkdog:  &cpu, Baseline: &cpuSmall, Ratio: cpu.Value / cpuSmall.Value, Goal: bench.AtMost(0.5, "cores"),
		Notes: []string{fmt.Sprintf("baseline: with %s workers; over the whole run %v", bench.Count(small.workers), f.master.CPU().Round(time.Millisecond))},
	})
	return rows
}

// breakdown sorts a window's requests by what they are and read, most
// frequent first.
func breakdown(w window, l protocol.Layout) string {
	counts := map[string]int{}
	for _, r := range w.requests {
		counts[classify(r, l)]++
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return counts[b] - counts[a] })
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %s", k, bench.Number(w.perSecond(counts[k])))
	}
	return fmt.Sprintf("%s requests/s: %s", bench.Number(w.perSecond(len(w.requests))), strings.Join(parts, ", "))
}

// classify names a request by its op and the part of the job it is on:
// "getData timers/*" is a read of one timer, "getChildren2 leases" a
// listing of the leases.
func classify(r zkproxy.Request, l protocol.Layout) string {
	if r.Op == zkproxy.OpPing {
		return "ping"
	}
	rel, ok := strings.CutPrefix(r.Path, l.Root+"/")
	if !ok {
		return r.Op.String()
	}
	if dir, _, deeper := strings.Cut(rel, "/"); deeper {
		rel = dir + "/*"
	}
	return r.Op.String() + " " + rel
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(100 * time.Millisecond)
	}
	return out
}

// measure counts what the master does over d.
func (f *fleet) measure(d time.Duration) (window, error) {
	w := window{workers: int(f.joined.Load())}
	from, cpu0, items0, t0 := f.seen.Count(), f.masterCPU(), f.done.Load(), time.Now()
	f.e.log.Info("measuring the master", "workers", w.workers, "for", d)
	if err := f.pause(d); err != nil {
		return w, err
	}
	to := f.seen.Count()
	w.wall, w.cpu, w.items = time.Since(t0), f.masterCPU()-cpu0, f.done.Load()-items0
	w.requests = f.seen.Requests()[from:to]
	return w, nil
}

func (f *fleet) masterCPU() time.Duration {
	d, err := bench.ProcCPU(f.master.Pid())
	if err != nil {
		f.e.log.Warn("reading the master's CPU time", "err", err)
	}
	return d
}

// pause waits d, or less if the run is abandoned or a worker failed.
func (f *fleet) pause(d time.Duration) error {
	select {
	case <-time.After(d):
	case <-f.ctx.Done():
	case <-f.master.Done():
		return fmt.Errorf("zkdog wait exited early (see %s)", f.e.logPath("scale10k-master"))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return cmpOr(f.err, f.ctx.Err())
}

func (f *fleet) fail(err error) {
	f.mu.Lock()
	f.err = cmpOr(f.err, err)
	f.mu.Unlock()
	f.cancel()
}

// fleetDials bounds the sessions being opened at once: a session's
// creation is a write on the ensemble, and thousands at once would only
// queue there.
const fleetDials = 32

// join opens hung and then n working sessions and starts their workers,
// and returns once every session is open. The hung ones come first, so
// that they are stalled while the others join, before a measurement.
func (f *fleet) join(n, hung int) error {
	f.e.log.Info("opening worker sessions", "workers", n, "hung", hung)
	began := time.Now()
	sem := make(chan struct{}, fleetDials)
	var opening sync.WaitGroup
	base := int(f.joined.Load())
	for i := range n + hung {
		sem <- struct{}{}
		opening.Add(1)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			conn, err := f.dial(fleetSession, true)
			<-sem
			opening.Done()
			if err != nil {
				f.fail(fmt.Errorf("worker session %d: %w", base+i, err))
				return
			}
			f.joined.Add(1)
			id := fmt.Sprintf("w%05d", base+i)
			if i < hung {
				err = f.hang(conn, id)
			} else {
				err = f.work(conn, id)
			}
			switch {
			case errors.Is(err, job.ErrTimerLost), errors.Is(err, job.ErrLeaseLost):
				f.expired.Add(1)
			case err != nil && f.ctx.Err() == nil:
				f.fail(fmt.Errorf("%s: %w", id, err))
			}
		}()
		if f.ctx.Err() != nil {
			break
		}
	}
	opening.Wait()
	f.e.log.Info("worker sessions open", "workers", f.joined.Load(), "took", time.Since(began).Round(time.Millisecond))
	return f.pause(0)
}

// dial opens a session; a worker's has small buffers: the client's
// default is 3 MB a connection, 30 GB for ten thousand, and a worker's
// requests and replies are small (the driver's fill is not).
func (f *fleet) dial(timeout time.Duration, small bool) (*zk.Conn, error) {
	ready := make(chan struct{})
	var once sync.Once
	onEvent := zk.WithEventCallback(func(ev zk.Event) {
		if ev.State == zk.StateHasSession {
			once.Do(func() { close(ready) })
		}
	})
	var (
		conn *zk.Conn
		err  error
	)
	if small {
		conn, _, err = zk.Connect(f.servers, timeout, zk.WithLogger(quietLogger{}), onEvent,
			zk.WithMaxBufferSize(64<<10), zk.WithMaxConnBufferSize(64<<10))
	} else {
		conn, _, err = zk.Connect(f.servers, timeout, zk.WithLogger(quietLogger{}), onEvent)
	}
	if err != nil {
		return nil, err
	}
	select {
	case <-ready:
		return conn, nil
	case <-time.After(time.Minute):
		err = errors.New("no session within a minute")
	case <-f.ctx.Done():
		err = f.ctx.Err()
	}
	conn.Close()
	return nil, err
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// handle authenticates a worker's handle and creates its timer.
func (f *fleet) handle(conn *zk.Conn, id string) (*job.Job, protocol.Timer, string, error) {
	j := job.New(conn, f.l, job.WithAccess(f.e.access))
	t := protocol.Timer{ID: id, Host: "zkbench", SessionMillis: fleetSession.Milliseconds()}
	if err := j.Authenticate(); err != nil {
		return nil, t, "", err
	}
	p, err := j.CreateTimer(t)
	return j, t, path.Base(p), err
}

// work is a worker: the steps of zkdog run --loop, with a pause for the
// command. Its timer is kicked every third of the limit, as often as
// zkdog run's default.
func (f *fleet) work(conn *zk.Conn, id string) error {
	defer conn.Close()
	j, t, name, err := f.handle(conn, id)
	if err != nil {
		return err
	}
	kicking := make(chan struct{})
	defer close(kicking)
	go f.kick(j, name, t, kicking)
	lease := protocol.Lease{Timer: name, ID: id, Host: "zkbench"}
	for {
		c, err := j.Take(f.ctx, f.spec, lease)
		if errors.Is(err, job.ErrEmpty) {
			return j.DeleteTimer(name)
		}
		if err != nil {
			return err
		}
		// The command: the work time, spread so that the workers do not
		// move in step.
		select {
		case <-time.After(time.Duration(float64(f.pace.Load()) * (0.5 + rand.Float64()))):
		case <-f.ctx.Done():
			return f.ctx.Err()
		}
		if err := j.Record(f.ctx, c, protocol.Result{Outcome: protocol.OK, ID: id}); err != nil {
			return err
		}
		f.done.Add(1)
	}
}

func (f *fleet) kick(j *job.Job, name string, t protocol.Timer, stop <-chan struct{}) {
	every := f.spec.Timer() / 3
	// A random phase, so that ten thousand timers are not kicked at once.
	next := time.After(time.Duration(rand.Int64N(int64(every))))
	for {
		select {
		case <-stop:
			return
		case <-f.ctx.Done():
			return
		case <-next:
		}
		if err := j.KickTimer(name, t); errors.Is(err, job.ErrTimerLost) {
			return // its take or record fails next
		}
		next = time.After(every)
	}
}

// hang is a hung worker: it takes an item and never kicks its timer
// again, and it waits for the master to stall it, which deletes the timer.
func (f *fleet) hang(conn *zk.Conn, id string) error {
	defer conn.Close()
	j, _, name, err := f.handle(conn, id)
	if err != nil {
		return err
	}
	if _, err := j.Take(f.ctx, f.spec, protocol.Lease{Timer: name, ID: id, Host: "zkbench"}); err != nil {
		return err
	}
	_, st, err := conn.Exists(j.L.Timer(name))
	if err != nil {
		return err
	}
	kicked := time.UnixMilli(st.Mtime)
	for {
		exists, changed, err := j.WatchTimer(name)
		if err != nil {
			return err
		}
		if !exists {
			f.mu.Lock()
			f.hung = append(f.hung, time.Since(kicked))
			f.mu.Unlock()
			return nil
		}
		select {
		case <-changed:
		case <-f.ctx.Done():
			return f.ctx.Err()
		}
	}
}
