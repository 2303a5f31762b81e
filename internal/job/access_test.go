package job_test

import (
	"errors"
	"path"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zktest"
)

var (
	alice = job.Access{DigestUser: "alice", DigestSecret: "alice-secret-0123456789"}
	bob   = job.Access{DigestUser: "bob", DigestSecret: "bob-secret-0123456789ab"}
)

// accessJob is a handle with a's identity on its own session.
func accessJob(t *testing.T, addr, root string, a job.Access) *job.Job {
	t.Helper()
	j := job.New(zktest.Connect(t, addr), protocol.Layout{Root: root}, job.WithAccess(a))
	if err := j.Authenticate(); err != nil {
		t.Fatal(err)
	}
	return j
}

func TestAccess(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	items := [][]byte{[]byte("a"), []byte("b")}

	t.Run("private to its owner", func(t *testing.T) {
		const root = "/access/private/job"
		owner := accessJob(t, srv.Addr(), root, alice)
		if err := owner.Create(protocol.Job{TimerMillis: 60_000}, items); err != nil {
			t.Fatal(err)
		}
		if err := owner.CheckAccess(true); err != nil {
			t.Fatalf("the owner's access: %v", err)
		}
		// Every node, the parents made for it included, is the owner's.
		raw := zktest.Connect(t, srv.Addr())
		if err := raw.AddAuth("digest", []byte("alice:"+alice.DigestSecret)); err != nil {
			t.Fatal(err)
		}
		want := zk.DigestACL(zk.PermAll, "alice", alice.DigestSecret)
		for _, p := range []string{"/access", "/access/private", root, root + "/items/00000/c-0000000000", root + "/cursor"} {
			acl, _, err := raw.GetACL(p)
			if err != nil || len(acl) != 1 || acl[0] != want[0] {
				t.Errorf("ACL of %s = %v (%v), want only %v", p, acl, err, want)
			}
		}
		for name, a := range map[string]job.Access{"another identity": bob, "no identity": {}} {
			other := accessJob(t, srv.Addr(), root, a)
			if err := other.CheckAccess(false); !errors.Is(err, job.ErrNoAccess) {
				t.Errorf("%s reading: %v, want ErrNoAccess", name, err)
			}
		}
	})

	t.Run("public read", func(t *testing.T) {
		const root = "/access/public"
		pub := alice
		pub.PublicRead = true
		if err := accessJob(t, srv.Addr(), root, pub).Create(protocol.Job{TimerMillis: 60_000}, items); err != nil {
			t.Fatal(err)
		}
		reader := accessJob(t, srv.Addr(), root, job.Access{})
		if err := reader.CheckAccess(false); err != nil {
			t.Errorf("an anonymous reader of a public job: %v", err)
		}
		if _, _, err := reader.Timers(); err != nil || !reader.LocalClock() {
			t.Errorf("an anonymous reader's timers: %v, local clock %v; want ages by its own clock", err, reader.LocalClock())
		}
		if err := accessJob(t, srv.Addr(), root, bob).CheckAccess(true); !errors.Is(err, job.ErrNoAccess) {
			t.Errorf("bob working on alice's public job: %v, want ErrNoAccess", err)
		}
	})

	t.Run("anyone may change it", func(t *testing.T) {
		const root = "/world-open/job" // beside the private parents
		if err := job.New(zktest.Connect(t, srv.Addr()), protocol.Layout{Root: root}).Create(protocol.Job{TimerMillis: 60_000}, items); err != nil {
			t.Fatal(err)
		}
		if err := accessJob(t, srv.Addr(), root, alice).CheckAccess(true); !errors.Is(err, job.ErrUnsafe) {
			t.Errorf("a world-writable job: %v, want ErrUnsafe", err)
		}
	})

	t.Run("a restart keeps the identity", func(t *testing.T) {
		// The client re-sends its credentials on every new connection.
		const root = "/access/restart"
		owner := accessJob(t, srv.Addr(), root, alice)
		if err := owner.Create(protocol.Job{TimerMillis: 60_000}, items); err != nil {
			t.Fatal(err)
		}
		p, err := owner.CreateTimer(protocol.Timer{ID: "w"})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Restart(t.Context()); err != nil {
			t.Fatal(err)
		}
		spec, err := owner.Spec()
		for deadline := time.Now().Add(20 * time.Second); job.Transient(err) && time.Now().Before(deadline); spec, err = owner.Spec() {
			time.Sleep(job.RetryPause) // the client is reconnecting
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := owner.Take(t.Context(), spec, protocol.Lease{Timer: path.Base(p)})
		if err != nil {
			t.Fatalf("taking after the restart: %v", err)
		}
		if err := owner.Record(t.Context(), c, protocol.Result{Outcome: protocol.OK}); err != nil {
			t.Fatalf("recording after the restart: %v", err)
		}
	})
}
