package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/bench"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// benchRoot is the parent of every znode the benchmarks create.
const benchRoot = "/zkbench"

// defaultTimer is the job timer of jobs whose timer plays no part in the
// measurement: long enough that no worker is ever judged hung.
const defaultTimer = 5 * time.Minute

func (e *env) conn() *zk.Conn { return e.sess.Conn() }

// handle returns a job handle on the driver's session.
func (e *env) handle(root string) (*job.Job, error) {
	l, err := protocol.NewLayout(root)
	if err != nil {
		return nil, err
	}
	return job.New(e.conn(), l, job.WithAccess(e.access)), nil
}

// createJob creates a job as zkdog master does (job.Create), in process.
func (e *env) createJob(root string, items [][]byte, timer time.Duration) (*job.Job, protocol.Job, error) {
	j, err := e.handle(root)
	if err != nil {
		return nil, protocol.Job{}, err
	}
	if err := j.Create(jobSpec(timer), items); err != nil {
		return nil, protocol.Job{}, err
	}
	spec, err := j.Spec()
	return j, spec, err
}

// jobSpec is the job record zkdog master would write with --timer timer.
func jobSpec(timer time.Duration) protocol.Job {
	return protocol.Job{TimerMillis: timer.Milliseconds(), Master: "zkbench"}
}

// remove deletes a tree, job or not, with zkdog's own removal; a tree
// that is not there is not an error.
func (e *env) remove(root string) error {
	j, err := e.handle(root)
	if err != nil {
		return err
	}
	return j.Remove()
}

// cleanup removes a benchmark's tree and logs, rather than returns, a
// failure: the measurement is taken by then, and the next one uses
// another root.
func (e *env) cleanup(root string) {
	if err := e.remove(root); err != nil {
		e.log.Warn("removing a benchmark's znodes", "root", root, "err", err)
	}
}

// zkdogSpec is a zkdog command against the benchmark's server. Logging is
// at warn, as a production worker would run: info logs a line per item.
func (e *env) zkdogSpec(logName, command string, args ...string) bench.Spec {
	return bench.Spec{
		Path: e.zkdog,
		Args: append([]string{command, "--zk", e.addr, "--log-level", "warn"}, args...),
		Log:  e.logPath(logName),
	}
}

func (e *env) logPath(name string) string { return filepath.Join(e.work, name+".log") }

// itemsPath is where an items file for zkdog master or init goes.
func (e *env) itemsPath(name string) string { return filepath.Join(e.work, name+".items") }

// mntr reads the server's counters; on failure it logs and returns nil,
// whose lookups read 0, since the counters only ever feed notes.
func (e *env) mntr() bench.Counters {
	c, err := bench.Mntr(e.ctx, e.addr)
	if err != nil {
		e.log.Warn("reading ZooKeeper's counters", "err", err)
	}
	return c
}

// jvmCPU is the CPU time the ZooKeeper JVM has used so far.
func (e *env) jvmCPU() time.Duration {
	d, err := bench.ProcCPU(e.srv.Pid())
	if err != nil {
		e.log.Warn("reading ZooKeeper's CPU time", "err", err)
	}
	return d
}

// checkDone verifies that every item of a job has a result: a rate over
// items that were never processed would be meaningless.
func (e *env) checkDone(j *job.Job, spec protocol.Job) error {
	c, err := j.Counts(spec)
	if err != nil {
		return err
	}
	if c.Done != spec.Items || c.Failed != 0 {
		return fmt.Errorf("%d of %d items have a result, %d failed", c.Done, spec.Items, c.Failed)
	}
	return nil
}

func numCPU() int { return runtime.NumCPU() }

// share is how much of the machine's CPU capacity cpu is over wall.
func share(cpu, wall time.Duration) float64 {
	return 100 * cpu.Seconds() / (wall.Seconds() * float64(numCPU()))
}

// errSkipped marks a comparison that was not asked for.
var errSkipped = errors.New("skipped")
