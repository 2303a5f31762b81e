package zkproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"time"
)

// connectKey stands for the ConnectRequest among the xids whose replies
// are doomed: it has no xid, and its reply is the server's first message.
// Clients never use this xid, which is negative and not a reserved one.
const connectKey int32 = math.MinInt32

// dialTimeout bounds the connection to the server, which is on loopback.
const dialTimeout = 5 * time.Second

// errStopped tells a pump that the link was closed on purpose.
var errStopped = errors.New("stopped")

// link is one client connection and its connection to the server.
type link struct {
	p      *Proxy
	id     int
	client net.Conn
	ctx    context.Context // cancelled when the link closes
	cancel context.CancelFunc
	once   sync.Once

	mu     sync.Mutex
	server net.Conn       // nil until dialled
	doomed map[int32]doom // replies to withhold, by xid; nil once closed
}

// doom is a DropReply that has forwarded its request.
type doom struct {
	r   *Rule
	req Request
}

func (l *link) run() {
	defer l.close("connection ended")
	if !l.p.waitHealed(l.ctx.Done()) {
		return
	}
	server, err := l.dial()
	if err != nil {
		l.log("%v", err)
		return
	}
	l.log("connected to %s", l.p.upstream)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.pump(l.client, server, l.forwardRequest)
	}()
	l.pump(server, l.client, l.forwardReply)
	<-done
}

func (l *link) dial() (net.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.DialContext(l.ctx, "tcp", l.p.upstream)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", l.p.upstream, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.doomed == nil {
		server.Close()
		return nil, errors.New("closed while dialling")
	}
	l.server = server
	return server, nil
}

// pump forwards messages from src to dst one at a time, until either
// side ends or forward stops it; first is true for the connection's
// opening message, which has no header.
func (l *link) pump(src, dst net.Conn, forward func(dst net.Conn, frame []byte, first bool) error) {
	r := bufio.NewReaderSize(src, 64<<10)
	for first := true; ; first = false {
		frame, err := readFrame(r)
		// The end of a stream waits for the partition to heal like any
		// message: the peer must not learn what the network would not
		// carry.
		if !l.p.waitHealed(l.ctx.Done()) {
			return
		}
		if err == nil {
			err = forward(dst, frame, first)
		}
		if err != nil {
			l.close(describe(err, src == l.client))
			return
		}
	}
}

func describe(err error, fromClient bool) string {
	side := "server"
	if fromClient {
		side = "client"
	}
	if errors.Is(err, io.EOF) {
		return side + " closed the connection"
	}
	return fmt.Sprintf("%s side: %v", side, err)
}

func (l *link) forwardRequest(server net.Conn, frame []byte, first bool) error {
	req := parseConnect(frame[4:])
	if !first {
		req = parseRequest(frame[4:])
	}
	req.Conn = l.id
	switch r := l.p.judge(req); {
	case r == nil:
	case r.act == dropConnection:
		l.close(fmt.Sprintf("dropped at %v, not forwarded", req))
		l.p.fire(r, req)
		return errStopped
	case r.act == dropReply:
		// Before the write, or the reply could beat the bookkeeping.
		l.doom(r, req, first)
	}
	_, err := server.Write(frame)
	return err
}

func (l *link) forwardReply(client net.Conn, frame []byte, first bool) error {
	key := connectKey
	if !first {
		key = replyXid(frame[4:])
	}
	if d, ok := l.undoom(key); ok {
		l.close(fmt.Sprintf("withheld the reply to %v", d.req))
		l.p.fire(d.r, d.req)
		return errStopped
	}
	_, err := client.Write(frame)
	return err
}

func (l *link) doom(r *Rule, req Request, first bool) {
	key := req.Xid
	if first {
		key = connectKey
	}
	l.mu.Lock()
	closed := l.doomed == nil
	if !closed {
		l.doomed[key] = doom{r, req}
	}
	l.mu.Unlock()
	if closed {
		// The reply is lost anyway, as close would have said.
		l.p.fire(r, req)
	}
}

func (l *link) undoom(key int32) (doom, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.doomed[key]
	delete(l.doomed, key)
	return d, ok
}

// close closes both sides at once; the first reason given is logged.
func (l *link) close(why string) {
	l.once.Do(func() {
		l.cancel()
		l.client.Close()
		l.mu.Lock()
		server, pending := l.server, l.doomed
		l.doomed = nil
		l.mu.Unlock()
		if server != nil {
			server.Close()
		}
		l.p.forget(l)
		l.log("closed: %s", why)
		for _, d := range pending {
			l.p.fire(d.r, d.req)
		}
	})
}

func (l *link) log(format string, args ...any) {
	l.p.log("conn %d: "+format, append([]any{l.id}, args...)...)
}
