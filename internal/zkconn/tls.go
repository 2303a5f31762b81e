package zkconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrBadTLS: the TLS files or settings cannot be used.
var ErrBadTLS = errors.New("bad TLS configuration")

// WithTLS makes every connection Dial's client makes TLS: the first one
// and each reconnection, since the client reconnects through the same
// dialer. The session tracker still sees the plain ZooKeeper frames, as
// it wraps the TLS connection.
//
// The server's certificate is verified against cfg.RootCAs (the system's
// roots if nil) and, unless cfg.ServerName is set, against the host part
// of the server's address as given to Dial (a name stays a name: Dial
// resolves it at each connection), so that each server of an ensemble is
// checked under its own name. cfg.Certificates holds the client
// certificate, if any. nil means the zero tls.Config. LoadTLS builds one
// from PEM files.
//
// # What the server needs (ZooKeeper 3.8, Debian package)
//
// In zoo.cfg, for a TLS client port next to (or instead of) clientPort:
//
//	secureClientPort=2281
//	serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
//	ssl.keyStore.location=/etc/zookeeper/tls/server.pem  # PKCS#8 key, then the certificate chain
//	ssl.keyStore.type=PEM
//	ssl.trustStore.location=/etc/zookeeper/tls/client-ca.pem
//	ssl.trustStore.type=PEM
//	ssl.clientAuth=need
//	authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider
//
// and /usr/share/java/netty-codec.jar on the server's class path (for
// example in CLASSPATH for zkServer.sh): Debian's zookeeper.jar manifest
// lacks it, and the Netty factory then fails every connection, on both
// ports, with NoClassDefFoundError: io/netty/handler/codec/ByteToMessageDecoder.
// PEM stores need no keytool. ZooKeeper's PEM reader parses PKCS#8 keys
// only ("BEGIN PRIVATE KEY"; it tries RSA, EC and DSA, and EC is what was
// tested), read unencrypted when no ssl.keyStore.password is set (an
// encrypted key with its password was not tried).
//
// ZooKeeper 3.8 offers TLSv1.2 only by default; TLS 1.3 needs
// ssl.protocol=TLSv1.3, ssl.enabledProtocols=TLSv1.3 and ssl.ciphersuites
// set to TLS 1.3 suites (TLS_AES_128_GCM_SHA256,...), without which every
// handshake fails with "No appropriate protocol".
//
// With ssl.clientAuth=need a client without a certificate from a trusted
// CA gets no session (with want, one without a certificate gets a session
// and no x509 identity), and each client is known by its certificate's
// subject in RFC 2253 form, most specific name first: a certificate for
// CN=alice in O=hpc is the identity x509:CN=alice,O=hpc, which ACLs name
// as zk.ACL{Scheme: "x509", ID: "CN=alice,O=hpc", Perms: ...}. The server
// takes the identity from every handshake, so it holds after a
// reconnection with nothing for the client to resend. A plain clientPort
// left open beside the secure one lets in, without a certificate, anyone
// who reaches it: remove it, or at least bind it to loopback
// (clientPortAddress).
func WithTLS(cfg *tls.Config) Option {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	return func(o *options) {
		o.dial = tlsDial(cfg)
		// A provider per Dial: it holds one client's position in the list.
		o.hosts = &namedHosts{}
	}
}

// namedHosts is the client's DNSHostProvider, except that it hands the
// dialer the server names as given rather than the addresses they
// resolve to: the client's own provider would have us check every
// server's certificate against an IP address. Names are still resolved
// up front, so that a name that does not resolve fails Dial at once as
// before, and again at every dial, which also follows DNS changes. A name
// with several addresses is one server to the client (the dialer tries
// them in turn) where the client's provider makes it several.
type namedHosts struct {
	mu      sync.Mutex
	servers []string
	curr    int
	last    int // the server of the last connection; -1 before the first
}

// lookupTimeout is the client's own, for its DNSHostProvider.
const lookupTimeout = 3 * time.Second

func (h *namedHosts) Init(servers []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	for _, s := range servers {
		host, _, err := net.SplitHostPort(s)
		if err != nil {
			return err
		}
		if _, err := net.DefaultResolver.LookupHost(ctx, host); err != nil {
			return err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.servers = slices.Clone(servers)
	// As the client's provider does, so that clients spread over the
	// ensemble.
	rand.Shuffle(len(h.servers), func(i, j int) { h.servers[i], h.servers[j] = h.servers[j], h.servers[i] })
	h.curr, h.last = -1, -1
	return nil
}

func (h *namedHosts) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.servers)
}

// Next returns the next server; retryStart says the list has been gone
// through since the last connection, and the client pauses.
func (h *namedHosts) Next() (server string, retryStart bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.curr = (h.curr + 1) % len(h.servers)
	retryStart = h.curr == h.last
	if h.last == -1 {
		h.last = 0
	}
	return h.servers[h.curr], retryStart
}

func (h *namedHosts) Connected() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = h.curr
}

// tlsDial returns a dial function for the tracker to wrap.
func tlsDial(cfg *tls.Config) func(network, address string, timeout time.Duration) (net.Conn, error) {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		// One budget for TCP and TLS, the client's connect timeout: it is
		// how long the client gives one server before it tries the next.
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var d net.Dialer
		raw, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, err
		}
		c := tls.Client(raw, forServer(cfg, address))
		if err := c.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", address, err)
		}
		return c, nil
	}
}

// forServer returns cfg with ServerName set to the host dialled, unless
// it names a server already.
func forServer(cfg *tls.Config, address string) *tls.Config {
	if cfg.ServerName != "" {
		return cfg
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	c := cfg.Clone()
	c.ServerName = host
	return c
}

// LoadTLS builds a client configuration from PEM files: caFile, required,
// holds the CA certificates the servers' certificates are checked
// against; certFile and keyFile, both or neither, hold the client's
// certificate (chain) and its unencrypted private key. Errors wrap
// ErrBadTLS and name the file at fault.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, fmt.Errorf("%w: no CA file given: the servers' certificates must be checked against one", ErrBadTLS)
	}
	pool, err := loadCA(caFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	switch {
	case certFile == "" && keyFile == "":
		return cfg, nil
	case certFile == "":
		return nil, fmt.Errorf("%w: key file %s given without its certificate file", ErrBadTLS, keyFile)
	case keyFile == "":
		return nil, fmt.Errorf("%w: certificate file %s given without its key file", ErrBadTLS, certFile)
	}
	pair, err := loadPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg, nil
}

func loadCA(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: CA file: %v", ErrBadTLS, err)
	}
	pool := x509.NewCertPool()
	added := 0
	// Block by block, since AppendCertsFromPEM skips what it cannot parse
	// without a word.
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file %s, PEM block %d: %v", ErrBadTLS, file, n, err)
		}
		pool.AddCert(c)
		added++
	}
	if added == 0 {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrBadTLS, file)
	}
	return pool, nil
}

func loadPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: certificate file: %v", ErrBadTLS, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: key file: %v", ErrBadTLS, err)
	}
	if !slices.Contains(pemTypes(certPEM), "CERTIFICATE") {
		return tls.Certificate{}, fmt.Errorf("%w: certificate file %s holds no PEM certificate", ErrBadTLS, certFile)
	}
	if err := checkKeyPEM(keyPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: key file %s %v", ErrBadTLS, keyFile, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: certificate file %s with key file %s: %v", ErrBadTLS, certFile, keyFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil { // GODEBUG=x509keypairleaf=0
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("%w: certificate file %s: %v", ErrBadTLS, certFile, err)
		}
	}
	if err := checkClientCert(leaf, time.Now()); err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: certificate file %s %v", ErrBadTLS, certFile, err)
	}
	return pair, nil
}

func pemTypes(data []byte) []string {
	var types []string
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return types
		}
		types = append(types, b.Type)
	}
}

func checkKeyPEM(data []byte) error {
	for _, t := range pemTypes(data) {
		switch {
		case t == "ENCRYPTED PRIVATE KEY":
			return errors.New("holds an encrypted key; give it unencrypted, readable by this user alone")
		case strings.HasSuffix(t, "PRIVATE KEY"):
			return nil
		}
	}
	return errors.New("holds no PEM private key")
}

// checkClientCert catches what the server would only refuse, with an
// alert that names no reason.
func checkClientCert(leaf *x509.Certificate, now time.Time) error {
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Errorf("expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	case len(leaf.ExtKeyUsage) > 0 &&
		!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) &&
		!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny):
		return errors.New("is not for client authentication (its extended key usage lacks clientAuth)")
	}
	return nil
}

// X509Identity is the identity ZooKeeper's X509AuthenticationProvider
// gives a client presenting cfg's certificate: its subject in RFC 2253
// order, most specific first ("CN=alice,O=hpc"), which is also how Go
// prints a name. "" without a client certificate.
func X509Identity(cfg *tls.Config) (string, error) {
	if cfg == nil || len(cfg.Certificates) == 0 || len(cfg.Certificates[0].Certificate) == 0 {
		return "", nil
	}
	leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		return "", fmt.Errorf("%w: the client certificate: %v", ErrBadTLS, err)
	}
	return leaf.Subject.String(), nil
}
