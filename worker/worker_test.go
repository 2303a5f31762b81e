package worker_test

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zktest"
	"github.com/zkdog/zkdog/worker"
)

func TestArgs(t *testing.T) {
	for _, c := range []struct {
		name    string
		command []string
		item    string
		want    []string
	}{
		{"one placeholder", []string{"./work", "{}"}, "in/a.dat", []string{"./work", "in/a.dat"}},
		{"several arguments", []string{"cp", "{}", "out/{}"}, "a.dat", []string{"cp", "a.dat", "out/a.dat"}},
		{"inside a larger argument", []string{"./work", "--input={}.gz", "--log", "logs/{}-{}.txt"}, "x",
			[]string{"./work", "--input=x.gz", "--log", "logs/x-x.txt"}},
		{"no placeholder", []string{"./work", "--all"}, "a", []string{"./work", "--all"}},
		{"command alone", []string{"./work"}, "a", []string{"./work"}},
		{"command name untouched", []string{"./{}", "{}"}, "a", []string{"./{}", "a"}},
		{"empty item", []string{"./work", "-i", "{}"}, "", []string{"./work", "-i", ""}},
		{"item with spaces stays one argument", []string{"./work", "{}"}, "a b  c", []string{"./work", "a b  c"}},
		{"item holding a placeholder is not expanded again", []string{"./work", "{}"}, "a{}b", []string{"./work", "a{}b"}},
		{"item with shell characters is not interpreted", []string{"./work", "{}"}, "$(rm -rf ~); `x` *", []string{"./work", "$(rm -rf ~); `x` *"}},
		{"braces that are not a placeholder", []string{"awk", "{print $1}", "{ }", "{}"}, "f", []string{"awk", "{print $1}", "{ }", "f"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			orig := slices.Clone(c.command)
			got := worker.Args(c.command, c.item)
			if !slices.Equal(got, c.want) {
				t.Errorf("Args(%q, %q) = %q, want %q", c.command, c.item, got, c.want)
			}
			if !slices.Equal(c.command, orig) {
				t.Errorf("Args changed its input: %q, was %q", c.command, orig)
			}
		})
	}
}

func TestConsume(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))

	t.Run("takes every item in order, then empty", func(t *testing.T) {
		master := zktest.Connect(t, srv.Addr())
		l := protocol.Layout{Root: "/worker/consume"}
		mj := job.New(master, l)
		if err := mj.Create(protocol.Job{TimerMillis: 60_000}, [][]byte{[]byte("a"), []byte("b"), []byte("c")}); err != nil {
			t.Fatal(err)
		}
		wj := job.New(zktest.Connect(t, srv.Addr()), l)
		for i, want := range []string{"a", "b", "c"} {
			c, err := worker.Consume(wj, "script-1")
			if err != nil {
				t.Fatalf("Consume #%d: %v", i+1, err)
			}
			if c.Index != i || string(c.Data) != want || c.Attempt != 1 {
				t.Errorf("Consume #%d = item %d %q attempt %d, want item %d %q attempt 1", i+1, c.Index, c.Data, c.Attempt, i, want)
			}
		}
		if _, err := worker.Consume(wj, "script-1"); !errors.Is(err, job.ErrEmpty) {
			t.Errorf("Consume on an empty queue = %v, want job.ErrEmpty", err)
		}

		// Each item is recorded done, ok, in the consumer's name, and no
		// lease is left: the master will not hand any out again.
		spec, _, err := mj.Spec()
		if err != nil {
			t.Fatal(err)
		}
		counts, err := mj.Counts(spec)
		if err != nil {
			t.Fatal(err)
		}
		if counts.Done != 3 || counts.Failed != 0 || counts.Leased != 0 || counts.Queued() != 0 {
			t.Errorf("counts after consuming everything = %+v, want 3 done, none leased or queued", counts)
		}
		outcomes, err := mj.Outcomes(spec)
		if err != nil {
			t.Fatal(err)
		}
		if want := []job.Outcome{{Index: 0, Outcome: protocol.OK}, {Index: 1, Outcome: protocol.OK}, {Index: 2, Outcome: protocol.OK}}; !slices.Equal(outcomes, want) {
			t.Errorf("outcomes = %+v, want %+v", outcomes, want)
		}
		host, _ := os.Hostname()
		r, item, err := mj.ResultOf(job.Outcome{Index: 1, Outcome: protocol.OK})
		if err != nil {
			t.Fatal(err)
		}
		if string(item) != "b" || r.ID != "script-1" || r.Host != host || r.Attempt != 1 || r.Exit != 0 || r.Reason == "" {
			t.Errorf("result of item 1 = %+v (item %q); want ok by script-1 on %s, attempt 1, with a reason", r, item, host)
		}
	})

	t.Run("no job", func(t *testing.T) {
		wj := job.New(zktest.Connect(t, srv.Addr()), protocol.Layout{Root: "/worker/none"})
		if _, err := worker.Consume(wj, "script-1"); !errors.Is(err, job.ErrNoJob) {
			t.Errorf("Consume without a job = %v, want job.ErrNoJob", err)
		}
	})
}
