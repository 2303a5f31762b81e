package integration

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/zkdog/zkdog/internal/protocol"
)

// Issue 11: --max-failures 3 ends a job of 20 always-failing items after
// at most 3 plus the items in flight, with exit 1 and a report saying the
// budget was spent and which items were in flight. The finished job is
// then shown by zkdog status, and zkdog timers lists no timer.
func TestPolicyMasterFailureBudget(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	m := start(t, opts{}, "master", "--root", root, "--items", writeFile(t, "items", lines(20, "item-%02d")),
		"--timer", "30s", "--max-failures", "3")
	waitJob(t, conn, root)
	// The first item runs until the job is aborted, so that one item is
	// surely in flight when the budget is spent.
	slow := start(t, opts{}, "run", "--root", root, "--", "sh", "-c", `sleep 300; exit 1`)
	waitFor(t, "the slow worker's lease", func() bool {
		kids, _, _ := conn.Children(root + "/leases")
		return len(kids) == 1
	})
	var workers []*proc
	for range 3 {
		// Items that fail at once: a worker checks the budget before it
		// takes an item, so however fast they fail no more run than the
		// budget and those already in flight.
		workers = append(workers, start(t, opts{}, "run", "--root", root, "--loop", "--", "sh", "-c", "exit 1"))
	}
	expectExit(t, m, exitFailed)
	for _, w := range append(workers, slow) {
		if code := w.wait(); code == 0 {
			t.Errorf("worker %v exited 0 in a job of failing items", w.cmd.Args[1:])
		}
	}

	report := m.stderr.String()
	for _, want := range []string{"the failure budget was spent", "--max-failures allows 3",
		`in flight when the job was aborted: item 1 "item-00"`} {
		if !strings.Contains(report, want) {
			t.Errorf("the master's report does not say %q:\n%s", want, report)
		}
	}
	counts := regexp.MustCompile(`items 20: ok 0, failed (\d+), stalled 0, timeout 0, lost 0, unfinished (\d+)`).FindStringSubmatch(report)
	if counts == nil {
		t.Fatalf("the report has no counts line for 20 items:\n%s", report)
	}
	failed, _ := strconv.Atoi(counts[1])
	unfinished, _ := strconv.Atoi(counts[2])
	// 3 for the budget, and at most one more per worker (4) in flight.
	if failed < 3 || failed > 3+4 || failed+unfinished != 20 {
		t.Errorf("%d failed and %d unfinished; want 3 to 7 failed, the rest unfinished", failed, unfinished)
	}

	spec := expectSealed(t, conn, root, 1<<10)
	if spec.Summary.End != "budget" || spec.Summary.Exit != exitFailed || spec.Summary.Outcomes[protocol.Failed] != failed {
		t.Errorf("summary = %+v; want end budget, exit 1, %d failed", spec.Summary, failed)
	}

	status := run(t, opts{}, "status", "--root", root)
	expectExit(t, status, exitOK)
	for _, want := range []string{"(finished)", "it ended budget (exit 1)", "failed " + counts[1]} {
		if !strings.Contains(status.stdout.String(), want) {
			t.Errorf("zkdog status on the finished job does not say %q:\n%s", want, status.stdout.String())
		}
	}
	timers := run(t, opts{}, "timers", "--root", root)
	expectExit(t, timers, exitOK)
	if timers.stdout.Len() != 0 {
		t.Errorf("zkdog timers on a finished job printed:\n%s", timers.stdout.String())
	}
	expectExit(t, run(t, opts{}, "timers", "--root", root, "--expired"), exitOK)
}
