package integration

import (
	"strings"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/internal/zktest"
)

// TestTLSJobOwnedByCertificate runs a whole job over TLS with a client
// certificate as the only identity (no credentials file): the job belongs
// to x509:CN=alice,O=hpc, a worker with bob's certificate is refused
// before it takes anything, and alice's worker and master finish it.
func TestTLSJobOwnedByCertificate(t *testing.T) {
	ca := zktest.NewCA(t)
	srv := zktest.Standalone(t, zktest.WithTLS(ca.Issue(t, "zk", "", "127.0.0.1"), ca, zkserver.ClientAuthNeed))
	alice, bob := ca.Issue(t, "alice", "hpc"), ca.Issue(t, "bob", "hpc")
	as := func(c *zktest.Cert) opts {
		// A home without credentials: the certificate is the identity.
		return opts{zk: srv.SecureAddr(), env: []string{"HOME=" + t.TempDir(),
			"ZKDOG_TLS_CA=" + ca.CertFile, "ZKDOG_TLS_CERT=" + c.CertFile, "ZKDOG_TLS_KEY=" + c.KeyFile}}
	}
	root := rootFor(t)
	items := writeFile(t, "items", lines(3, "tls-%d"))
	expectExit(t, run(t, as(alice), "init", "--root", root, "--items", items, "--timer", "30s"), exitOK)

	// The plain port, authenticated as the tests' digest user, may not
	// read alice's job: only her certificate may.
	conn := connect(t, srv.Addr())
	if _, _, err := conn.Get(root); err != zk.ErrNoAuth {
		t.Fatalf("reading alice's job as another identity: %v, want zk.ErrNoAuth", err)
	}

	refused := run(t, as(bob), "run", "--root", root, "--", "true")
	expectExit(t, refused, exitRunFailed)
	if msg := refused.stderr.String(); !strings.Contains(msg, root) || !strings.Contains(msg, "x509:CN=bob,O=hpc") {
		t.Errorf("bob's refusal does not name the job and his identity:\n%s", msg)
	}

	w := start(t, as(alice), "run", "--root", root, "--loop", "--", "true")
	m := run(t, as(alice), "wait", "--root", root)
	expectExit(t, m, exitOK)
	expectExit(t, w, exitOK)
	if !strings.Contains(m.stderr.String(), "all 3 items done") {
		t.Errorf("master's report:\n%s", m.stderr.String())
	}
}
