package zkproxy

import (
	"fmt"
	"math"
	"strings"
)

// Op is a ZooKeeper opcode, as in the request header.
type Op int32

// Opcodes of the requests a Match can name. The values are ZooKeeper's
// (ZooDefs.OpCode); go-zookeeper sends only some of them: its Create is
// OpCreate, never OpCreate2, and so are the creates inside its Multi.
const (
	// OpAny matches every request except OpConnect. It is the zero Op,
	// which is ZooKeeper's "notify" code, never sent by a client.
	OpAny             Op = 0
	OpCreate          Op = 1
	OpDelete          Op = 2
	OpExists          Op = 3
	OpGetData         Op = 4
	OpSetData         Op = 5
	OpGetACL          Op = 6
	OpSetACL          Op = 7
	OpGetChildren     Op = 8
	OpSync            Op = 9
	OpPing            Op = 11
	OpGetChildren2    Op = 12
	OpCheck           Op = 13
	OpMulti           Op = 14
	OpCreate2         Op = 15
	OpReconfig        Op = 16
	OpCheckWatches    Op = 17
	OpRemoveWatches   Op = 18
	OpCreateContainer Op = 19
	OpDeleteContainer Op = 20
	OpCreateTTL       Op = 21
	OpMultiRead       Op = 22
	OpSetAuth         Op = 100
	OpSetWatches      Op = 101
	OpGetEphemerals   Op = 103
	OpGetAllChildren  Op = 104 // getAllChildrenNumber
	OpSetWatches2     Op = 105
	OpAddWatch        Op = 106
	OpClose           Op = -11

	// OpConnect stands for the ConnectRequest that opens every connection
	// (it has no header and so no opcode of its own). Only a Match that
	// names it matches it, so that catch-all rules leave reconnects alone.
	OpConnect Op = math.MinInt32
)

// Xids that ZooKeeper reserves. go-zookeeper uses only XidPing; it sends
// setWatches and setAuth with ordinary xids, unlike the Java client.
const (
	XidWatchEvent int32 = -1
	XidPing       int32 = -2
	XidAuth       int32 = -4
	XidSetWatches int32 = -8
)

var opNames = map[Op]string{
	OpAny: "any", OpCreate: "create", OpDelete: "delete", OpExists: "exists",
	OpGetData: "getData", OpSetData: "setData", OpGetACL: "getACL",
	OpSetACL: "setACL", OpGetChildren: "getChildren", OpSync: "sync",
	OpPing: "ping", OpGetChildren2: "getChildren2", OpCheck: "check",
	OpMulti: "multi", OpCreate2: "create2", OpReconfig: "reconfig",
	OpCheckWatches: "checkWatches", OpRemoveWatches: "removeWatches",
	OpCreateContainer: "createContainer", OpDeleteContainer: "deleteContainer",
	OpCreateTTL: "createTTL", OpMultiRead: "multiRead", OpSetAuth: "setAuth",
	OpSetWatches: "setWatches", OpGetEphemerals: "getEphemerals",
	OpGetAllChildren: "getAllChildrenNumber", OpSetWatches2: "setWatches2",
	OpAddWatch: "addWatch", OpClose: "close", OpConnect: "connect",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("op(%d)", int32(o))
}

// isMulti reports whether requests of this op carry sub-operations.
func (o Op) isMulti() bool { return o == OpMulti || o == OpMultiRead }

// Request is what the proxy understood of a client's request. It is
// decoded only as far as matching needs: the bytes are forwarded as they
// came, whatever their content.
type Request struct {
	// Conn numbers the proxied connection the request came on, from 1 in
	// the order the proxy accepted them.
	Conn int
	Xid  int32
	Op   Op
	// Path is the path the request names; "" for ops without one, and for
	// multis, whose paths are in Ops.
	Path string
	// Ops are a multi's sub-operations, in order. Decoding stops at the
	// first sub-operation of a type it does not know.
	Ops []SubOp
	// SessionID is, for OpConnect, the session the client asks to resume;
	// 0 asks for a new one.
	SessionID int64
}

// SubOp is one operation inside a multi.
type SubOp struct {
	Op   Op
	Path string
}

func (r Request) String() string {
	switch {
	case r.Op == OpConnect:
		return fmt.Sprintf("connect (session 0x%x)", r.SessionID)
	case r.Op.isMulti():
		subs := make([]string, len(r.Ops))
		for i, s := range r.Ops {
			subs[i] = s.Op.String() + " " + s.Path
		}
		return fmt.Sprintf("%v [%s] (xid %d)", r.Op, strings.Join(subs, ", "), r.Xid)
	case r.Path != "":
		return fmt.Sprintf("%v %s (xid %d)", r.Op, r.Path, r.Xid)
	}
	return fmt.Sprintf("%v (xid %d)", r.Op, r.Xid)
}
