package zkproxy

import (
	"encoding/binary"
	"fmt"
	"io"
)

// maxFrame bounds what one length prefix can make the proxy allocate. It
// is far above ZooKeeper's own jute.maxbuffer default (1 MiB), so that a
// test that raises the server's limit still passes through.
const maxFrame = 64 << 20

// readFrame reads one length-prefixed message and returns it whole,
// prefix included, so that it can be forwarded with a single write.
func readFrame(r io.Reader) ([]byte, error) {
	var prefix [4]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(prefix[:])
	if n > maxFrame {
		return nil, fmt.Errorf("message of %d bytes is over the proxy's limit of %d", n, maxFrame)
	}
	frame := make([]byte, 4+n)
	copy(frame, prefix[:])
	if _, err := io.ReadFull(r, frame[4:]); err != nil {
		return nil, err
	}
	return frame, nil
}

// decoder reads jute fields. A short buffer marks it bad instead of
// panicking: the proxy must forward whatever it cannot decode.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) take(n int) ([]byte, bool) {
	if d.bad || n < 0 || n > len(d.b) {
		d.bad = true
		return nil, false
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v, true
}

func (d *decoder) int32() int32 {
	b, ok := d.take(4)
	if !ok {
		return 0
	}
	return int32(binary.BigEndian.Uint32(b))
}

func (d *decoder) int64() int64 {
	b, ok := d.take(8)
	if !ok {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func (d *decoder) bool() bool {
	b, ok := d.take(1)
	return ok && b[0] != 0
}

// buffer reads a jute buffer or ustring: an int32 length, -1 for null,
// then the bytes.
func (d *decoder) buffer() []byte {
	n := d.int32()
	if n < 0 {
		return nil
	}
	b, _ := d.take(int(n))
	return b
}

func (d *decoder) string() string { return string(d.buffer()) }

// skipACLs skips a vector of ACL{perms int32, scheme ustring, id ustring}.
func (d *decoder) skipACLs() {
	for n := d.int32(); n > 0 && !d.bad; n-- {
		d.int32()
		d.buffer()
		d.buffer()
	}
}

// pathOps are the ops whose request record starts with a path.
var pathOps = map[Op]bool{
	OpCreate: true, OpDelete: true, OpExists: true, OpGetData: true,
	OpSetData: true, OpGetACL: true, OpSetACL: true, OpGetChildren: true,
	OpSync: true, OpGetChildren2: true, OpCheck: true, OpCreate2: true,
	OpCheckWatches: true, OpRemoveWatches: true, OpCreateContainer: true,
	OpDeleteContainer: true, OpCreateTTL: true, OpGetEphemerals: true,
	OpGetAllChildren: true, OpAddWatch: true,
}

// parseRequest decodes the body of a request after the ConnectRequest:
// RequestHeader{xid, type} and then the op's record.
func parseRequest(body []byte) Request {
	d := decoder{b: body}
	req := Request{Xid: d.int32(), Op: Op(d.int32())}
	switch {
	case d.bad:
	case req.Op.isMulti():
		req.Ops = parseMulti(&d)
	case pathOps[req.Op]:
		req.Path = d.string()
	}
	return req
}

// parseConnect decodes a ConnectRequest{protocolVersion int32,
// lastZxidSeen int64, timeOut int32, sessionId int64, passwd buffer}.
func parseConnect(body []byte) Request {
	d := decoder{b: body}
	d.int32()
	d.int64()
	d.int32()
	return Request{Op: OpConnect, SessionID: d.int64()}
}

// parseMulti decodes a MultiOperationRecord: MultiHeader{type int32, done
// bool, err int32} before each sub-op record, and a last header with
// done set. A sub-op must be decoded in full to find the next header.
func parseMulti(d *decoder) []SubOp {
	var ops []SubOp
	for {
		op, done := Op(d.int32()), d.bool()
		d.int32()
		if done || d.bad {
			return ops
		}
		sub, ok := parseSubOp(d, op)
		if !ok {
			return ops
		}
		ops = append(ops, sub)
	}
}

func parseSubOp(d *decoder, op Op) (SubOp, bool) {
	sub := SubOp{Op: op, Path: d.string()}
	switch op {
	case OpCreate, OpCreate2, OpCreateContainer, OpCreateTTL:
		d.buffer() // data
		d.skipACLs()
		d.int32() // flags
		if op == OpCreateTTL {
			d.int64()
		}
	case OpDelete, OpCheck:
		d.int32() // version
	case OpSetData:
		d.buffer()
		d.int32()
	case OpGetChildren, OpGetData: // in multiRead
		d.bool() // watch
	default:
		return SubOp{}, false
	}
	return sub, !d.bad
}

// replyXid is the xid of a ReplyHeader{xid int32, zxid int64, err int32}.
func replyXid(body []byte) int32 {
	d := decoder{b: body}
	return d.int32()
}
