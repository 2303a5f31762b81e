// Package zkserver runs real Apache ZooKeeper servers, standalone or as an
// ensemble, for tests, benchmarks and demos. It drives the Debian
// "zookeeper" package (the JVM and /usr/share/java/zookeeper.jar); see
// Installed.
//
// Servers listen on free loopback ports, keep their data, zoo.cfg and log
// in a directory of their own and are ready when Start returns: the
// readiness check is the srvr four-letter word reporting a serving mode,
// since ruok answers before the server serves.
//
// A JVM never outlives the process that started it, however that process
// ends, and is only ever signalled through its own process handle, never
// by name. Stop shuts a server down and removes its directory; Kill and
// Restart simulate crashes and recoveries with the data kept.
//
// # TLS
//
// Config.TLS adds a TLS client port (Server.SecureAddr) beside the plain
// one, which stays for the readiness check. ZooKeeper 3.8.0 as Debian
// packages it needs, in zoo.cfg:
//
//	secureClientPort=<port>
//	secureClientPortAddress=127.0.0.1   # like clientPortAddress; optional
//	serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
//	ssl.keyStore.location=<dir>/tls-server.pem
//	ssl.keyStore.type=PEM
//	ssl.trustStore.location=<dir>/tls-client-ca.pem
//	ssl.trustStore.type=PEM
//	ssl.clientAuth=need                 # or want, or none
//	authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider
//
// and /usr/share/java/netty-codec.jar on the class path, which the
// manifest of Debian's zookeeper.jar leaves out. Without it the server
// starts, binds both ports, and fails every connection on either (the
// Netty factory serves both) with NoClassDefFoundError:
// io/netty/handler/codec/ByteToMessageDecoder; srvr fails too, so Start
// times out, and its error says so.
//
// PEM stores work on 3.8.0 and need no keytool: the key store holds the
// unencrypted private key in PKCS#8 ("BEGIN PRIVATE KEY", the only form
// ZooKeeper's PEM reader parses; it tries RSA, EC and DSA, and EC is what
// the tests use), then the certificate chain; the trust store holds the
// CA certificates. With no ssl.keyStore.password the key is read
// unencrypted. TLSConfig takes any key form Go parses and writes PKCS#8.
// The server
// offers TLSv1.2 only unless ssl.protocol, ssl.enabledProtocols and
// ssl.ciphersuites all say otherwise (TLSv1.3 needs TLS_AES_* suites).
//
// A standalone server answers srvr on its plain port before its secure
// port has started, so readiness with TLS also needs a handshake on the
// secure port to reach the server's certificate. Each such probe leaves an
// "Unsuccessful handshake" error in the server's log. Stop, Kill and
// Restart are unchanged; a restarted server serves TLS again when Restart
// returns.
//
// With ssl.clientAuth=need and the x509 provider, a client's certificate
// subject is its ACL identity in RFC 2253 form, most specific name first:
// x509:CN=alice,O=hpc for a certificate whose subject is O=hpc, CN=alice
// in encoding order (as Go's crypto/x509 and openssl -subj /O=hpc/CN=alice
// write it). The identity comes from each connection's handshake, so it
// holds after a reconnection to the same session.
//
// Package zktest wraps this package for tests, and makes certificates
// for them (zktest.NewCA).
package zkserver
