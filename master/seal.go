package master

import (
	"context"
	"os"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// Seal ends the job with r's summary, keeping only what did not succeed
// (everything with keep); see job.Seal.
func Seal(ctx context.Context, j *job.Job, r Report, keep bool) (protocol.Summary, error) {
	host, _ := os.Hostname()
	return j.Seal(ctx, protocol.Summary{End: string(r.End), Exit: r.Exit, Reason: r.Reason, Host: host}, keep)
}

// SealedReport is the report of a job sealed earlier, from its summary
// and the results it kept: what zkdog wait says of a job that had already
// ended.
func SealedReport(ctx context.Context, j *job.Job, spec protocol.Job) (Report, error) {
	r := Report{Root: j.L.Root, Items: spec.Items}
	if s := spec.Summary; s != nil {
		r.End, r.Exit, r.Reason = End(s.End), s.Exit, s.Reason
		r.OutcomeCounts = CountsOf(s.Outcomes)
		r.Unfinished = s.Outcomes[protocol.Unfinished]
	}
	rows, err := ReadResults(ctx, j, NotOK())
	if err != nil {
		return r, err
	}
	for _, row := range rows[:min(len(rows), maxDetails)] {
		r.Problems = append(r.Problems, ItemReport{Index: row.Index, Item: row.Item, ItemBase64: row.ItemBase64,
			Outcome: row.Outcome, Exit: row.Exit, Signal: row.Signal, Attempt: row.Attempts, ID: row.Worker,
			Host: row.Host, Reason: row.Reason, Stderr: row.Stderr})
	}
	return r, nil
}
