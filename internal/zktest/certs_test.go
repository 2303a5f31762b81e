package zktest_test

import (
	"bytes"
	"crypto/x509"
	"os"
	"testing"

	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/internal/zktest"
)

// TestIssue: certificates verify against their CA alone, for the names
// given, and their subject reads as ZooKeeper's x509 identity will.
func TestIssue(t *testing.T) {
	ca := zktest.NewCA(t)
	srv := ca.Issue(t, "zookeeper", "", "127.0.0.1", "localhost")
	alice := ca.Issue(t, "alice", "hpc")

	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, err := srv.TLS.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if _, err := srv.TLS.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "zk.example.org"}); err == nil {
		t.Error("the server certificate verifies for a name it was not issued for")
	}
	client := x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := alice.TLS.Leaf.Verify(client); err != nil {
		t.Errorf("alice's certificate as a client's: %v", err)
	}
	if _, err := alice.TLS.Leaf.Verify(x509.VerifyOptions{Roots: zktest.NewCA(t).Pool()}); err == nil {
		t.Error("alice's certificate verifies against another CA")
	}
	// Go prints names in RFC 2253 order, as Java's X500Principal does.
	if got := alice.TLS.Leaf.Subject.String(); got != "CN=alice,O=hpc" {
		t.Errorf("alice's subject = %q, want CN=alice,O=hpc", got)
	}
	if got := srv.TLS.Leaf.Subject.String(); got != "CN=zookeeper" {
		t.Errorf("a subject without an organisation = %q, want CN=zookeeper", got)
	}
	checkFile(t, ca.CertFile, ca.CertPEM)
	checkFile(t, alice.CertFile, alice.CertPEM)
	checkFile(t, alice.KeyFile, alice.KeyPEM)
}

func checkFile(t *testing.T, path string, want []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(data, want) {
		t.Errorf("%s: %v; want the PEM it names", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
}

func TestWithTLS(t *testing.T) {
	ca := zktest.NewCA(t)
	srv := ca.Issue(t, "zookeeper", "", "127.0.0.1")
	var cfg zkserver.Config
	zktest.WithTLS(srv, ca, zkserver.ClientAuthWant)(&cfg)
	if cfg.TLS == nil || !bytes.Equal(cfg.TLS.CertPEM, srv.CertPEM) || !bytes.Equal(cfg.TLS.KeyPEM, srv.KeyPEM) ||
		!bytes.Equal(cfg.TLS.ClientCAPEM, ca.CertPEM) || cfg.TLS.ClientAuth != zkserver.ClientAuthWant {
		t.Errorf("WithTLS gave %+v", cfg.TLS)
	}
	zktest.WithTLS(srv, nil, zkserver.ClientAuthNone)(&cfg)
	if cfg.TLS.ClientCAPEM != nil {
		t.Errorf("WithTLS without a CA gave client CAs %q", cfg.TLS.ClientCAPEM)
	}
}
