package worker

import "testing"

func TestIdentity(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"none", nil, "node7:4242"},
		{"slurm array", map[string]string{"SLURM_ARRAY_JOB_ID": "100", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "103"}, "100_3"},
		{"slurm plain", map[string]string{"SLURM_JOB_ID": "55"}, "55"},
		{"torque array", map[string]string{"PBS_JOBID": "12[4].head", "PBS_ARRAYID": "4"}, "12[4].head"},
		{"pbs torque-style ids", map[string]string{"PBS_JOBID": "77", "PBS_ARRAYID": "2"}, "77[2]"},
		{"qsub on slurm (spank_pbs)", map[string]string{"PBS_JOBID": "18", "PBS_ARRAY_ID": "17", "PBS_ARRAY_INDEX": "1",
			"SLURM_ARRAY_JOB_ID": "17", "SLURM_ARRAY_TASK_ID": "1", "SLURM_JOB_ID": "18"}, "17[1]"},
		{"sge array", map[string]string{"JOB_ID": "9", "SGE_TASK_ID": "5"}, "9_5"},
		{"sge plain", map[string]string{"JOB_ID": "9", "SGE_TASK_ID": "undefined"}, "9"},
		{"lsf array", map[string]string{"LSB_JOBID": "31", "LSB_JOBINDEX": "8"}, "31_8"},
		{"lsf plain", map[string]string{"LSB_JOBID": "31", "LSB_JOBINDEX": "0"}, "31"},
	}
	for _, c := range cases {
		got := Identity(func(k string) string { return c.env[k] }, "node7", 4242)
		if got != c.want {
			t.Errorf("%s: Identity = %q, want %q", c.name, got, c.want)
		}
	}
}
