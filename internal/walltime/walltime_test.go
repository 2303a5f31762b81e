package walltime

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

var utc = time.UTC

func env(vars map[string]string, outputs map[string]string) Env {
	return Env{
		Getenv: func(k string) string { return vars[k] },
		Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
			out, ok := outputs[name+" "+strings.Join(args, " ")]
			if !ok {
				return nil, errors.New("exit status 1")
			}
			return []byte(out), nil
		},
		Now:      func() time.Time { return time.Date(2026, 12, 2, 1, 0, 0, 0, utc) },
		Location: utc,
	}
}

func TestEnd(t *testing.T) {
	qstat := "Job Id: 17.server\n    Job_Name = work\n    Resource_List.walltime = 02:00:00\n    start_time = Wed Dec  2 00:30:00 2026\n"
	cases := []struct {
		name    string
		vars    map[string]string
		outputs map[string]string
		want    time.Time
		source  string
	}{
		{"slurm's variable", map[string]string{"SLURM_JOB_ID": "5", "SLURM_JOB_END_TIME": "1796180400"}, nil,
			time.Unix(1796180400, 0), "SLURM_JOB_END_TIME"},
		{"squeue", map[string]string{"SLURM_JOB_ID": "5"}, map[string]string{"squeue -h -o %e -j 5": "2026-12-02T01:23:45\n"},
			time.Date(2026, 12, 2, 1, 23, 45, 0, utc), "squeue"},
		{"qstat", map[string]string{"PBS_JOBID": "17.server"}, map[string]string{"qstat -f 17.server": qstat},
			time.Date(2026, 12, 2, 2, 30, 0, 0, utc), "qstat"},
		{"torque's epoch start", map[string]string{"PBS_JOBID": "17"},
			map[string]string{"qstat -f 17": "    Resource_List.walltime = 1:00:00:00\n    start_time = 1796180400\n"},
			time.Unix(1796180400, 0).Add(24 * time.Hour), "qstat"},
		{"PBS_WALLTIME with qstat's start", map[string]string{"PBS_JOBID": "17.server", "PBS_WALLTIME": "600"},
			map[string]string{"qstat -f 17.server": qstat}, time.Date(2026, 12, 2, 0, 40, 0, 0, utc), "PBS_WALLTIME and qstat's start_time"},
		{"PBS_WALLTIME without qstat", map[string]string{"PBS_JOBID": "17.server", "PBS_WALLTIME": "600"}, nil,
			time.Date(2026, 12, 2, 1, 10, 0, 0, utc), "PBS_WALLTIME from now"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, source, err := End(context.Background(), env(c.vars, c.outputs))
			if err != nil || !got.Equal(c.want) || source != c.source {
				t.Fatalf("End = %v, %q, %v; want %v from %q", got, source, err, c.want, c.source)
			}
		})
	}
}

// Every way of not knowing is ErrUnknown, with a message naming what was
// missing, so that the caller's one warning line says why.
func TestEndUnknown(t *testing.T) {
	cases := []struct {
		name    string
		vars    map[string]string
		outputs map[string]string
		says    string
	}{
		{"no scheduler", nil, nil, "not in a Slurm or PBS job"},
		{"squeue fails", map[string]string{"SLURM_JOB_ID": "5"}, nil, "squeue -j 5: exit status 1"},
		{"no time limit", map[string]string{"SLURM_JOB_ID": "5"}, map[string]string{"squeue -h -o %e -j 5": "N/A\n"}, `end time "N/A"`},
		{"bad variable", map[string]string{"SLURM_JOB_ID": "5", "SLURM_JOB_END_TIME": "soon"}, nil, `SLURM_JOB_END_TIME="soon"`},
		{"qstat fails", map[string]string{"PBS_JOBID": "17"}, nil, "qstat -f 17"},
		{"no walltime", map[string]string{"PBS_JOBID": "17"}, map[string]string{"qstat -f 17": "    start_time = 1796180400\n"}, "Resource_List.walltime"},
		{"not started", map[string]string{"PBS_JOBID": "17"}, map[string]string{"qstat -f 17": "    Resource_List.walltime = 01:00:00\n"}, "no start_time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, err := End(context.Background(), env(c.vars, c.outputs))
			if !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("End = %v, %v; want ErrUnknown saying %q", got, err, c.says)
			}
		})
	}
}

func TestParseWalltime(t *testing.T) {
	for s, want := range map[string]time.Duration{
		"45": 45 * time.Second, "10:00": 10 * time.Minute, "01:30:00": 90 * time.Minute, "2:00:00:00": 48 * time.Hour,
	} {
		if got, err := parseWalltime(s); err != nil || got != want {
			t.Errorf("parseWalltime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "1:2:3:4:5", "1h", "-1:00"} {
		if got, err := parseWalltime(s); err == nil {
			t.Errorf("parseWalltime(%q) = %v, want an error", s, got)
		}
	}
}

// The real squeue, when Slurm's client is installed but no controller
// answers, fails: End says so rather than inventing an end.
func TestEndRealCommandFails(t *testing.T) {
	e := Env{Getenv: func(k string) string {
		if k == "SLURM_JOB_ID" {
			return "1"
		}
		return ""
	}}
	e.Run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
		return runCommand(ctx, "false")
	}
	if _, _, err := End(context.Background(), e); !errors.Is(err, ErrUnknown) {
		t.Fatalf("End = %v, want ErrUnknown", err)
	}
}
