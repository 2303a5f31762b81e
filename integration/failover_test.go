package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/zktest"
)

// A job rides out ZooKeeper failures: the leader of a 3-node ensemble is
// SIGKILLed a quarter of the way through 200 items over 8 looping workers,
// comes back at half way, and a follower is restarted at three quarters.
// Every item's command runs exactly once and the master exits 0.
func TestEnsembleFailover(t *testing.T) {
	e := zktest.Ensemble(t, 3)
	o := opts{zk: e.ConnString()}
	root := rootFor(t)
	side := t.TempDir()
	const items = 200
	conn := connect(t, e.ConnString())
	// Kept: the checkpoints below read the result counter, which a
	// master that finishes first would remove with the job.
	m := start(t, o, "master", "--root", root, "--items", writeFile(t, "items", lines(items, "item-%03d")),
		"--timer", "30s", "--json", "--keep")
	waitJob(t, conn, root)
	var workers []*proc
	for range 8 {
		workers = append(workers, start(t, o, "run", "--root", root, "--loop", "--until-done", "--",
			"sh", "-c", `echo $$ >> "$1/$ZKDOG_ITEM_INDEX"; sleep 0.1`, "sh", side))
	}

	ctx := t.Context()
	waitDone(t, conn, root, items/4)
	leader, err := e.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killing the leader, member %d", leader)
	if err := e.Kill(leader); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, conn, root, items/2)
	t.Logf("restarting member %d", leader)
	if err := e.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}
	waitDone(t, conn, root, items*3/4)
	follower := (leader + 1) % 3
	if now, err := e.Leader(ctx); err == nil && now == follower {
		follower = (leader + 2) % 3
	}
	t.Logf("killing and restarting follower %d", follower)
	if err := e.Kill(follower); err != nil {
		t.Fatal(err)
	}
	if err := e.Restart(ctx, follower); err != nil {
		t.Fatal(err)
	}

	for _, w := range workers {
		expectExit(t, w, 0)
	}
	expectExit(t, m, exitOK)
	run(t, o, "clear", "--root", root)
	r := readReport(t, m)
	if r.OK != items || r.Failed+r.Lost+r.Unfinished != 0 {
		t.Fatalf("report = %+v, want %d items ok", r, items)
	}
	for i := range items {
		b, err := os.ReadFile(filepath.Join(side, fmt.Sprint(i)))
		if n := strings.Count(string(b), "\n"); err != nil || n != 1 {
			t.Errorf("item %d ran %d times (%v)", i, n, err)
		}
	}
}

// waitDone waits until the job has at least n results, by watching the
// done counter.
func waitDone(t *testing.T, conn *zk.Conn, root string, n int) {
	t.Helper()
	waitDoneUpTo(t, waitLimit, conn, root, n)
}

func waitDoneUpTo(t *testing.T, limit time.Duration, conn *zk.Conn, root string, n int) {
	t.Helper()
	waitForUpTo(t, limit, fmt.Sprintf("%d results", n), func() bool {
		_, st, err := conn.Exists(root + "/done")
		return err == nil && st != nil && int(st.Version) >= n
	})
}
