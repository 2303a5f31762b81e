// Package zkproxy is a fault-injecting TCP proxy, for tests, between
// ZooKeeper clients and one real ZooKeeper server on loopback.
//
// It understands the framing of ZooKeeper's protocol well enough to act
// on a chosen request: it can drop a connection when a request names a
// path, before the server sees it (DropConnection); forward a request and
// drop the connection instead of its reply, so that the client is told the
// connection closed for an operation the server applied (DropReply); and
// black-hole everything for a while (Partition, PartitionFor), as a
// network partition would. Messages are forwarded whole and unchanged, or
// not at all.
//
//	func TestLostReply(t *testing.T) {
//		srv := zktest.Standalone(t)
//		p := zkproxy.ForTest(t, srv.Addr()) // or Start, and Close when done
//		conn := zktest.Connect(t, p.Addr())
//
//		r := p.DropReply(zkproxy.Match{Op: zkproxy.OpSetData, Path: "/job/cursor", PathMode: zkproxy.Exact})
//		_, err := conn.Set("/job/cursor", []byte("42"), -1)
//		// err is zk.ErrConnectionClosed, yet the server has applied the Set.
//		<-r.Fired()
//
//		p.DropConnection(zkproxy.Match{Path: "/job/leases/"}) // drops at the next request under it
//		<-p.PartitionFor(15 * time.Second) // longer than zktest's session timeout: it expires
//	}
//
// Rules can be added and removed at any time, while traffic flows. A
// request is matched when the proxy is about to forward it, so a rule
// added during a partition applies to the requests the partition holds.
// Matching is by opcode and path (prefix, exact or contained); a multi
// matches through its sub-operations. Each rule fires Times times (once
// by default) and is then spent; Fired and Count tell a test that it has,
// without sleeping.
//
// Close ends every goroutine the proxy started before it returns.
package zkproxy
