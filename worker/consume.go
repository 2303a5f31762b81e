package worker

import (
	"context"
	"os"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// Consume takes one item and records it done at once, for scripts that
// handle items themselves (the original module's consume). The caller
// takes responsibility for the item: zkdog will not hand it out again.
// job.ErrEmpty when no item is left.
//
// It holds a timer while it does, as every worker does: a lease must prove
// its session, so that a request resent after an expiry cannot take an
// item for a session nobody knows. A result whose reply was lost is
// retried, and finding it recorded is success: exiting without printing
// an item recorded done would lose it.
func Consume(ctx context.Context, j *job.Job, id string) (job.Claim, error) {
	spec, err := j.Spec()
	if err != nil {
		return job.Claim{}, err
	}
	if spec.Items == 0 {
		return job.Claim{}, job.ErrEmpty
	}
	host, _ := os.Hostname()
	path, err := j.CreateTimer(protocol.Timer{ID: id, Host: host, Pid: os.Getpid()})
	if err != nil {
		return job.Claim{}, err
	}
	timer := path[len(j.L.Timers())+1:]
	defer j.DeleteTimer(timer)
	c, err := j.Take(ctx, spec, protocol.Lease{Timer: timer, ID: id, Host: host, Pid: os.Getpid()})
	if err != nil {
		return job.Claim{}, err
	}
	err = j.Record(ctx, c, protocol.Result{Outcome: protocol.OK, ID: id, Host: host, Reason: "taken by zkdog consume"})
	return c, err
}
