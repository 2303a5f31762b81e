package zkserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Values of TLSConfig.ClientAuth, as ZooKeeper's ssl.clientAuth spells them.
const (
	// ClientAuthNeed refuses clients without a certificate from the CA;
	// each client's certificate subject becomes its x509 ACL identity.
	ClientAuthNeed = "need"
	// ClientAuthWant asks for a certificate and accepts clients without
	// one, who then have no x509 identity.
	ClientAuthWant = "want"
	// ClientAuthNone asks for no certificate: TLS protects the traffic
	// only.
	ClientAuthNone = "none"
)

// TLSConfig makes a server also listen for TLS clients, on its own port
// (Server.SecureAddr); the plain port stays, for the readiness check.
//
// The server is configured as ZooKeeper 3.8 needs it (see the package
// doc): the Netty connection factory, PEM key and trust stores, ssl.clientAuth
// and the x509 authentication provider, with netty-codec.jar added to the
// class path.
type TLSConfig struct {
	// CertPEM is the server's certificate chain, leaf first. Clients check
	// its names against the host they dial: the tests' servers are dialled
	// at 127.0.0.1.
	CertPEM []byte

	// KeyPEM is the certificate's unencrypted private key, RSA or ECDSA,
	// in PKCS#8, PKCS#1 or SEC 1 form. It is handed to ZooKeeper as PKCS#8,
	// the only form its PEM reader accepts.
	KeyPEM []byte

	// ClientCAPEM holds the certificates of the CAs whose client
	// certificates the server accepts. It is required unless ClientAuth is
	// ClientAuthNone.
	ClientCAPEM []byte

	// ClientAuth is ClientAuthNeed, ClientAuthWant or ClientAuthNone; ""
	// means ClientAuthNeed.
	ClientAuth string
}

// Files written next to zoo.cfg for the key and trust stores.
const (
	keyStoreName   = "tls-server.pem"
	trustStoreName = "tls-client-ca.pem"
)

// nettyCodecJar is the jar Debian's zookeeper.jar manifest leaves out:
// without it the Netty factory binds both ports and then fails every
// connection, srvr included, with NoClassDefFoundError:
// io/netty/handler/codec/ByteToMessageDecoder.
const nettyCodecJar = "netty-codec.jar"

// nettyHint names the fix when a log tail shows the missing netty-codec
// classes, which otherwise surface as a server that never serves.
func nettyHint(tail string) string {
	if !strings.Contains(tail, "io/netty/handler/codec/") {
		return ""
	}
	return "; Netty's codec classes are missing: add " + nettyCodecJar + " to the class path (it is looked for next to Config.Jar)"
}

func (t *TLSConfig) withDefaults() *TLSConfig {
	if t == nil {
		return nil
	}
	c := *t // the caller's value is not ours to change
	if c.ClientAuth == "" {
		c.ClientAuth = ClientAuthNeed
	}
	return &c
}

// validate catches what would otherwise only show as a JVM that never
// serves TLS, with the reason buried in its log.
func (t *TLSConfig) validate() error {
	if t == nil {
		return nil
	}
	switch t.ClientAuth {
	case ClientAuthNeed, ClientAuthWant, ClientAuthNone:
	default:
		return fmt.Errorf("zkserver: TLS ClientAuth %q is not need, want or none", t.ClientAuth)
	}
	if _, err := t.keyStore(); err != nil {
		return err
	}
	if t.ClientAuth != ClientAuthNone && !x509.NewCertPool().AppendCertsFromPEM(t.ClientCAPEM) {
		return fmt.Errorf("zkserver: TLS ClientCAPEM holds no PEM certificate; it is required with ClientAuth %s", t.ClientAuth)
	}
	return nil
}

// keyStore returns the PEM key store ZooKeeper reads: the private key as
// PKCS#8, then the certificate chain.
func (t *TLSConfig) keyStore() ([]byte, error) {
	pair, err := tls.X509KeyPair(t.CertPEM, t.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("zkserver: TLS CertPEM and KeyPEM: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(pair.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("zkserver: TLS KeyPEM: %w", err)
	}
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	for _, c := range pair.Certificate {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c})
	}
	return b.Bytes(), nil
}

// writeTLS writes the key and trust stores into the server's directory
// and returns the zoo.cfg properties that use them.
func (s *Server) writeTLS() ([][2]string, error) {
	t := s.cfg.TLS
	ks, err := t.keyStore()
	if err != nil {
		return nil, err
	}
	keyStore := filepath.Join(s.dir, keyStoreName)
	// The server's private key: readable by us alone.
	if err := os.WriteFile(keyStore, ks, 0o600); err != nil {
		return nil, fmt.Errorf("zkserver: %w", err)
	}
	props := [][2]string{
		{"secureClientPort", strconv.Itoa(s.securePort())},
		{"secureClientPortAddress", "127.0.0.1"},
		// The default NIO factory has no TLS; Netty then serves both ports.
		{"serverCnxnFactory", "org.apache.zookeeper.server.NettyServerCnxnFactory"},
		{"ssl.keyStore.location", keyStore},
		{"ssl.keyStore.type", "PEM"},
		{"ssl.clientAuth", t.ClientAuth},
	}
	if t.ClientAuth == ClientAuthNone {
		// The server asks for no certificate, so there is none to check
		// and no x509 identity to derive. (ZooKeeper still warns once
		// that no trust store is set.)
		return props, nil
	}
	trustStore := filepath.Join(s.dir, trustStoreName)
	if err := os.WriteFile(trustStore, t.ClientCAPEM, 0o644); err != nil {
		return nil, fmt.Errorf("zkserver: %w", err)
	}
	return append(props,
		[2]string{"ssl.trustStore.location", trustStore},
		[2]string{"ssl.trustStore.type", "PEM"},
		// Turns a client certificate's subject into the identity
		// x509:<subject in RFC 2253 form>, as in CN=alice,O=hpc.
		[2]string{"authProvider.x509", "org.apache.zookeeper.server.auth.X509AuthenticationProvider"},
	), nil
}

// securePort is the last of the server's ports when it has TLS.
func (s *Server) securePort() int { return s.ports[len(s.ports)-1] }

// SecureAddr returns the TLS client address, 127.0.0.1:port, or "" when
// the server has no TLS.
func (s *Server) SecureAddr() string { return s.secureAddr }

// errProbeDone ends a probe handshake as soon as the server has shown its
// certificate.
var errProbeDone = errors.New("zkserver: probe done")

// probeTLS checks that the secure port gets as far in a handshake as
// sending the server's certificate. The plain port's srvr is not enough:
// a standalone server answers it before its secure port has started, and
// a server lacking netty-codec.jar serves plain clients but fails every
// handshake. The server logs an "Unsuccessful handshake" error for each
// probe.
func probeTLS(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("secure port: %w", err)
	}
	defer c.Close()
	sawCert := false
	tc := tls.Client(c, &tls.Config{
		// Whether the server speaks TLS is the question here, not who it
		// is.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func([][]byte, [][]*x509.Certificate) error {
			sawCert = true
			// Closed before the client's alert can be sent: ZooKeeper
			// logs a one-line error for a handshake cut short but adds a
			// forty-line stack trace for an alert.
			c.Close()
			return errProbeDone
		},
	})
	err = tc.HandshakeContext(ctx)
	if sawCert {
		return nil
	}
	return fmt.Errorf("secure port %s: TLS handshake failed: %w", addr, err)
}
