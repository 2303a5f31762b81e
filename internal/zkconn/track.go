package zkconn

import (
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// tracker learns, from the bytes on the client's connections, when the
// server last heard from us. It sees every connection the client makes,
// through the dialer, and never alters a byte.
//
// Times are kept as nanoseconds since epoch, which carries a monotonic
// clock reading, so that a wall-clock step cannot move a deadline.
type tracker struct {
	epoch time.Time
	// heard: when a Read last returned data from a server.
	heard atomic.Int64
	// acked: the latest send time of a request the server has answered;
	// see Session's safety argument. It starts at epoch, before Dial sent
	// anything, which is never later than the truth.
	acked atomic.Int64
	// session: the session whose connect replies count as answers; 0
	// until the first session is granted.
	session atomic.Int64
	// granted: the session timeout of the last connect reply that
	// counted, in nanoseconds; 0 until there is one.
	granted atomic.Int64
}

func newTracker() *tracker { return &tracker{epoch: time.Now()} }

func (t *tracker) now() int64 { return int64(time.Since(t.epoch)) }

func (t *tracker) at(ns int64) time.Time { return t.epoch.Add(time.Duration(ns)) }

// raise stores v in a if it is later than what a holds.
func raise(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// dialer wraps dial so that every connection it makes reports to t.
func (t *tracker) dialer(dial func(network, address string, timeout time.Duration) (net.Conn, error)) func(string, string, time.Duration) (net.Conn, error) {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		c, err := dial(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return &trackedConn{Conn: c, t: t, sent: make(map[int32][]int64)}, nil
	}
}

// Header sizes, from the ZooKeeper wire protocol: every frame is a 4-byte
// big-endian length and a body. A client's first frame on a connection is
// the connect request and the server's first is the connect response
// (protocolVersion int32, timeOut int32, sessionId int64, ...); after that
// a request starts with xid int32 and a reply with xid int32, zxid int64,
// err int32.
const (
	requestHeaderLen = 4  // xid
	replyHeaderLen   = 16 // xid, zxid, err
	connectReplyLen  = 16 // protocolVersion, timeOut, sessionId
)

// Reply error codes after which a reply proves nothing about the session.
const (
	errCodeSessionExpired = -112
	errCodeSessionMoved   = -118
)

// trackedConn pairs each reply with the request it answers, by xid (the
// server answers a session's requests in order, so requests that share an
// xid, as pings do, are paired first in, first out). A request the server
// never answers can only make a later reply pair with an earlier send
// time, which errs on the safe side.
type trackedConn struct {
	net.Conn
	t *tracker

	mu          sync.Mutex
	out, in     framer
	connectSent int64 // when the connect request was sent
	connectOpen bool  // the connect request awaits its response
	sent        map[int32][]int64
}

func (c *trackedConn) Write(p []byte) (int, error) {
	// Taken before the bytes leave: the server cannot have them sooner.
	now := c.t.now()
	c.mu.Lock()
	c.out.feed(p, 0, requestHeaderLen, func(hdr []byte, first bool) {
		switch {
		case first:
			c.connectSent, c.connectOpen = now, true
		case len(hdr) == requestHeaderLen:
			xid := int32(binary.BigEndian.Uint32(hdr))
			c.sent[xid] = append(c.sent[xid], now)
		}
	})
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n <= 0 {
		return n, err
	}
	raise(&c.t.heard, c.t.now())
	c.mu.Lock()
	c.in.feed(p[:n], connectReplyLen, replyHeaderLen, func(hdr []byte, first bool) {
		if first {
			if len(hdr) == connectReplyLen && c.connectOpen {
				// A session id of 0 means the session has expired; another
				// id is another session, and Session reports it lost.
				id := int64(binary.BigEndian.Uint64(hdr[8:16]))
				if want := c.t.session.Load(); id != 0 && (want == 0 || id == want) {
					// Before the acknowledgement: a deadline must never
					// pair a new answer with an old, longer timeout.
					if ms := int32(binary.BigEndian.Uint32(hdr[4:8])); ms > 0 {
						c.t.granted.Store(int64(time.Duration(ms) * time.Millisecond))
					}
					raise(&c.t.acked, c.connectSent)
				}
			}
			c.connectOpen = false
			return
		}
		if len(hdr) != replyHeaderLen {
			return
		}
		xid := int32(binary.BigEndian.Uint32(hdr[0:4]))
		q := c.sent[xid]
		if len(q) == 0 {
			return // a watch event (xid -1) answers no request
		}
		sentAt := q[0]
		if len(q) == 1 {
			delete(c.sent, xid)
		} else {
			c.sent[xid] = q[1:]
		}
		switch int32(binary.BigEndian.Uint32(hdr[12:16])) {
		case errCodeSessionExpired, errCodeSessionMoved:
		default:
			raise(&c.t.acked, sentAt)
		}
	})
	c.mu.Unlock()
	return n, err
}

// framer splits a byte stream into ZooKeeper frames and hands on the first
// bytes of each frame's body, however the stream was cut into writes or
// reads.
type framer struct {
	lenBuf [4]byte
	lenN   int
	inBody bool
	left   int // body bytes still to come
	first  bool
	frames int
	hdr    [16]byte
	hdrN   int
	want   int
}

// feed consumes p. emit gets the first wantFirst bytes of the stream's
// first frame and the first wantRest bytes of every later one (fewer if
// the frame is shorter), as soon as they have arrived.
func (f *framer) feed(p []byte, wantFirst, wantRest int, emit func(hdr []byte, first bool)) {
	for len(p) > 0 {
		if !f.inBody {
			k := copy(f.lenBuf[f.lenN:], p)
			f.lenN += k
			p = p[k:]
			if f.lenN < len(f.lenBuf) {
				return
			}
			f.lenN = 0
			f.left = int(binary.BigEndian.Uint32(f.lenBuf[:]))
			f.first = f.frames == 0
			f.frames++
			f.want = wantRest
			if f.first {
				f.want = wantFirst
			}
			f.want = min(f.want, f.left, len(f.hdr))
			f.hdrN = 0
			if f.want == 0 {
				emit(nil, f.first)
			}
			f.inBody = f.left > 0
			continue
		}
		var k int
		if f.hdrN < f.want {
			k = copy(f.hdr[f.hdrN:f.want], p)
			f.hdrN += k
			if f.hdrN == f.want {
				emit(f.hdr[:f.want], f.first)
			}
		} else {
			k = min(f.left, len(p))
		}
		f.left -= k
		p = p[k:]
		if f.left == 0 {
			f.inBody = false
		}
	}
}
