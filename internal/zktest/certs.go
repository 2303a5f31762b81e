package zktest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/zkserver"
)

// CA is a certificate authority made for one test, for TLS servers and
// clients:
//
//	ca := zktest.NewCA(t)
//	srv := zktest.Standalone(t, zktest.WithTLS(ca.Issue(t, "zk", "", "127.0.0.1"), ca, zkserver.ClientAuthNeed))
//	alice := ca.Issue(t, "alice", "hpc") // identity x509:CN=alice,O=hpc
//	cfg := ca.ClientTLS(alice)           // or zkconn.LoadTLS(ca.CertFile, alice.CertFile, alice.KeyFile)
type CA struct {
	CertPEM  []byte
	CertFile string // CertPEM, in the test's temporary directory

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

// Cert is a certificate issued by a CA, with its private key.
type Cert struct {
	CertPEM []byte
	KeyPEM  []byte // PKCS#8, unencrypted
	// CertFile and KeyFile hold CertPEM and KeyPEM, in the test's
	// temporary directory.
	CertFile, KeyFile string
	TLS               tls.Certificate
}

// certValidity is long enough for any test and short enough that a
// leaked key is worthless.
const certValidity = 24 * time.Hour

// NewCA makes a CA whose files live until the end of the test.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, pkix.Name{CommonName: "zktest CA", Organization: []string{"zktest"}})
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("zktest: CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("zktest: CA certificate: %v", err)
	}
	ca := &CA{cert: cert, key: key, dir: t.TempDir()}
	ca.CertPEM = pemBlock("CERTIFICATE", der)
	ca.CertFile = writeFile(t, ca.dir, "ca-*.pem", ca.CertPEM)
	return ca
}

// Issue makes a certificate for both server and client use. Its subject
// is CN=commonName and, unless org is "", O=org: ZooKeeper's x509 identity
// for it reads CN=commonName,O=org. hosts, IP addresses or DNS names,
// become its subject alternative names, which clients check a server's
// against the host they dial.
func (ca *CA) Issue(t testing.TB, commonName, org string, hosts ...string) *Cert {
	t.Helper()
	name := pkix.Name{CommonName: commonName}
	if org != "" {
		name.Organization = []string{org}
	}
	tmpl := template(t, name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("zktest: certificate for %s: %v", commonName, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("zktest: key for %s: %v", commonName, err)
	}
	c := &Cert{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", pkcs8)}
	c.CertFile = writeFile(t, ca.dir, commonName+"-*.crt", c.CertPEM)
	c.KeyFile = writeFile(t, ca.dir, commonName+"-*.key", c.KeyPEM)
	if c.TLS, err = tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil {
		t.Fatalf("zktest: certificate for %s: %v", commonName, err)
	}
	return c
}

// Pool returns a pool holding the CA's certificate alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// ClientTLS returns a client configuration that trusts servers certified
// by ca and presents cert, which any CA may have issued; nil presents
// none.
func (ca *CA) ClientTLS(cert *Cert) *tls.Config {
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLS}
	}
	return cfg
}

// WithTLS gives the server a TLS client port (Server.SecureAddr) with the
// certificate server, accepting client certificates from clientCA as
// clientAuth says (zkserver.ClientAuthNeed, Want or None; "" is need).
// clientCA may be nil with zkserver.ClientAuthNone.
func WithTLS(server *Cert, clientCA *CA, clientAuth string) Option {
	return func(c *zkserver.Config) {
		c.TLS = &zkserver.TLSConfig{CertPEM: server.CertPEM, KeyPEM: server.KeyPEM, ClientAuth: clientAuth}
		if clientCA != nil {
			c.TLS.ClientCAPEM = clientCA.CertPEM
		}
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("zktest: key: %v", err)
	}
	return key
}

func template(t testing.TB, subject pkix.Name) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("zktest: serial number: %v", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		// Backdated, so that a clock a little behind ours, the JVM's
		// included, does not see a certificate from the future.
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.Add(certValidity),
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// writeFile writes data to a new file readable by us alone, as a key
// file must be.
func writeFile(t testing.TB, dir, pattern string, data []byte) string {
	t.Helper()
	f, err := os.CreateTemp(dir, pattern)
	if err == nil {
		_, err = f.Write(data)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		t.Fatalf("zktest: %v", err)
	}
	return f.Name()
}
