package zkconn

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"
)

// frame is a length-prefixed frame of the given body.
func frame(body ...[]byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(bytes.Join(body, nil))))
	return append(b, bytes.Join(body, nil)...)
}

func be32(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
func be64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// replyFrame is a reply with the given xid and error code and a body.
func replyFrame(xid, errCode int32, body []byte) []byte {
	return frame(be32(xid), be64(7), be32(errCode), body)
}

// TestFramerSplits: the headers come out the same however the stream is
// cut into reads.
func TestFramerSplits(t *testing.T) {
	stream := slices.Concat(
		frame(be32(0), be32(2000), be64(0x1234), be32(16), make([]byte, 16)), // connect reply
		replyFrame(-2, 0, nil),                   // ping
		replyFrame(-1, 0, []byte("watch event")), // watch
		frame(),                                  // empty
		frame([]byte{1, 2}),                      // shorter than a header
		replyFrame(5, -101, make([]byte, 3000)),
		replyFrame(6, 0, nil),
	)
	collect := func(chunks [][]byte) []string {
		var f framer
		var got []string
		for _, c := range chunks {
			f.feed(c, connectReplyLen, replyHeaderLen, func(hdr []byte, first bool) {
				got = append(got, fmt.Sprintf("%v %x", first, hdr))
			})
		}
		return got
	}
	want := collect([][]byte{stream})
	if len(want) != 7 || want[0] != "true 00000000000007d00000000000001234" {
		t.Fatalf("whole stream: %q", want)
	}
	for size := 1; size <= 40; size++ {
		var chunks [][]byte
		for b := stream; len(b) > 0; b = b[min(size, len(b)):] {
			chunks = append(chunks, b[:min(size, len(b))])
		}
		if got := collect(chunks); !slices.Equal(got, want) {
			t.Fatalf("in chunks of %d: %q, want %q", size, got, want)
		}
	}
}

// TestTrackedConnPairs: a reply counts with the send time of the request it
// answers; watch events and session errors count for nothing; pings pair
// first in, first out; a connect reply counts only for the session
// tracked.
func TestTrackedConnPairs(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	trk := newTracker()
	c, err := trk.dialer(func(string, string, time.Duration) (net.Conn, error) { return client, nil })("tcp", "x", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := c.(*trackedConn)
	go func() { // the server side: swallow what the client writes
		buf := make([]byte, 1024)
		for {
			if _, err := server.Read(buf); err != nil {
				return
			}
		}
	}()
	send := func(b []byte) int64 {
		t.Helper()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		return trk.now()
	}
	reply := func(b []byte) {
		t.Helper()
		go server.Write(b)
		buf := make([]byte, len(b))
		for n := 0; n < len(b); {
			k, err := c.Read(buf[n:])
			if err != nil {
				t.Fatal(err)
			}
			n += k
		}
	}
	acked := func() int64 { return trk.acked.Load() }

	trk.session.Store(0x99)
	send(frame(be32(0), be64(0), be32(2000), be64(0x99), be32(0)))
	connectSent := tc.connectSent
	reply(frame(be32(0), be32(1500), be64(0x99), be32(0)))
	if acked() != connectSent || trk.granted.Load() != int64(1500*time.Millisecond) {
		t.Fatalf("after the connect reply: acked %d granted %d; want %d and 1.5s", acked(), trk.granted.Load(), connectSent)
	}

	send(frame(be32(-2), be32(11))) // ping 1
	ping1 := tc.sent[-2][0]
	send(frame(be32(-2), be32(11))) // ping 2
	ping2 := tc.sent[-2][1]
	send(frame(be32(3), be32(4), []byte("/x"))) // a request
	req := tc.sent[3][0]
	if !(connectSent <= ping1 && ping1 <= ping2 && ping2 <= req) {
		t.Fatalf("send times out of order: %d %d %d %d", connectSent, ping1, ping2, req)
	}

	reply(replyFrame(-1, 0, []byte("event")))
	if acked() != connectSent {
		t.Errorf("a watch event moved acked to %d", acked())
	}
	reply(replyFrame(-2, 0, nil))
	if acked() != ping1 {
		t.Errorf("first ping reply: acked %d, want the first ping's %d", acked(), ping1)
	}
	reply(replyFrame(3, errCodeSessionExpired, nil))
	if acked() != ping1 {
		t.Errorf("a session-expired reply moved acked to %d", acked())
	}
	reply(replyFrame(-2, 0, nil))
	if acked() != ping2 {
		t.Errorf("second ping reply: acked %d, want %d", acked(), ping2)
	}
	reply(replyFrame(42, 0, nil)) // answers nothing sent
	if acked() != ping2 || len(tc.sent) != 0 {
		t.Errorf("after all replies: acked %d (want %d), pending %v", acked(), ping2, tc.sent)
	}
	if trk.heard.Load() < ping2 {
		t.Errorf("heard %d before the last send %d", trk.heard.Load(), ping2)
	}
}

// TestTrackedConnOtherSession: on a new connection, a connect reply for
// another session, or for an expired one, is no answer for ours.
func TestTrackedConnOtherSession(t *testing.T) {
	for _, id := range []int64{0, 0x77} {
		client, server := net.Pipe()
		trk := newTracker()
		trk.session.Store(0x99)
		c, _ := trk.dialer(func(string, string, time.Duration) (net.Conn, error) { return client, nil })("tcp", "x", 0)
		go func() {
			buf := make([]byte, 1024)
			server.Read(buf)
			server.Write(frame(be32(0), be32(1500), be64(id), be32(0)))
		}()
		if _, err := c.Write(frame(be32(0), be64(0), be32(2000), be64(0x99), be32(0))); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 20)
		for n := 0; n < len(buf); {
			k, err := c.Read(buf[n:])
			if err != nil {
				t.Fatal(err)
			}
			n += k
		}
		if trk.acked.Load() != 0 || trk.granted.Load() != 0 {
			t.Errorf("connect reply for session %#x counted: acked %d, granted %d", id, trk.acked.Load(), trk.granted.Load())
		}
		c.Close()
		server.Close()
	}
}
