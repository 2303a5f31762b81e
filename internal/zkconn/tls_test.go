package zkconn_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/internal/zktest"
)

// refusalWait bounds a Dial that must not get a session. A session over
// TLS comes within a few hundred milliseconds here, so this is ample for
// a refusal not to be a slow success.
const refusalWait = 2 * time.Second

// aliceID is the x509 identity ZooKeeper 3.8 gives the subject
// CN=alice, O=hpc: RFC 2253 form, the most specific name first, the
// reverse of the order in the certificate.
const aliceID = "CN=alice,O=hpc"

// tlsServer starts a server whose secure port needs a client certificate
// from ca.
func tlsServer(t *testing.T, ca *zktest.CA) *zkserver.Server {
	t.Helper()
	cert := ca.Issue(t, "zookeeper", "", "127.0.0.1", "localhost")
	return zktest.Standalone(t, zktest.WithTLS(cert, ca, zkserver.ClientAuthNeed))
}

// dialRefused dials and expects no session by the end of refusalWait; it
// returns the error.
func dialRefused(t *testing.T, addr string, opts ...zkconn.Option) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), refusalWait)
	defer cancel()
	s, err := zkconn.Dial(ctx, addr, 10*time.Second, nil, opts...)
	if err == nil {
		s.Close()
		t.Fatalf("Dial(%s) got session %#x, want no session", addr, s.ID())
	}
	if !errors.Is(err, zkconn.ErrUnreachable) {
		t.Fatalf("Dial(%s) = %v, want ErrUnreachable", addr, err)
	}
	t.Logf("refused: %v", err)
	return err
}

func TestTLS(t *testing.T) {
	t.Parallel()
	ca := zktest.NewCA(t)
	srv := tlsServer(t, ca)
	alice, bob := ca.Issue(t, "alice", "hpc"), ca.Issue(t, "bob", "hpc")

	// The secure port speaks TLS only: a plain client's connect request
	// is not a ClientHello.
	t.Run("plain client", func(t *testing.T) {
		t.Parallel()
		dialRefused(t, srv.SecureAddr())
	})
	// ssl.clientAuth=need: the handshake fails without a certificate.
	t.Run("no client certificate", func(t *testing.T) {
		t.Parallel()
		err := dialRefused(t, srv.SecureAddr(), zkconn.WithTLS(ca.ClientTLS(nil)))
		wantIn(t, err, "TLS handshake")
	})
	// The same subject from another CA is someone else, and refused.
	t.Run("certificate from another CA", func(t *testing.T) {
		t.Parallel()
		forged := zktest.NewCA(t).Issue(t, "alice", "hpc")
		err := dialRefused(t, srv.SecureAddr(), zkconn.WithTLS(ca.ClientTLS(forged)))
		wantIn(t, err, "TLS handshake")
	})
	t.Run("x509 ACL", func(t *testing.T) {
		t.Parallel()
		a := dial(t, srv.SecureAddr(), 0, nil, zkconn.WithTLS(ca.ClientTLS(alice)))
		b := dial(t, srv.SecureAddr(), 0, nil, zkconn.WithTLS(ca.ClientTLS(bob)))
		checkX509ACL(t, a.Conn(), b.Conn())
	})
	t.Run("LoadTLS files", func(t *testing.T) {
		t.Parallel()
		cfg, err := zkconn.LoadTLS(ca.CertFile, alice.CertFile, alice.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		s := dial(t, srv.SecureAddr(), 0, nil, zkconn.WithTLS(cfg))
		if _, err := s.Conn().Create("/loadtls", []byte("x"), 0, x509ACL(aliceID)); err != nil {
			t.Fatal(err)
		}
	})
}

func x509ACL(id string) []zk.ACL { return []zk.ACL{{Scheme: "x509", ID: id, Perms: zk.PermAll}} }

// checkX509ACL: alice's certificate is the identity aliceID and bob's is
// not; the subject written in certificate order is not alice either.
func checkX509ACL(t *testing.T, alice, bob *zk.Conn) {
	t.Helper()
	const node, reversed = "/alice", "/alice-reversed"
	if _, err := alice.Create(node, []byte("hers"), 0, x509ACL(aliceID)); err != nil {
		t.Fatalf("alice creates %s with ACL x509:%s: %v", node, aliceID, err)
	}
	if data, _, err := alice.Get(node); err != nil || string(data) != "hers" {
		t.Errorf("alice reads %s: %q, %v; want %q", node, data, err, "hers")
	}
	if _, _, err := bob.Get(node); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("bob reads %s: %v, want ErrNoAuth", node, err)
	}
	if _, err := bob.Set(node, []byte("his"), -1); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("bob writes %s: %v, want ErrNoAuth", node, err)
	}
	if _, err := alice.Create(reversed, nil, 0, x509ACL("O=hpc,CN=alice")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := alice.Get(reversed); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("alice reads a node for x509:O=hpc,CN=alice: %v, want ErrNoAuth (the identity is %s)", err, aliceID)
	}
}

// TestTLSRestart: the server restarts mid-session. The client reconnects
// through a new TLS handshake, resumes its session, and the server knows
// it as alice again from that handshake alone.
func TestTLSRestart(t *testing.T) {
	t.Parallel()
	ca := zktest.NewCA(t)
	srv := tlsServer(t, ca)
	cfg := ca.ClientTLS(ca.Issue(t, "alice", "hpc"))
	var handshakes atomic.Int32
	cfg.VerifyConnection = func(tls.ConnectionState) error {
		handshakes.Add(1)
		return nil
	}
	// Long enough to outlast a restart on a loaded machine.
	s := dial(t, srv.SecureAddr(), 30*time.Second, nil, zkconn.WithTLS(cfg))
	id := s.ID()
	node, err := s.Conn().Create("/mine", []byte("hers"), zk.FlagEphemeral, x509ACL(aliceID))
	if err != nil {
		t.Fatal(err)
	}
	before := handshakes.Load()

	begin := time.Now()
	if err := restart(t, srv); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	// The old connection died with the old JVM, before Restart returned.
	eventually(t, "reconnected over TLS", func() bool {
		return handshakes.Load() > before && s.Conn().State() == zk.StateHasSession
	})
	t.Logf("restart took %v, reconnection %v more", restarted.Sub(begin).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	if got := s.Conn().SessionID(); got != id {
		t.Fatalf("after the restart the client has session %#x, want the same %#x", got, id)
	}
	data, st, err := s.Conn().Get(node)
	if err != nil || string(data) != "hers" {
		t.Fatalf("alice reads %s after the restart: %q, %v; want %q", node, data, err, "hers")
	}
	if st.EphemeralOwner != id {
		t.Errorf("%s is owned by %#x, want %#x", node, st.EphemeralOwner, id)
	}
	select {
	case <-s.Lost():
		t.Errorf("Lost closed: %v", s.Err())
	default:
	}
}

// TestTLSServerName: the client checks the server's certificate against
// the host it was told to dial, a name included, unless told the name to
// expect. The certificate here is for localhost, not for 127.0.0.1.
func TestTLSServerName(t *testing.T) {
	t.Parallel()
	ca := zktest.NewCA(t)
	srv := zktest.Standalone(t, zktest.WithTLS(ca.Issue(t, "zookeeper", "", "localhost"), ca, zkserver.ClientAuthNeed))
	alice := ca.Issue(t, "alice", "hpc")
	_, port, err := net.SplitHostPort(srv.SecureAddr())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("address for another name", func(t *testing.T) {
		t.Parallel()
		err := dialRefused(t, srv.SecureAddr(), zkconn.WithTLS(ca.ClientTLS(alice)))
		wantIn(t, err, "failed to verify certificate")
	})
	// The client's own host provider would hand the dialer 127.0.0.1.
	t.Run("name dialled", func(t *testing.T) {
		t.Parallel()
		dial(t, net.JoinHostPort("localhost", port), 0, nil, zkconn.WithTLS(ca.ClientTLS(alice)))
	})
	t.Run("ServerName", func(t *testing.T) {
		t.Parallel()
		cfg := ca.ClientTLS(alice)
		cfg.ServerName = "localhost"
		dial(t, srv.SecureAddr(), 0, nil, zkconn.WithTLS(cfg))
	})
	t.Run("unresolvable name", func(t *testing.T) {
		t.Parallel()
		_, err := zkconn.Dial(t.Context(), "zk.invalid:"+port, 0, nil, zkconn.WithTLS(ca.ClientTLS(alice)))
		if !errors.Is(err, zkconn.ErrBadServers) {
			t.Errorf("Dial to an unresolvable name = %v, want ErrBadServers at once", err)
		}
	})
}

func wantIn(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %q should say %q", err, want)
	}
}

func TestLoadTLSRefuses(t *testing.T) {
	ca := zktest.NewCA(t)
	alice := ca.Issue(t, "alice", "hpc")
	other := ca.Issue(t, "other", "hpc")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing.pem")
	junk := write("junk.pem", []byte("not PEM\n"))
	encrypted := write("encrypted.key", []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"))
	for _, c := range []struct {
		name               string
		ca, cert, key      string
		wantNamed, wantWhy string
	}{
		{"no CA", "", alice.CertFile, alice.KeyFile, "", "no CA file"},
		{"CA missing", missing, "", "", missing, "no such file"},
		{"CA not PEM", junk, "", "", junk, "no PEM certificate"},
		{"key without certificate", ca.CertFile, "", alice.KeyFile, alice.KeyFile, "without its certificate"},
		{"certificate without key", ca.CertFile, alice.CertFile, "", alice.CertFile, "without its key"},
		{"certificate missing", ca.CertFile, missing, alice.KeyFile, missing, "no such file"},
		{"certificate not PEM", ca.CertFile, junk, alice.KeyFile, junk, "no PEM certificate"},
		{"key not PEM", ca.CertFile, alice.CertFile, junk, junk, "no PEM private key"},
		{"key encrypted", ca.CertFile, alice.CertFile, encrypted, encrypted, "encrypted"},
		{"key of another certificate", ca.CertFile, alice.CertFile, other.KeyFile, other.KeyFile, "does not match"},
	} {
		_, err := zkconn.LoadTLS(c.ca, c.cert, c.key)
		if !errors.Is(err, zkconn.ErrBadTLS) {
			t.Errorf("%s: LoadTLS = %v, want ErrBadTLS", c.name, err)
			continue
		}
		for _, want := range slices.DeleteFunc([]string{c.wantNamed, c.wantWhy}, func(s string) bool { return s == "" }) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q should say %q", c.name, err, want)
			}
		}
	}
}

func TestLoadTLS(t *testing.T) {
	ca := zktest.NewCA(t)
	alice := ca.Issue(t, "alice", "hpc")
	cfg, err := zkconn.LoadTLS(ca.CertFile, "", "")
	if err != nil || cfg.RootCAs == nil || len(cfg.Certificates) != 0 {
		t.Fatalf("LoadTLS(CA only) = %+v, %v; want roots and no certificate", cfg, err)
	}
	cfg, err = zkconn.LoadTLS(ca.CertFile, alice.CertFile, alice.KeyFile)
	if err != nil || len(cfg.Certificates) != 1 || cfg.Certificates[0].Leaf.Subject.CommonName != "alice" {
		t.Fatalf("LoadTLS(CA, alice) = %+v, %v; want alice's certificate", cfg, err)
	}
}

// BenchmarkTLS compares plain and TLS clients of one server (the Netty
// factory serves both ports): Dial until the session is granted, a full
// handshake each time as nothing caches TLS sessions, and setData. Each
// reports its median besides the mean, as one slow sample (a GC, the
// JVM compiling) moves the mean a lot.
func BenchmarkTLS(b *testing.B) {
	ca := zktest.NewCA(b)
	srv := zktest.Standalone(b, zktest.WithTLS(ca.Issue(b, "zookeeper", "", "127.0.0.1"), ca, zkserver.ClientAuthNeed))
	cfg := ca.ClientTLS(ca.Issue(b, "alice", "hpc"))
	for _, c := range []struct {
		name, addr string
		opts       []zkconn.Option
	}{
		{"plain", srv.Addr(), nil},
		{"tls", srv.SecureAddr(), []zkconn.Option{zkconn.WithTLS(cfg)}},
	} {
		b.Run("dial/"+c.name, func(b *testing.B) { benchDial(b, c.addr, c.opts) })
		b.Run("setData/"+c.name, func(b *testing.B) { benchSetData(b, c.addr, c.opts) })
	}
}

func benchDial(b *testing.B, addr string, opts []zkconn.Option) {
	var took []time.Duration
	for b.Loop() {
		ctx, cancel := context.WithTimeout(b.Context(), hangGuard)
		start := time.Now()
		s, err := zkconn.Dial(ctx, addr, 0, nil, opts...)
		took = append(took, time.Since(start))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	reportMedian(b, took)
}

func benchSetData(b *testing.B, addr string, opts []zkconn.Option) {
	ctx, cancel := context.WithTimeout(b.Context(), hangGuard)
	defer cancel()
	s, err := zkconn.Dial(ctx, addr, 0, nil, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	node, err := s.Conn().Create("/bench", nil, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 100)
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		_, err := s.Conn().Set(node, data, -1)
		took = append(took, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	reportMedian(b, took)
}

func reportMedian(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds())/1e3, "median-µs")
}
