package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/zkdog/zkdog/internal/bench"
)

// loop measures one `zkdog run --loop -- true` working through a queue:
// each item is a take, a run of true under supervision, and a record.
// The peer is Kazoo's LockingQueue doing the same (get, run true,
// consume) from Python, on the same server.
func (e *env) loop() []bench.Row {
	n := e.sz.LoopItems
	metric := fmt.Sprintf("one looping worker, %s items: zkdog run --loop -- true vs Kazoo LockingQueue (items/s)", bench.Count(n))
	root := benchRoot + "/loop"
	j, spec, err := e.createJob(root, bench.Items(n), defaultTimer)
	if err != nil {
		return []bench.Row{bench.Failed(metric, err)}
	}
	defer e.cleanup(root)

	xb := e.xargs("loop", n, 1)
	before, jvm0 := e.mntr(), e.jvmCPU()
	ps := e.zkdogSpec("loop", "run", "--root", root, "--loop", "--", "true")
	ps.OwnCPU = true
	p, err := bench.Run(e.ctx, ps)
	if err != nil {
		return []bench.Row{bench.Failed(metric, err)}
	}
	delta, jvm := e.mntr().Since(before), e.jvmCPU()-jvm0
	if err := e.checkDone(j, spec); err != nil {
		return []bench.Row{bench.Failed(metric, err)}
	}
	rate := bench.Rate(n, p.Elapsed(), "items/s")
	extra := []bench.Row{e.vsXargs(fmt.Sprintf("one looping worker, %s items: zkdog run --loop -- true vs xargs -n1 true (items/s)", bench.Count(n)), rate, xb.after(e, "loop", n, 1)),
		ownCPURow(p, n)}
	row := bench.Row{
		Metric: metric, Zkdog: &rate, Goal: bench.RatioAtLeast(5),
		Notes: []string{
			fmt.Sprintf("zkdog: %v for %d items, process start to exit; per item %s writes and %s reads to ZooKeeper, server-side mean latency %s ms a write, %s ms a read",
				p.Elapsed().Round(time.Millisecond), n, bench.Number(delta[bench.Writes]/float64(n)), bench.Number(delta[bench.Reads]/float64(n)),
				bench.Number(delta.MeanLatency(bench.Writes, bench.WriteMsSum)), bench.Number(delta.MeanLatency(bench.Reads, bench.ReadMsSum))),
			fmt.Sprintf("CPU per item: zkdog with its true child %s, ZooKeeper %s%s",
				bench.Millis(p.CPU()/time.Duration(n)), bench.Millis(jvm/time.Duration(n)), e.trueCPU()),
		},
	}

	k, err := e.kazooLoop(n, n)
	switch {
	case errors.Is(err, errSkipped):
		row.Notes = append(row.Notes, "Kazoo comparison skipped (-kazoo \"\")")
		return append([]bench.Row{row}, extra...)
	case err != nil:
		row.Err = "Kazoo: " + err.Error()
		return append([]bench.Row{row}, extra...)
	}
	base := bench.Figure{Value: k.ItemsPerSecond, Unit: "items/s"}
	row.Baseline, row.Ratio = &base, rate.Value/base.Value
	row.Notes = append(row.Notes, fmt.Sprintf("Kazoo %s (Python %s): LockingQueue get + subprocess.run([\"true\"]) + consume, %.2f s for %d items; filling it with put_all took %.2f s",
		k.Kazoo, k.Python, k.Seconds, k.Consumed, k.FillSeconds))
	// Kazoo's get lists the whole queue, so its rate depends on the
	// queue's length, which zkdog's does not (see the consume rows).
	if e.sz.KazooBig > n {
		if kb, err := e.kazooLoop(e.sz.KazooBig, e.sz.KazooBigConsume); err == nil {
			row.Notes = append(row.Notes, fmt.Sprintf("Kazoo with %s items queued: %s items/s over the first %d (ratio zkdog/Kazoo %.2f×)",
				bench.Count(kb.Items), bench.Number(kb.ItemsPerSecond), kb.Consumed, rate.Value/kb.ItemsPerSecond))
		} else {
			row.Notes = append(row.Notes, fmt.Sprintf("Kazoo with %s items queued: failed: %v", bench.Count(e.sz.KazooBig), err))
		}
	}
	return append([]bench.Row{row}, extra...)
}

// xargsGoal is what zkdog's looping workers should reach of xargs's rate
// forking the same command on the same items: the share of a fork's cost
// zkdog may add in taking, supervising and recording an item.
const xargsGoal = 0.8

// xargsRun is the baseline's first run, before zkdog's.
type xargsRun struct {
	d   time.Duration
	err error
}

// xargs runs `xargs -n1 [-P procs] true` on the n items a job of n items
// holds, fed on its stdin: the first of the two runs that bracket zkdog's
// (after), so that a load that comes or goes on a shared machine weighs
// on the baseline as on zkdog.
func (e *env) xargs(name string, n, procs int) xargsRun {
	d, err := e.xargsOnce(name, n, procs)
	return xargsRun{d, err}
}

// after runs the baseline again, after zkdog's run, and gives the rate
// over both runs, with what each took.
func (x xargsRun) after(e *env, name string, n, procs int) xargsRate {
	if x.err != nil {
		return xargsRate{err: x.err}
	}
	d, err := e.xargsOnce(name+"-after", n, procs)
	if err != nil {
		return xargsRate{err: err}
	}
	return xargsRate{rate: bench.Rate(2*n, x.d+d, "items/s"), before: x.d, after: d}
}

type xargsRate struct {
	rate          bench.Figure
	before, after time.Duration
	err           error
}

func (e *env) xargsOnce(name string, n, procs int) (time.Duration, error) {
	var in bytes.Buffer
	for _, it := range bench.Items(n) {
		in.Write(it)
		in.WriteByte('\n')
	}
	args := []string{"-n1"}
	if procs > 1 {
		args = append(args, "-P", fmt.Sprint(procs))
	}
	p, err := bench.Run(e.ctx, bench.Spec{Path: "xargs", Args: append(args, "true"), Log: e.logPath("xargs-" + name), Stdin: &in})
	if err != nil {
		return 0, err
	}
	return p.Elapsed(), nil
}

// vsXargs is the row of zkdog's rate against xargs's.
func (e *env) vsXargs(metric string, rate bench.Figure, x xargsRate) bench.Row {
	if x.err != nil {
		return bench.Failed(metric, fmt.Errorf("xargs: %w", x.err))
	}
	return bench.Row{Metric: metric, Zkdog: &rate, Baseline: &x.rate, Ratio: rate.Value / x.rate.Value, Goal: bench.RatioAtLeast(xargsGoal),
		Notes: []string{fmt.Sprintf("baseline: xargs forking true once per item, the items on its stdin, run just before zkdog (%v) and again just after (%v) on the same items",
			x.before.Round(time.Millisecond), x.after.Round(time.Millisecond))}}
}

// ownCPUGoal is the most CPU zkdog itself may spend on an item, beyond
// what its child costs: the budget for a take, a supervised run
// and a record.
const ownCPUGoal = 0.4

// ownCPURow is the looping worker's own CPU per item: the zkdog process's
// user and system time read just before it was reaped, which leaves out
// its true children.
func ownCPURow(p *bench.Proc, n int) bench.Row {
	metric := fmt.Sprintf("one looping worker, %s items: zkdog's own CPU per item, its children's excluded", bench.Count(n))
	own, err := p.OwnCPU()
	if err != nil {
		return bench.Failed(metric, err)
	}
	f := bench.Millis(own / time.Duration(n))
	return bench.Row{Metric: metric, Zkdog: &f, Goal: bench.AtMost(ownCPUGoal, "ms"),
		Notes: []string{fmt.Sprintf("%v of user and system time in the zkdog process for %d items (/proc/PID/stat of the exited process, before it was reaped)", own.Round(time.Millisecond), n)}}
}

// trueCPU says what a bare true costs in its own process, forked by the
// driver, to tell zkdog's share of the per-item CPU from its child's.
func (e *env) trueCPU() string {
	const n = 100
	var cpu time.Duration
	for range n {
		p, err := bench.Run(e.ctx, bench.Spec{Path: "true", Log: e.logPath("true")})
		if err != nil {
			return ""
		}
		cpu += p.CPU()
	}
	return fmt.Sprintf(" (a bare true forked by the driver: %s in its own process)", bench.Millis(cpu/n))
}

// kazooResult is what scripts/kazoo_bench.py prints on stdout.
type kazooResult struct {
	Items          int     `json:"items"`
	Consumed       int     `json:"consumed"`
	Seconds        float64 `json:"seconds"`
	ItemsPerSecond float64 `json:"items_per_s"`
	FillSeconds    float64 `json:"fill_seconds"`
	Kazoo          string  `json:"kazoo"`
	Python         string  `json:"python"`
}

// kazooLoop fills a LockingQueue with n items and consumes the first
// consume of them.
func (e *env) kazooLoop(n, consume int) (kazooResult, error) {
	var r kazooResult
	if e.kazoo == "" {
		return r, errSkipped
	}
	var out bytes.Buffer
	_, err := bench.Run(e.ctx, bench.Spec{
		Path: e.python,
		Args: []string{e.kazoo, "--zk", e.addr, "--path", benchRoot + "/kazoo",
			"--items", fmt.Sprint(n), "--consume", fmt.Sprint(consume)},
		Log:    e.logPath("kazoo"),
		Stdout: &out,
	})
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("reading its output %q: %w", out.String(), err)
	}
	if r.Items != n || r.Consumed != consume || r.ItemsPerSecond <= 0 {
		return r, fmt.Errorf("it consumed %d of %d items, asked for %d of %d", r.Consumed, r.Items, consume, n)
	}
	return r, nil
}

// pool measures Workers looping workers started together on one queue:
// the aggregate rate, first start to last exit. The baseline is the rate
// of plain synchronous creates from as many goroutines on one connection:
// what the server sustains for writers that each wait for their reply,
// as workers do. The pool runs without a master, whose reads would be
// charged to the workers.
func (e *env) pool() []bench.Row {
	n, w := e.sz.PoolItems, e.sz.Workers
	metric := fmt.Sprintf("%d looping workers, %s items: aggregate items/s vs raw concurrent creates/s (%d goroutines)",
		w, bench.Count(n), w)
	root := benchRoot + "/pool"
	j, spec, err := e.createJob(root, bench.Items(n), defaultTimer)
	if err != nil {
		return []bench.Row{bench.Failed(metric, err)}
	}
	defer e.cleanup(root)

	xb := e.xargs("pool", n, w)
	before, jvm0 := e.mntr(), e.jvmCPU()
	procs := make([]*bench.Proc, 0, w)
	var startErr error
	for i := range w {
		p, err := bench.Start(e.ctx, e.zkdogSpec(fmt.Sprintf("pool-%02d", i), "run", "--root", root, "--loop", "--id", fmt.Sprintf("pool-%02d", i), "--", "true"))
		if err != nil {
			startErr = err
			break
		}
		procs = append(procs, p)
	}
	var (
		errs        []error
		first, last time.Time
		cpu         time.Duration
	)
	for _, p := range procs {
		errs = append(errs, p.Wait())
		if first.IsZero() || p.Started.Before(first) {
			first = p.Started
		}
		if p.Exited.After(last) {
			last = p.Exited
		}
		cpu += p.CPU()
	}
	if err := errors.Join(append(errs, startErr)...); err != nil {
		return []bench.Row{bench.Failed(metric, err)}
	}
	delta, jvm := e.mntr().Since(before), e.jvmCPU()-jvm0
	if err := e.checkDone(j, spec); err != nil {
		return []bench.Row{bench.Failed(metric, err)}
	}
	wall := last.Sub(first)
	rate := bench.Rate(n, wall, "items/s")

	rawRoot := benchRoot + "/rawc"
	d, err := rawConcurrentCreates(e.conn(), rawRoot, w, e.sz.RawCreates, bench.Items(1)[0])
	e.cleanup(rawRoot)
	if err != nil {
		return []bench.Row{bench.Failed(metric, fmt.Errorf("raw creates: %w", err))}
	}
	base := bench.Rate(e.sz.RawCreates, d, "creates/s")
	vs := e.vsXargs(fmt.Sprintf("%d looping workers, %s items: aggregate items/s vs xargs -n1 -P%d true", w, bench.Count(n), w), rate, xb.after(e, "pool", n, w))
	return []bench.Row{vs, {
		Metric: metric, Zkdog: &rate, Baseline: &base, Ratio: rate.Value / base.Value, Goal: bench.RatioAtLeast(0.4),
		Notes: []string{
			fmt.Sprintf("zkdog: %v first start to last exit; CPU: the %d zkdog processes (with their true children) %v, ZooKeeper %v, together %.0f%% of the machine's %d cores over the run",
				wall.Round(time.Millisecond), w, cpu.Round(time.Millisecond), jvm.Round(time.Millisecond), share(cpu+jvm, wall), numCPU()),
			fmt.Sprintf("baseline: %s creates of %d bytes, %d goroutines each waiting for its reply, one connection: %v",
				bench.Count(e.sz.RawCreates), len(bench.Items(1)[0]), w, d.Round(time.Millisecond)),
			fmt.Sprintf("per item %s writes and %s reads to ZooKeeper: with unlimited client CPU, the writes alone would cap the pool near the baseline's rate divided by %s (%s items/s)",
				bench.Number(delta[bench.Writes]/float64(n)), bench.Number(delta[bench.Reads]/float64(n)),
				bench.Number(delta[bench.Writes]/float64(n)), bench.Number(base.Value/(delta[bench.Writes]/float64(n)))),
		},
	}}
}
