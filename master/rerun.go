package master

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// ErrNothingToRerun: the job or joblog a re-run was asked of has no item
// with the outcomes asked for.
var ErrNothingToRerun = errors.New("nothing to re-run")

// Rerun is the items of a re-run and their original indices, in the
// original order.
type Rerun struct {
	Items   [][]byte
	Origins []int
}

// RerunOf picks the rows whose outcome is in want, by original index.
func RerunOf(rows []ResultRow, want []protocol.Outcome, from string) (Rerun, error) {
	picked := slices.DeleteFunc(slices.Clone(rows), func(r ResultRow) bool { return !slices.Contains(want, r.Outcome) })
	slices.SortFunc(picked, func(a, b ResultRow) int { return a.Index - b.Index })
	if len(picked) == 0 {
		return Rerun{}, fmt.Errorf("%w: %s has no item whose outcome is %s", ErrNothingToRerun, from, joinOutcomes(want))
	}
	var r Rerun
	for _, row := range picked {
		r.Items = append(r.Items, row.Bytes())
		r.Origins = append(r.Origins, row.Index-1)
	}
	return r, nil
}

// RerunFromJob reads the items of the job j (live or sealed) whose
// outcome is in want.
func RerunFromJob(ctx context.Context, j *job.Job, want []protocol.Outcome) (Rerun, error) {
	rows, err := ReadResults(ctx, j, want)
	if err != nil {
		return Rerun{}, err
	}
	return RerunOf(rows, want, "the job at "+j.L.Root)
}

// RerunFromJoblog reads the items of a joblog whose outcome is in want.
func RerunFromJoblog(name string, want []protocol.Outcome) (Rerun, error) {
	f, err := os.Open(name)
	if err != nil {
		return Rerun{}, err
	}
	defer f.Close()
	rows, err := ReadJoblog(f, name)
	if err != nil {
		return Rerun{}, err
	}
	return RerunOf(rows, want, name)
}
