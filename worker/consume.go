package worker

import (
	"os"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// Consume takes one item and records it done at once, for scripts that
// handle items themselves (the original module's consume). The caller
// takes responsibility for the item: zkdog will not hand it out again.
// job.ErrEmpty when no item is left.
func Consume(j *job.Job, id string) (job.Claim, error) {
	spec, _, err := j.Spec()
	if err != nil {
		return job.Claim{}, err
	}
	host, _ := os.Hostname()
	c, err := j.Take(spec, protocol.Lease{ID: id, Host: host, Pid: os.Getpid()})
	if err != nil {
		return job.Claim{}, err
	}
	err = j.Record(c, protocol.Result{Outcome: protocol.OK, ID: id, Host: host, Reason: "taken by zkdog consume"})
	return c, err
}
