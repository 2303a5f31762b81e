package zkconn_test

import (
	"errors"
	"net"
	"sync"
	"testing"
)

// forwarder is a minimal TCP forwarder between a client and one server,
// for faults that need a network between them: a black hole (bytes stop
// flowing, both ways or only from client to server, and nothing is
// closed, as in a silent partition) and a reset (every connection closed
// at once, the client may reconnect).
type forwarder struct {
	l        net.Listener
	upstream string
	wg       sync.WaitGroup

	mu       sync.Mutex // held while forwarding a chunk, so a hole takes effect at once
	hole     bool       // both ways
	holeUp   bool       // client to server only
	conns    map[net.Conn]struct{}
	accepted int
}

func newForwarder(t *testing.T, upstream string) *forwarder {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{l: l, upstream: upstream, conns: make(map[net.Conn]struct{})}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(func() {
		l.Close()
		f.closeAll()
		f.wg.Wait()
	})
	return f
}

func (f *forwarder) Addr() string { return f.l.Addr().String() }

func (f *forwarder) accept() {
	defer f.wg.Done()
	for {
		down, err := f.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", f.upstream)
		if err != nil {
			down.Close()
			continue
		}
		f.mu.Lock()
		f.accepted++
		f.conns[down], f.conns[up] = struct{}{}, struct{}{}
		f.mu.Unlock()
		f.wg.Add(2)
		go f.copy(up, down, true)
		go f.copy(down, up, false)
	}
}

// copy forwards src to dst until either fails. In a black hole it reads
// and drops, and an end of either side is not passed on.
func (f *forwarder) copy(dst, src net.Conn, toServer bool) {
	defer f.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		f.mu.Lock()
		hole := f.hole || toServer && f.holeUp
		if n > 0 && !hole {
			if _, werr := dst.Write(buf[:n]); werr != nil && err == nil {
				err = werr
			}
		}
		f.mu.Unlock()
		if err != nil {
			if !hole || errors.Is(err, net.ErrClosed) {
				src.Close()
				dst.Close()
			}
			return
		}
	}
}

// blackHole stops all traffic, now and on later connections, closing
// nothing.
func (f *forwarder) blackHole() {
	f.mu.Lock()
	f.hole = true
	f.mu.Unlock()
}

// blackHoleToServer drops what the client sends, now and on later
// connections, and goes on forwarding what the server sends.
func (f *forwarder) blackHoleToServer() {
	f.mu.Lock()
	f.holeUp = true
	f.mu.Unlock()
}

// closeAll closes every connection; new ones are forwarded as before.
func (f *forwarder) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
		delete(f.conns, c)
	}
}

// connections is how many client connections have been accepted.
func (f *forwarder) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted
}
