package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/bench"
)

// Batching of the raw fill baseline: the client's plain Multi of 100
// creates with eight outstanding, as job.Create pipelines its own.
const (
	rawPerMulti = 100
	rawInflight = 8
)

// fill measures creating a job of Fill items, in process with job.Create
// (what zkdog master and zkdog init do), against raw Multis of the same
// znodes; then zkdog init end to end, and removing a job of that size
// (what the master does before it exits).
func (e *env) fill() []bench.Row {
	n := e.sz.Fill
	items := bench.Items(n)
	fillMetric := fmt.Sprintf("fill %s items: job.Create (items/s) vs raw Multi×%d (znodes/s)", bench.Count(n), rawPerMulti)
	initMetric := fmt.Sprintf("time to fill %s items (zkdog init, end to end) vs raw Multi×%d", bench.Count(n), rawPerMulti)
	removeMetric := fmt.Sprintf("remove a %s-item job (job.Remove, as the master does at exit)", bench.Count(n))
	parent := benchRoot + "/fill"
	if err := e.ensure(parent); err != nil {
		return []bench.Row{bench.Failed(fillMetric, err)}
	}

	// The server compiles its hot paths (C1 only) during the first
	// thousands of requests; warm both paths so that round 1 is not
	// penalised for going first.
	warm := items[:min(n, 10_000)]
	if _, _, err := e.createJob(parent+"/warm-job", warm, defaultTimer); err != nil {
		return []bench.Row{bench.Failed(fillMetric, fmt.Errorf("warm-up: %w", err))}
	}
	e.cleanup(parent + "/warm-job")
	if _, err := rawFill(e.conn(), parent+"/warm-raw", warm, rawPerMulti, rawInflight); err != nil {
		return []bench.Row{bench.Failed(fillMetric, fmt.Errorf("warm-up: %w", err))}
	}
	e.cleanup(parent + "/warm-raw")

	var zkTimes, rawTimes, rmTimes []time.Duration
	for r := range e.sz.FillReps {
		jobRoot, rawRoot := fmt.Sprintf("%s/job%d", parent, r), fmt.Sprintf("%s/raw%d", parent, r)
		runJob := func() error {
			j, err := e.handle(jobRoot)
			if err != nil {
				return err
			}
			t := time.Now()
			if err := j.Create(jobSpec(defaultTimer), items); err != nil {
				return err
			}
			zkTimes = append(zkTimes, time.Since(t))
			t = time.Now()
			if err := j.Remove(); err != nil {
				return fmt.Errorf("removing: %w", err)
			}
			rmTimes = append(rmTimes, time.Since(t))
			return nil
		}
		runRaw := func() error {
			d, err := rawFill(e.conn(), rawRoot, items, rawPerMulti, rawInflight)
			if err != nil {
				return err
			}
			rawTimes = append(rawTimes, d)
			e.cleanup(rawRoot)
			return nil
		}
		// Alternate which goes first: a server that slows down or speeds
		// up over the run then favours neither.
		first, second := runJob, runRaw
		if r%2 == 1 {
			first, second = runRaw, runJob
		}
		if err := errors.Join(first(), second()); err != nil {
			return []bench.Row{bench.Failed(fillMetric, fmt.Errorf("round %d: %w", r+1, err))}
		}
		e.log.Debug("fill round", "round", r+1, "job.Create", zkTimes[r], "raw", rawTimes[r], "remove", rmTimes[r])
	}
	zkMed := bench.MsDuration(bench.Median(bench.Ms(zkTimes)))
	rawMed := bench.MsDuration(bench.Median(bench.Ms(rawTimes)))
	zkRate, rawRate := bench.Rate(n, zkMed, "items/s"), bench.Rate(n, rawMed, "znodes/s")
	fillRow := bench.Row{
		Metric: fillMetric, Zkdog: &zkRate, Baseline: &rawRate,
		Ratio: zkRate.Value / rawRate.Value, Goal: bench.RatioAtLeast(0.7),
		Notes: []string{
			fmt.Sprintf("median of %d rounds, alternating which goes first; job.Create %s, raw %s",
				e.sz.FillReps, durations(zkTimes), durations(rawTimes)),
			fmt.Sprintf("job.Create: Multis of up to 1,000 creates, 8 in flight, plus the job's fixed nodes and result buckets; raw: Multis of %d, %d in flight, same item paths and data",
				rawPerMulti, rawInflight),
		},
	}
	// The batch size is the one knob that matters most; show the raw rate
	// at job.Create's own, to tell protocol cost from batching.
	if d, err := rawFill(e.conn(), parent+"/raw1000", items, 1000, rawInflight); err == nil {
		fillRow.Notes = append(fillRow.Notes, fmt.Sprintf("raw Multi×1000, %d in flight (one round): %s", rawInflight, bench.Rate(n, d, "znodes/s")))
	}
	e.cleanup(parent + "/raw1000")

	rmMed := bench.MsDuration(bench.Median(bench.Ms(rmTimes)))
	rmRate := bench.Rate(n, rmMed, "items/s")
	rmRow := bench.Row{Metric: removeMetric, Zkdog: &rmRate,
		Notes: []string{fmt.Sprintf("median of %d: %s", len(rmTimes), durations(rmTimes))}}

	return []bench.Row{fillRow, e.initRow(initMetric, items, rawMed, zkMed), rmRow}
}

// initRow times zkdog init creating the job from an items file, process
// start to exit: reading and checking the file, the session, the fill.
func (e *env) initRow(metric string, items [][]byte, raw, inProcess time.Duration) bench.Row {
	file := e.itemsPath("init")
	if err := bench.WriteItems(file, items); err != nil {
		return bench.Failed(metric, err)
	}
	root := benchRoot + "/fill/init"
	p, err := bench.Run(e.ctx, e.zkdogSpec("init", "init", "--root", root, "--items", file, "--timer", "30s"))
	if err != nil {
		return bench.Failed(metric, err)
	}
	e.cleanup(root)
	d := bench.Seconds(p.Elapsed())
	base := bench.Seconds(raw)
	return bench.Row{
		Metric: metric, Zkdog: &d, Baseline: &base, Ratio: d.Value / base.Value,
		Notes: []string{fmt.Sprintf("one run; in-process job.Create of the same items took %v (median): the rest is the process, reading and checking %s items, and the session",
			inProcess.Round(time.Millisecond), bench.Count(len(items)))},
	}
}

// ensure creates p and its missing parents.
func (e *env) ensure(p string) error {
	at := ""
	for _, part := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		at += "/" + part
		if _, err := e.conn().Create(at, nil, 0, openACL); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("creating %s: %w", at, err)
		}
	}
	return nil
}

// durations lists a few durations compactly, for notes.
func durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(10 * time.Millisecond).String()
	}
	return strings.Join(parts, ", ")
}
