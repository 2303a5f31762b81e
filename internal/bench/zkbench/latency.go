package main

import (
	"context"
	"fmt"
	"time"

	"github.com/zkdog/zkdog/internal/bench"
)

// overhead measures what zkdog run adds to a command's wall time: a job
// of one item per run, then `zkdog run -- true` and a bare `true`,
// alternately, each timed from fork to reaping. The difference is the
// price of the prefix on a task that does nothing: process start, the
// session, the timer, take, record, and the session's close.
func (e *env) overhead() []bench.Row {
	const warmup = 3 // page cache, the server's JIT: not what a task pays
	runs := e.sz.Runs
	metric := fmt.Sprintf("zkdog run -- true overhead, median of %d (wall − bare true)", runs)
	p90Metric := fmt.Sprintf("zkdog run -- true overhead, p90 of %d", runs)
	root := benchRoot + "/overhead"
	j, spec, err := e.createJob(root, bench.Items(runs+warmup), defaultTimer)
	if err != nil {
		return []bench.Row{bench.Failed(metric, err)}
	}
	defer e.cleanup(root)

	var diffs, trues []time.Duration
	var before bench.Counters
	for i := range runs + warmup {
		if i == warmup {
			before = e.mntr()
		}
		p, err := bench.Run(e.ctx, e.zkdogSpec("overhead", "run", "--root", root, "--", "true"))
		if err != nil {
			return []bench.Row{bench.Failed(metric, err)}
		}
		t, err := bench.Run(e.ctx, bench.Spec{Path: "true", Log: e.logPath("true")})
		if err != nil {
			return []bench.Row{bench.Failed(metric, err)}
		}
		if i >= warmup {
			diffs = append(diffs, p.Elapsed()-t.Elapsed())
			trues = append(trues, t.Elapsed())
		}
	}
	delta := e.mntr().Since(before)
	if err := e.checkDone(j, spec); err != nil {
		return []bench.Row{bench.Failed(metric, err)}
	}

	ms, trueMs := bench.Ms(diffs), bench.Ms(trues)
	med := bench.Figure{Value: bench.Median(ms), Unit: "ms"}
	p90 := bench.Figure{Value: bench.Quantile(ms, 0.9), Unit: "ms"}
	trueMed := bench.Figure{Value: bench.Median(trueMs), Unit: "ms"}
	trueP90 := bench.Figure{Value: bench.Quantile(trueMs, 0.9), Unit: "ms"}
	notes := []string{
		fmt.Sprintf("baseline: bare true, fork to reaping; runs alternate, %d warm-up pairs discarded; overhead min %s ms, max %s ms",
			warmup, bench.Number(bench.Quantile(ms, 0)), bench.Number(bench.Quantile(ms, 1))),
		fmt.Sprintf("ZooKeeper requests per run: %s writes, %s reads (session open and close included)",
			bench.Number(delta[bench.Writes]/float64(runs)), bench.Number(delta[bench.Reads]/float64(runs))),
	}
	if d, err := e.versionTime(); err == nil {
		notes = append(notes, fmt.Sprintf("zkdog --version (process start, no ZooKeeper): %s median", bench.Millis(d)))
	}
	return []bench.Row{
		{Metric: metric, Zkdog: &med, Baseline: &trueMed, Goal: bench.AtMost(15, "ms"), Notes: notes},
		{Metric: p90Metric, Zkdog: &p90, Baseline: &trueP90},
	}
}

// versionTime is the median wall time of zkdog --version: how much of the
// overhead is starting the Go binary and parsing flags.
func (e *env) versionTime() (time.Duration, error) {
	var ds []time.Duration
	for range 11 {
		p, err := bench.Run(e.ctx, bench.Spec{Path: e.zkdog, Args: []string{"--version"}, Log: e.logPath("version")})
		if err != nil {
			return 0, err
		}
		ds = append(ds, p.Elapsed())
	}
	return bench.MsDuration(bench.Median(bench.Ms(ds))), nil
}

// exitLatency measures how soon zkdog master exits once its job is done:
// a master with one item and one worker, started together; the latency
// is from the worker's reaping to the master's, both stamped by the
// driver as Wait returns. It covers the master noticing the result and
// the timer's removal, its report, removing the job, and its own exit.
func (e *env) exitLatency() []bench.Row {
	runs := e.sz.ExitRuns
	metric := fmt.Sprintf("master exit latency after the last worker exits, median of %d", runs)
	file := e.itemsPath("exit")
	if err := bench.WriteItems(file, bench.Items(1)); err != nil {
		return []bench.Row{bench.Failed(metric, err)}
	}
	var lat []time.Duration
	for i := range runs {
		d, err := e.exitOnce(fmt.Sprintf("%s/exit/job%d", benchRoot, i), file)
		if err != nil {
			return []bench.Row{bench.Failed(metric, fmt.Errorf("run %d: %w", i+1, err))}
		}
		lat = append(lat, d)
	}
	ms := bench.Ms(lat)
	med := bench.Figure{Value: bench.Median(ms), Unit: "ms"}
	return []bench.Row{{
		Metric: metric, Zkdog: &med, Goal: bench.AtMost(100, "ms"),
		Notes: []string{
			fmt.Sprintf("p90 %s ms, min %s ms, max %s ms (negative: the master exited first)",
				bench.Number(bench.Quantile(ms, 0.9)), bench.Number(bench.Quantile(ms, 0)), bench.Number(bench.Quantile(ms, 1))),
			"zkdog master --timer 30s with one item; zkdog run --wait-for-job 30s -- true started alongside",
		},
	}}
}

func (e *env) exitOnce(root, items string) (time.Duration, error) {
	// A stuck pair is killed rather than waited for: a worker that failed
	// early leaves a master waiting for ever.
	ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
	defer cancel()
	defer e.cleanup(root)
	m, err := bench.Start(ctx, e.zkdogSpec("exit-master", "master", "--root", root, "--items", items, "--timer", "30s"))
	if err != nil {
		return 0, err
	}
	w, err := bench.Start(ctx, e.zkdogSpec("exit-worker", "run", "--root", root, "--wait-for-job", "30s", "--", "true"))
	if err != nil {
		cancel()
		m.Wait()
		return 0, err
	}
	werr := w.Wait()
	if werr != nil {
		cancel()
	}
	if merr := m.Wait(); werr != nil || merr != nil {
		return 0, fmt.Errorf("worker: %v; master: %v", werr, merr)
	}
	return m.Exited.Sub(w.Exited), nil
}
