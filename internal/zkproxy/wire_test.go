package zkproxy

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// jute builds messages the way ZooKeeper clients encode them.
type jute struct{ bytes.Buffer }

func (j *jute) int32(v int32) *jute {
	binary.Write(&j.Buffer, binary.BigEndian, v)
	return j
}

func (j *jute) int64(v int64) *jute {
	binary.Write(&j.Buffer, binary.BigEndian, v)
	return j
}

func (j *jute) bool(v bool) *jute {
	b := byte(0)
	if v {
		b = 1
	}
	j.WriteByte(b)
	return j
}

func (j *jute) str(s string) *jute {
	j.int32(int32(len(s)))
	j.WriteString(s)
	return j
}

func (j *jute) header(op Op, done bool) *jute { return j.int32(int32(op)).bool(done).int32(-1) }

func (j *jute) acls() *jute { return j.int32(1).int32(31).str("world").str("anyone") }

// multiBody is a multi of every sub-op kind, as go-zookeeper and the
// Java client encode them, with a null data buffer in one create.
func multiBody() []byte {
	var j jute
	j.int32(7).int32(int32(OpMulti))
	j.header(OpCreate, false).str("/a").str("data").acls().int32(0)
	j.header(OpCreate2, false).str("/b").int32(-1).acls().int32(1)
	j.header(OpCreateTTL, false).str("/c").str("").acls().int32(5).int64(1000)
	j.header(OpSetData, false).str("/d").str("x").int32(-1)
	j.header(OpCheck, false).str("/e").int32(3)
	j.header(OpDelete, false).str("/f").int32(-1)
	j.header(-1, true)
	return j.Bytes()
}

func TestParseMulti(t *testing.T) {
	got := parseRequest(multiBody())
	want := Request{Xid: 7, Op: OpMulti, Ops: []SubOp{
		{OpCreate, "/a"}, {OpCreate2, "/b"}, {OpCreateTTL, "/c"},
		{OpSetData, "/d"}, {OpCheck, "/e"}, {OpDelete, "/f"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParseMultiReadAndUnknownSubOp(t *testing.T) {
	var j jute
	j.int32(3).int32(int32(OpMultiRead))
	j.header(OpGetChildren, false).str("/kids").bool(false)
	j.header(OpGetData, false).str("/data").bool(true)
	j.header(99, false).str("/unknown")
	got := parseRequest(j.Bytes())
	want := []SubOp{{OpGetChildren, "/kids"}, {OpGetData, "/data"}}
	if !reflect.DeepEqual(got.Ops, want) {
		t.Errorf("got %+v, want %+v", got.Ops, want)
	}
}

func TestParsePathAndPathless(t *testing.T) {
	var j jute
	j.int32(5).int32(int32(OpSetData)).str("/job/cursor").str("v").int32(2)
	if got := parseRequest(j.Bytes()); got.Path != "/job/cursor" || got.Op != OpSetData || got.Xid != 5 {
		t.Errorf("setData: got %+v", got)
	}
	j.Reset()
	j.int32(XidPing).int32(int32(OpPing))
	if got := parseRequest(j.Bytes()); got.Path != "" || got.Op != OpPing || got.Xid != XidPing {
		t.Errorf("ping: got %+v", got)
	}
}

func TestParseConnect(t *testing.T) {
	var j jute
	j.int32(0).int64(42).int32(4000).int64(0x1234).str("0123456789abcdef").bool(false)
	if got := parseConnect(j.Bytes()); got.Op != OpConnect || got.SessionID != 0x1234 {
		t.Errorf("got %+v", got)
	}
}

// Every prefix of a valid message is a message the proxy may be sent; it
// must decode what it can and never panic.
func TestParseTruncated(t *testing.T) {
	body := multiBody()
	for n := range len(body) {
		got := parseRequest(body[:n])
		if len(got.Ops) > 6 {
			t.Fatalf("%d bytes: %d sub-ops from a truncated multi", n, len(got.Ops))
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(multiBody())
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 14, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseRequest(b)
		parseConnect(b)
		replyXid(b)
	})
}

func TestReadFrame(t *testing.T) {
	var j jute
	j.int32(3).WriteString("abc")
	j.int32(-1) // a length no ZooKeeper message has
	r := bytes.NewReader(j.Bytes())
	frame, err := readFrame(r)
	if err != nil || string(frame[4:]) != "abc" || len(frame) != 7 {
		t.Fatalf("got %q, %v", frame, err)
	}
	if _, err := readFrame(r); err == nil {
		t.Fatal("a negative length was accepted")
	}
}
