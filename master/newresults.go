package master

import (
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// newResults finds the results recorded since it last looked, cheaply:
// items are handed out in order, so new results land in the newest
// buckets that are not yet complete; it lists those, newest first, until
// the caller has what it wants, and never lists a complete bucket again.
// The joblog and the stats keeper each follow the job with one.
type newResults struct {
	items    int
	complete map[int]bool // result buckets whose every item has a result
}

func newNewResults(items int) *newResults {
	return &newResults{items: items, complete: map[int]bool{}}
}

// walk lists the incomplete buckets newest first, passing each one's
// results to each, while more() says the caller wants more. A bucket is
// marked complete only once each has taken its results without error.
func (n *newResults) walk(j *job.Job, more func() bool, each func([]job.Outcome) error) error {
	for b := protocol.Buckets(n.items) - 1; b >= 0 && more(); b-- {
		if n.complete[b] {
			continue
		}
		outcomes, err := j.BucketOutcomes(b)
		if err != nil {
			return err
		}
		if err := each(outcomes); err != nil {
			return err
		}
		if len(outcomes) == protocol.BucketLen(n.items, b) {
			n.complete[b] = true
		}
	}
	return nil
}
