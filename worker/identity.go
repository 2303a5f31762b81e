package worker

import (
	"fmt"
	"strings"
)

// Identity names this worker the way its batch scheduler does, so that a
// report of a hung worker can be matched to a task in qstat or squeue; on
// no scheduler it is host:pid. getenv is os.Getenv in production.
func Identity(getenv func(string) string, host string, pid int) string {
	pair := func(job, task string) string {
		j, t := getenv(job), getenv(task)
		switch {
		case j != "" && t != "":
			return j + "_" + t
		case j != "":
			return j
		}
		return ""
	}
	// PBS variables come first: on a Slurm cluster they are there only
	// when the task was submitted through qsub (slurm-wlm-torque with
	// spank_pbs), and then the user knows it by its PBS name.
	for _, id := range []string{
		// PBS Pro, and Slurm's spank_pbs, name a subjob ARRAY[INDEX].
		pbsPro(getenv("PBS_ARRAY_ID"), getenv("PBS_ARRAY_INDEX")),
		// Torque puts the index inside PBS_JOBID ("123[4].server") and
		// also sets PBS_ARRAYID.
		pbs(getenv("PBS_JOBID"), getenv("PBS_ARRAYID")),
		// Slurm sets SLURM_JOB_ID on every task; the array pair is
		// preferred because squeue shows array tasks as ARRAYJOB_TASK.
		pair("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"),
		getenv("SLURM_JOB_ID"),
		taskPair(getenv("JOB_ID"), getenv("SGE_TASK_ID")),     // SGE: "undefined" outside arrays
		taskPair(getenv("LSB_JOBID"), getenv("LSB_JOBINDEX")), // LSF: index 0 outside arrays
	} {
		if id != "" {
			return id
		}
	}
	return fmt.Sprintf("%s:%d", host, pid)
}

func pbsPro(arrayID, index string) string {
	if arrayID == "" || index == "" {
		return ""
	}
	return arrayID + "[" + index + "]"
}

func pbs(jobID, arrayID string) string {
	if jobID == "" {
		return ""
	}
	if arrayID != "" && !strings.Contains(jobID, "[") {
		return jobID + "[" + arrayID + "]"
	}
	return jobID
}

func taskPair(jobID, task string) string {
	if jobID == "" {
		return ""
	}
	if task == "" || task == "undefined" || task == "0" {
		return jobID
	}
	return jobID + "_" + task
}
