package zkserver_test

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/internal/zktest"
)

func TestEnsembleFailover(t *testing.T) {
	requireInstalled(t)
	ctx := t.Context()
	begin := time.Now()
	e, err := zkserver.StartEnsemble(ctx, 3, zkserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ensemble %s serving %v after StartEnsemble", e.ConnString(), time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Error(err)
		}
	})

	if got := strings.Split(e.ConnString(), ","); !slices.Equal(got, e.Addrs()) || len(got) != 3 {
		t.Fatalf("ConnString %q does not split into Addrs %q", e.ConnString(), e.Addrs())
	}
	if err := e.Kill(3); err == nil {
		t.Error("Kill(3) of a 3-member ensemble succeeded")
	}
	leader, err := e.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	members := e.Members()
	for i, m := range members {
		want := zkserver.ModeFollower
		if i == leader {
			want = zkserver.ModeLeader
		}
		if mode, err := m.Mode(ctx); err != nil || mode != want {
			t.Errorf("member %d: Mode() = %q, %v; want %q", i, mode, err, want)
		}
	}

	// Write through a follower, so the write must go through the leader.
	writer := (leader + 1) % 3
	conn := zktest.Connect(t, members[writer].Addr())
	if _, err := conn.Create("/job", []byte("before failover"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	oldPid := members[leader].Pid()
	begin = time.Now()
	if err := e.Kill(leader); err != nil {
		t.Fatal(err)
	}
	if jvmAlive(oldPid) {
		t.Fatalf("leader %d alive after Kill", oldPid)
	}
	newLeader, err := e.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("new leader %d serving %v after the old one (%d) was killed", newLeader, time.Since(begin).Round(time.Millisecond), leader)
	if newLeader == leader {
		t.Fatalf("WaitLeader returned the killed member %d", leader)
	}
	if _, err := members[leader].Mode(ctx); !errors.Is(err, zkserver.ErrNotRunning) {
		t.Errorf("Mode of the killed member: %v, want ErrNotRunning", err)
	}

	// Read through the survivor that did not take the write.
	reader := 3 - leader - writer
	conn = zktest.Connect(t, members[reader].Addr())
	if _, err := conn.Sync("/job"); err != nil {
		t.Fatal(err)
	}
	if data, _, err := conn.Get("/job"); err != nil || string(data) != "before failover" {
		t.Fatalf("Get from survivor %d = %q, %v", reader, data, err)
	}
	if _, err := conn.Set("/job", []byte("after failover"), -1); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	begin = time.Now()
	if err := e.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed member %d rejoined %v after Restart", leader, time.Since(begin).Round(time.Millisecond))
	if mode, err := members[leader].Mode(ctx); err != nil || mode != zkserver.ModeFollower {
		t.Fatalf("restarted member: Mode() = %q, %v; want %q", mode, err, zkserver.ModeFollower)
	}
	if got, err := e.WaitLeader(ctx); err != nil || got != newLeader {
		t.Fatalf("WaitLeader after rejoin = %d, %v; want %d", got, err, newLeader)
	}
	conn = zktest.Connect(t, members[leader].Addr())
	if _, err := conn.Sync("/job"); err != nil {
		t.Fatal(err)
	}
	if data, _, err := conn.Get("/job"); err != nil || string(data) != "after failover" {
		t.Fatalf("Get from rejoined member = %q, %v", data, err)
	}
	conn.Close()

	dir := e.Dir()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	for i, m := range members {
		if m.Pid() != 0 {
			t.Errorf("member %d: Pid() = %d after Stop", i, m.Pid())
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s after Stop: %v", dir, err)
	}
}

func TestEnsembleOfOne(t *testing.T) {
	requireInstalled(t)
	e, err := zkserver.StartEnsemble(t.Context(), 1, zkserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	// Quorum mode, not standalone: the same code paths as larger ensembles.
	if mode, err := e.Member(0).Mode(t.Context()); err != nil || mode != zkserver.ModeLeader {
		t.Fatalf("Mode() = %q, %v; want %q", mode, err, zkserver.ModeLeader)
	}
}
