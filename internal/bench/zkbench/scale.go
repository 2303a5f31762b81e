package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zkdog/zkdog/heartbeat"
	"github.com/zkdog/zkdog/internal/bench"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/master"
)

// scale works a large job to the end with many concurrent workers and has
// a real zkdog wait report it: the protocol's promise at size (a million
// items, a thousand workers), not a micro-measurement. The workers run in
// this process, each with a session, a timer and the take/record loop of
// zkdog run, and no command: a thousand zkdog processes forking commands
// would measure the machine's two cores, not the protocol. Opt-in (-only
// scale): it takes minutes.
func (e *env) scale() []bench.Row {
	n, workers := e.sz.ScaleItems, e.sz.ScaleWorkers
	drainMetric := fmt.Sprintf("a %s-item job worked by %s concurrent workers (in process: session, timer, take, record)", bench.Count(n), bench.Count(workers))
	reportMetric := fmt.Sprintf("zkdog wait on that job: exit after the last worker, report accounting for all %s items", bench.Count(n))
	root := benchRoot + "/scale"
	e.log.Info("filling the scale job", "items", n)
	j, spec, err := e.createJob(root, bench.Items(n), defaultTimer)
	if err != nil {
		return []bench.Row{bench.Failed(drainMetric, err)}
	}
	defer e.cleanup(root)

	var report bytes.Buffer
	ms := e.zkdogSpec("scale-master", "wait", "--root", root, "--json", "--keep")
	ms.Stdout = &report
	m, err := bench.Start(e.ctx, ms)
	if err != nil {
		return []bench.Row{bench.Failed(drainMetric, err)}
	}
	defer m.Terminate(time.Second)

	// Sessions first, then the work: a thousand session handshakes are not
	// part of the drain rate.
	e.log.Info("opening worker sessions", "workers", workers)
	sessions := make([]*zkconn.Session, workers)
	for i := range sessions {
		ctx, cancel := context.WithTimeout(e.ctx, time.Minute)
		sessions[i], err = zkconn.Dial(ctx, e.addr, 30*time.Second, nil)
		cancel()
		if err != nil {
			for _, s := range sessions[:i] {
				s.Close()
			}
			return []bench.Row{bench.Failed(drainMetric, fmt.Errorf("session %d: %w", i, err))}
		}
	}
	before := e.mntr()
	began := time.Now()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		lastExit atomic.Int64
		taken    atomic.Int64
	)
	for i, sess := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { lastExit.Store(max(lastExit.Load(), time.Now().UnixNano())) }()
			if err := work(sess, e.access, j.L, spec, fmt.Sprintf("w%04d", i), &taken); err != nil {
				mu.Lock()
				firstErr = cmpOr(firstErr, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	drained := time.Since(began)
	delta := e.mntr().Since(before)
	if firstErr != nil {
		return []bench.Row{bench.Failed(drainMetric, firstErr)}
	}
	rate := bench.Rate(n, drained, "items/s")
	drainRow := bench.Row{Metric: drainMetric, Zkdog: &rate, Notes: []string{
		fmt.Sprintf("%v from the first take to the last worker's exit; per item %s writes and %s reads to ZooKeeper, server-side mean latency %s ms a write",
			drained.Round(time.Millisecond), bench.Number(delta[bench.Writes]/float64(n)), bench.Number(delta[bench.Reads]/float64(n)),
			bench.Number(delta.MeanLatency(bench.Writes, bench.WriteMsSum))),
		fmt.Sprintf("largest child list during the run: %d (leases and timers: one per worker)", workers),
	}}

	waitErr := waitFor(e.ctx, m, 5*time.Minute)
	exitAfter := m.Exited.Sub(time.Unix(0, lastExit.Load()))
	var r master.Report
	if err := errors.Join(waitErr, json.Unmarshal(report.Bytes(), &r)); err != nil {
		return []bench.Row{drainRow, bench.Failed(reportMetric, fmt.Errorf("%w (report %q)", err, report.String()))}
	}
	if r.End != master.EndOK || r.OK != n {
		return []bench.Row{drainRow, bench.Failed(reportMetric, fmt.Errorf("report: %s, %d of %d ok", r.End, r.OK, n))}
	}
	lat := bench.Millis(exitAfter)
	return []bench.Row{drainRow, {Metric: reportMetric, Zkdog: &lat, Notes: []string{
		fmt.Sprintf("report: %s, %s items ok, %d unfinished; its final accounting lists %d result buckets", r.End, bench.Count(r.OK), r.Unfinished, protocol.Buckets(n)),
		fmt.Sprintf("zkdog wait's CPU over the run: %v", m.CPU().Round(time.Millisecond)),
	}}}
}

// work is one in-process worker: the protocol steps of zkdog run --loop,
// with no command between take and record.
func work(sess *zkconn.Session, access job.Access, l protocol.Layout, spec protocol.Job, id string, taken *atomic.Int64) error {
	defer sess.Close()
	j := job.New(sess.Conn(), l, job.WithAccess(access))
	if err := j.Authenticate(); err != nil {
		return err
	}
	t, err := heartbeat.Start(sess, j, protocol.Timer{ID: id, Host: "zkbench"}, heartbeat.WithKickInterval(spec.Timer()/4))
	if err != nil {
		return err
	}
	defer t.Close()
	lease := protocol.Lease{Timer: t.Name(), ID: id, Host: "zkbench"}
	for {
		c, err := j.Take(context.Background(), spec, lease)
		if errors.Is(err, job.ErrEmpty) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		t.Progress()
		if err := j.Record(context.Background(), c, protocol.Result{Outcome: protocol.OK, ID: id}); err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		taken.Add(1)
	}
}

func waitFor(ctx context.Context, p *bench.Proc, limit time.Duration) error {
	select {
	case <-p.Done():
		return nil
	case <-time.After(limit):
		return fmt.Errorf("zkdog wait did not exit within %v", limit)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
