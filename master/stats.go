package master

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// StatsEvery bounds how often the master looks for new ok results to
// publish their median duration (protocol.Stats), for --item-timeout P%
// and for workers weighing their --lifetime. Both judge items that take
// minutes; a median a few seconds old changes neither.
const StatsEvery = 5 * time.Second

// statsKeeper follows the results that ended ok, reading each one's
// duration once. A look reads the two result counters, and lists result
// buckets only while ok results are missing: newest first (where results
// land, since items are handed out in order), until the ok count is met,
// skipping buckets whose every item has a result.
type statsKeeper struct {
	j         *job.Job
	spec      protocol.Job
	log       *slog.Logger
	seen      map[int]bool // ok results read
	fresh     *newResults
	durations []int64 // of the ok results, in milliseconds
	published int     // how many durations the last publish covered
}

// publishStats runs the keeper until ctx is done; the returned function
// stops it and waits for it, so that nothing is written after Wait
// returns (the seal comes next).
func (w *waiter) publishStats(ctx context.Context) (stop func()) {
	every := w.cfg.StatsEvery
	if every <= 0 {
		every = StatsEvery
	}
	k := &statsKeeper{j: w.j, spec: w.spec, log: w.cfg.Log, seen: map[int]bool{}, fresh: newNewResults(w.spec.Items)}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		k.run(ctx, every)
	}()
	return func() { cancel(); <-done }
}

func (k *statsKeeper) run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		err := k.look()
		if errors.Is(err, job.ErrNoJob) || errors.Is(err, job.ErrIncomplete) || errors.Is(err, job.ErrFinished) {
			return // the master says what became of the job
		}
		if err != nil {
			k.log.Warn("could not publish the median duration for the workers; will retry", "err", err)
		}
	}
}

// look reads the ok results not yet read, and publishes their median if
// there are new ones.
func (k *statsKeeper) look() error {
	tally, _, err := k.j.WatchTally()
	if err != nil {
		return err
	}
	ok := tally.Done - tally.Failed
	if err := k.fresh.walk(k.j, func() bool { return len(k.seen) < ok }, k.read); err != nil {
		return err
	}
	if len(k.durations) == k.published {
		return nil
	}
	if err := k.j.PublishStats(protocol.Stats{OK: len(k.durations), MedianMillis: median(k.durations)}); err != nil {
		return err
	}
	k.published = len(k.durations)
	return nil
}

// read reads the durations of the ok results among outcomes not read
// before.
func (k *statsKeeper) read(outcomes []job.Outcome) error {
	var fresh []job.Outcome
	for _, o := range outcomes {
		if o.Outcome == protocol.OK && !k.seen[o.Index] {
			fresh = append(fresh, o)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	ds, err := k.j.Durations(fresh)
	if err != nil {
		return err
	}
	for i, o := range fresh {
		k.seen[o.Index] = true
		k.durations = append(k.durations, ds[i].Milliseconds())
	}
	return nil
}

// median sorts ms in place and returns its median.
func median(ms []int64) int64 {
	if len(ms) == 0 {
		return 0
	}
	slices.Sort(ms)
	n := len(ms)
	if n%2 == 1 {
		return ms[n/2]
	}
	return (ms[n/2-1] + ms[n/2]) / 2
}
