package zkserver_test

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/internal/zktest"
)

// handshake completes a TLS handshake with addr. The servers offer
// TLSv1.2 only, where the client's handshake ends after the server's
// Finished: success means the server accepted the client's certificate,
// or its lack.
func handshake(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	state := c.(*tls.Conn).ConnectionState()
	c.Close()
	if state.Version != tls.VersionTLS12 {
		t.Errorf("%s negotiated TLS version %#x, want TLSv1.2, ZooKeeper 3.8's default", addr, state.Version)
	}
	return nil
}

func tlsConfig(ca *zktest.CA, server *zktest.Cert, clientAuth string) *zkserver.TLSConfig {
	return &zkserver.TLSConfig{CertPEM: server.CertPEM, KeyPEM: server.KeyPEM, ClientCAPEM: ca.CertPEM, ClientAuth: clientAuth}
}

// TestTLS: a server with TLS keeps its plain port for srvr, serves TLS on
// its secure port with the certificate given, needs a client certificate
// from the CA, and does so again after a restart.
func TestTLS(t *testing.T) {
	t.Parallel()
	ca := zktest.NewCA(t)
	s := start(t, zkserver.Config{TLS: tlsConfig(ca, ca.Issue(t, "zookeeper", "", "127.0.0.1"), "")})
	if s.SecureAddr() == "" || s.SecureAddr() == s.Addr() {
		t.Fatalf("SecureAddr() = %q with Addr() %q, want a port of its own", s.SecureAddr(), s.Addr())
	}
	if mode, err := s.Mode(t.Context()); err != nil || mode != zkserver.ModeStandalone {
		t.Fatalf("Mode() = %q, %v; want %q", mode, err, zkserver.ModeStandalone)
	}
	checkZooCfg(t, s.Dir())
	alice := ca.ClientTLS(ca.Issue(t, "alice", "hpc"))
	checkNeedsCert(t, s.SecureAddr(), ca, alice)

	if err := s.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Restart returns once the secure port serves too, without retries.
	if err := handshake(t, s.SecureAddr(), alice); err != nil {
		t.Errorf("handshake with alice's certificate after Restart: %v", err)
	}
}

func checkZooCfg(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "zoo.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
		"ssl.keyStore.type=PEM",
		"ssl.trustStore.type=PEM",
		"ssl.clientAuth=need",
		"authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider",
	} {
		if !strings.Contains(string(data), want+"\n") {
			t.Errorf("zoo.cfg lacks %s:\n%s", want, data)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "tls-server.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the key store: %v, %v; want mode 0600", fi.Mode(), err)
	}
}

func checkNeedsCert(t *testing.T, addr string, ca *zktest.CA, alice *tls.Config) {
	t.Helper()
	if err := handshake(t, addr, alice); err != nil {
		t.Errorf("handshake with alice's certificate: %v", err)
	}
	if err := handshake(t, addr, ca.ClientTLS(nil)); err == nil {
		t.Error("handshake without a client certificate succeeded; ssl.clientAuth=need should refuse it")
	}
	forged := ca.ClientTLS(zktest.NewCA(t).Issue(t, "alice", "hpc"))
	if err := handshake(t, addr, forged); err == nil {
		t.Error("handshake with a certificate from another CA succeeded")
	}
	if err := handshake(t, addr, zktest.NewCA(t).ClientTLS(nil)); err == nil {
		t.Error("a client that trusts another CA accepted the server's certificate")
	}
}

// TestTLSEnsemble: every member has a secure port of its own (two
// members show that at the least cost); with ClientAuthWant a client
// without a certificate is let in.
func TestTLSEnsemble(t *testing.T) {
	requireInstalled(t)
	t.Parallel()
	ca := zktest.NewCA(t)
	cfg := zkserver.Config{Dir: t.TempDir(), TLS: tlsConfig(ca, ca.Issue(t, "zookeeper", "", "127.0.0.1"), zkserver.ClientAuthWant)}
	e, err := zkserver.StartEnsemble(t.Context(), 2, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Error(err)
		}
	})
	addrs := e.SecureAddrs()
	if len(addrs) != 2 || strings.Count(e.SecureConnString(), ",") != 1 {
		t.Fatalf("SecureAddrs() = %q, SecureConnString() = %q; want 2 addresses", addrs, e.SecureConnString())
	}
	seen := map[string]bool{}
	for _, a := range append(addrs, e.Addrs()...) {
		if seen[a] {
			t.Errorf("address %s is used twice in %q and %q", a, addrs, e.Addrs())
		}
		seen[a] = true
	}
	for _, a := range addrs {
		if err := handshake(t, a, ca.ClientTLS(nil)); err != nil {
			t.Errorf("%s: handshake without a client certificate under ClientAuthWant: %v", a, err)
		}
	}
}

// TestTLSConfigRefused: a TLS configuration ZooKeeper could not use is
// refused before a JVM starts, saying what is wrong.
func TestTLSConfigRefused(t *testing.T) {
	ca := zktest.NewCA(t)
	srv, other := ca.Issue(t, "zookeeper", "", "127.0.0.1"), ca.Issue(t, "other", "")
	for _, c := range []struct {
		name string
		tls  zkserver.TLSConfig
		want string
	}{
		{"client auth", zkserver.TLSConfig{CertPEM: srv.CertPEM, KeyPEM: srv.KeyPEM, ClientCAPEM: ca.CertPEM, ClientAuth: "required"}, "ClientAuth"},
		{"no key", zkserver.TLSConfig{CertPEM: srv.CertPEM, ClientCAPEM: ca.CertPEM}, "KeyPEM"},
		{"key of another certificate", zkserver.TLSConfig{CertPEM: srv.CertPEM, KeyPEM: other.KeyPEM, ClientCAPEM: ca.CertPEM}, "does not match"},
		{"no client CA", zkserver.TLSConfig{CertPEM: srv.CertPEM, KeyPEM: srv.KeyPEM}, "ClientCAPEM"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		s, err := zkserver.Start(ctx, zkserver.Config{Dir: t.TempDir(), TLS: &c.tls})
		cancel()
		if err == nil {
			s.Stop()
			t.Errorf("%s: Start succeeded", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Start = %v; want a configuration error about %s", c.name, err, c.want)
		}
	}
}
