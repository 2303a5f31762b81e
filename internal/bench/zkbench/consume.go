package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"time"

	"github.com/zkdog/zkdog/internal/bench"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// consumeRounds splits the consumes from each queue into rounds that
// alternate between the queues, so that a slow spell of a shared machine
// (or a collection in the JVM) is shared by both figures instead of
// landing on one.
const consumeRounds = 10

// queueSide is one queue's account in the consume measurement.
type queueSide struct {
	j            *job.Job
	spec         protocol.Job
	lease        protocol.Lease
	take, record []time.Duration
}

func (q *queueSide) total() time.Duration {
	var t time.Duration
	for i := range q.take {
		t += q.take[i] + q.record[i]
	}
	return t
}

// consume measures whether taking an item costs more from a large queue
// than from a small one: the protocol promises two round trips
// whatever the length. One in-process worker takes and records (Take then
// Record, both timed) the same number of items from each, in alternating
// rounds, with both jobs in the server at once so that the server's own
// size weighs on both alike.
//
// A large queue that does not fit in the server's heap kills it; the
// step then says so, starts a fresh server and measures with FallbackBig
// items instead. The large job is not removed afterwards: this step runs
// last, and the server is stopped right after.
func (e *env) consume() []bench.Row {
	var rows []bench.Row
	big, notes := e.sz.Big, []string(nil)
	bj, bspec, fillRow, err := e.fillBig(big)
	if err != nil {
		rows = append(rows, bench.Failed(fillMetric(big), err))
		if e.sz.FallbackBig <= 0 || e.ctx.Err() != nil {
			return append(rows, bench.Failed(consumeMetric(big, e.sz.Small, e.sz.Consumes), errors.New("no large queue")))
		}
		if err := e.restartServer(); err != nil {
			return append(rows, bench.Failed(consumeMetric(big, e.sz.Small, e.sz.Consumes), err))
		}
		notes = append(notes, fmt.Sprintf("%s items did not fit (row above): measured on a fresh server with %s items instead",
			bench.Count(big), bench.Count(e.sz.FallbackBig)))
		big = e.sz.FallbackBig
		if bj, bspec, fillRow, err = e.fillBig(big); err != nil {
			rows = append(rows, bench.Failed(fillMetric(big), err))
			return append(rows, bench.Failed(consumeMetric(big, e.sz.Small, e.sz.Consumes), errors.New("no large queue")))
		}
	}
	rows = append(rows, fillRow)
	return append(rows, e.consumeRates(bj, bspec, big, notes))
}

func fillMetric(n int) string {
	return fmt.Sprintf("fill %s items (job.Create, in process)", bench.Count(n))
}

func consumeMetric(big, small, consumes int) string {
	return fmt.Sprintf("consume rate, %s-item queue (zkdog) vs %s-item queue (baseline): Take+Record, %d each",
		bench.Count(big), bench.Count(small), min(consumes, small))
}

func (e *env) consumeRates(bj *job.Job, bspec protocol.Job, big int, notes []string) bench.Row {
	small := e.sz.Small
	k := min(e.sz.Consumes, small)
	metric := consumeMetric(big, small, k)
	sj, sspec, err := e.createJob(benchRoot+"/queue-small", bench.Items(small), defaultTimer)
	if err != nil {
		return bench.Failed(metric, err)
	}
	defer e.cleanup(benchRoot + "/queue-small")

	host, _ := os.Hostname()
	bq := &queueSide{j: bj, spec: bspec}
	sq := &queueSide{j: sj, spec: sspec}
	for _, q := range []*queueSide{bq, sq} {
		// A lease proves its worker's timer, as zkdog run's do.
		p, err := q.j.CreateTimer(protocol.Timer{ID: "zkbench", Host: host, Pid: os.Getpid()})
		if err != nil {
			return bench.Failed(metric, err)
		}
		q.lease = protocol.Lease{Timer: path.Base(p), ID: "zkbench", Host: host, Pid: os.Getpid()}
	}
	before := e.mntr()
	for r := range consumeRounds {
		n := k/consumeRounds + btoi(r < k%consumeRounds)
		first, second := sq, bq
		if r%2 == 1 {
			first, second = bq, sq
		}
		for _, q := range []*queueSide{first, second} {
			if err := consumeSome(q, n); err != nil {
				return bench.Failed(metric, err)
			}
		}
	}
	delta := e.mntr().Since(before)

	bigRate, smallRate := bench.Rate(k, bq.total(), "items/s"), bench.Rate(k, sq.total(), "items/s")
	return bench.Row{
		Metric: metric, Zkdog: &bigRate, Baseline: &smallRate,
		Ratio: smallRate.Value / bigRate.Value, Goal: bench.RatioAtMost(1.2),
		Notes: append(notes,
			"ratio = rate(small)/rate(large); one session, sequential, no master; rounds alternate between the queues",
			"large: "+latencies(bq),
			"small: "+latencies(sq),
			fmt.Sprintf("ZooKeeper requests per consume: %s writes, %s reads; server-side mean latency %s ms a write, %s ms a read",
				bench.Number(delta[bench.Writes]/float64(2*k)), bench.Number(delta[bench.Reads]/float64(2*k)),
				bench.Number(delta.MeanLatency(bench.Writes, bench.WriteMsSum)), bench.Number(delta.MeanLatency(bench.Reads, bench.ReadMsSum))),
		),
	}
}

// fillBig creates the large queue while watching the server. A ZooKeeper
// whose heap fills up does not fail at once: it spends minutes in
// back-to-back full collections, answering ever more slowly, and then
// stops answering, to which go-zookeeper's answer is to wait for ever. So
// the fill is given up when the old generation stays full (read with
// jcmd), when the driver's session is lost (the server stopped
// answering), or when the step's context ends.
func (e *env) fillBig(n int) (*job.Job, protocol.Job, bench.Row, error) {
	metric := fillMetric(n)
	root := fmt.Sprintf("%s/queue-%d", benchRoot, n)
	items := bench.Items(n)
	type result struct {
		j    *job.Job
		spec protocol.Job
		err  error
	}
	done := make(chan result, 1)
	e.log.Info("filling the large queue", "items", n)
	began := time.Now()
	go func() {
		j, spec, err := e.createJob(root, items, defaultTimer)
		done <- result{j, spec, err}
	}()

	pid, max := e.srv.Pid(), maxHeap(e.srv.Pid())
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var (
		znodes    float64 // the last count read
		fullSince time.Time
		heap      heapUse
		noJcmd    bool
	)
	for {
		select {
		case r := <-done:
			if r.err != nil {
				return nil, protocol.Job{}, bench.Row{}, e.fillFailure(r.err, znodes, n)
			}
			d := time.Since(began)
			rate := bench.Rate(n, d, "items/s")
			row := bench.Row{Metric: metric, Zkdog: &rate, Notes: append([]string{d.Round(100 * time.Millisecond).String()}, e.serverFootprint()...)}
			return r.j, r.spec, row, nil
		case <-e.sess.Lost():
			return nil, protocol.Job{}, bench.Row{}, e.fillFailure(fmt.Errorf("the driver's session was lost: %w", e.sess.Err()), znodes, n)
		case <-e.ctx.Done():
			return nil, protocol.Job{}, bench.Row{}, e.ctx.Err()
		case <-tick.C:
			if c, err := bench.Mntr(e.ctx, e.addr); err == nil {
				znodes = c[bench.ZnodeCount]
			}
			if noJcmd {
				continue
			}
			h, err := readHeap(e.ctx, pid)
			if err != nil {
				// No JDK, or a JVM too busy to answer: the session's
				// loss will tell.
				noJcmd = errors.Is(err, exec.ErrNotFound)
				continue
			}
			heap = h
			e.log.Debug("filling", "znodes", znodes, "heap", heap)
			switch {
			case !heap.oldFull(max):
				fullSince = time.Time{}
			case fullSince.IsZero():
				fullSince = time.Now()
			case time.Since(fullSince) >= 10*time.Second:
				return nil, protocol.Job{}, bench.Row{}, e.fillFailure(
					fmt.Errorf("ZooKeeper's heap is exhausted: old generation full for %v (%s)", time.Since(fullSince).Round(time.Second), heap), znodes, n)
			}
		}
	}
}

// fillFailure explains a failed fill with what the server went through.
func (e *env) fillFailure(err error, znodes float64, n int) error {
	msg := fmt.Sprintf("%v\nthe server held %s znodes when last read, of the %s the job needs", err, bench.Count(int(znodes)), bench.Count(n))
	if max := maxHeap(e.srv.Pid()); max > 0 {
		msg += fmt.Sprintf("; its heap limit is -Xmx%dm (set by zkserver)", max>>20)
	}
	if m, merr := bench.ProcMemory(e.srv.Pid()); merr == nil {
		msg += fmt.Sprintf("; JVM peak RSS %s", bench.MiB(m.HWM))
	}
	if log, rerr := os.ReadFile(e.srv.LogPath()); rerr == nil && bytes.Contains(log, []byte("OutOfMemoryError")) {
		msg += "\nits log has java.lang.OutOfMemoryError: Java heap space"
	}
	return errors.New(msg)
}

func consumeSome(q *queueSide, n int) error {
	for range n {
		t := time.Now()
		c, err := q.j.Take(context.Background(), q.spec, q.lease)
		if err != nil {
			return fmt.Errorf("take from %s: %w", q.j.L.Root, err)
		}
		t1 := time.Now()
		if err := q.j.Record(context.Background(), c, protocol.Result{Outcome: protocol.OK}); err != nil {
			return fmt.Errorf("record in %s: %w", q.j.L.Root, err)
		}
		q.take = append(q.take, t1.Sub(t))
		q.record = append(q.record, time.Since(t1))
	}
	return nil
}

func latencies(q *queueSide) string {
	tk, rc := bench.Ms(q.take), bench.Ms(q.record)
	return fmt.Sprintf("Take p50 %s ms, p99 %s ms; Record p50 %s ms, p99 %s ms",
		bench.Number(bench.Median(tk)), bench.Number(bench.Quantile(tk, 0.99)),
		bench.Number(bench.Median(rc)), bench.Number(bench.Quantile(rc, 0.99)))
}

// serverFootprint describes the server's memory once it holds the large
// queue: its RSS, its znodes and, with the JDK's jcmd, its live heap
// against the -Xmx512m zkserver gives it.
func (e *env) serverFootprint() []string {
	var notes []string
	c := e.mntr()
	if m, err := bench.ProcMemory(e.srv.Pid()); err == nil {
		notes = append(notes, fmt.Sprintf("ZooKeeper after the fill: %s znodes, about %s of data; JVM RSS %s, peak %s",
			bench.Count(int(c[bench.ZnodeCount])), bench.Bytes(int64(c[bench.DataSize])), bench.MiB(m.RSS), bench.MiB(m.HWM)))
	}
	if h, err := liveHeap(e.ctx, e.srv.Pid()); err == nil {
		notes = append(notes, "live heap after a full collection: "+h.String()+xmxNote(e.srv.Pid()))
	} else {
		e.log.Debug("no heap figures", "err", err)
	}
	return notes
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
