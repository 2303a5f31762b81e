package zkproxy

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
)

// Proxy forwards ZooKeeper client connections to one upstream server and
// injects the faults its rules describe. Its methods may be called from
// any goroutine, while traffic flows.
type Proxy struct {
	upstream string
	ln       net.Listener
	logf     func(format string, args ...any)
	quit     chan struct{} // closed by Close
	wg       sync.WaitGroup

	mu          sync.Mutex
	closed      bool
	rules       []*Rule
	links       map[*link]struct{}
	nextID      int
	partitioned bool
	healed      chan struct{} // closed while not partitioned
}

// Option configures a Proxy.
type Option func(*Proxy)

// WithLogf has the proxy report connections, the faults it injects and
// partitions through logf, t.Logf for example. Close waits for the
// proxy's goroutines, so logf is not called after Close returns.
func WithLogf(logf func(format string, args ...any)) Option {
	return func(p *Proxy) { p.logf = logf }
}

// Start listens on a free loopback port and forwards every connection it
// accepts to upstream, a host:port.
func Start(upstream string, opts ...Option) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("zkproxy: %w", err)
	}
	p := &Proxy{
		upstream: upstream,
		ln:       ln,
		quit:     make(chan struct{}),
		links:    map[*link]struct{}{},
		healed:   make(chan struct{}),
	}
	close(p.healed)
	for _, o := range opts {
		o(p)
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// ForTest starts a proxy to upstream that logs through t and is closed
// when the test ends, and fails the test if it cannot start.
func ForTest(t testing.TB, upstream string) *Proxy {
	t.Helper()
	p, err := Start(upstream, WithLogf(t.Logf))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Addr is the address clients should connect to, as "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Conns is the number of client connections open through the proxy,
// those that a partition holds short of the server included.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Close stops accepting, closes every connection, heals any partition and
// returns once all of the proxy's goroutines have ended.
func (p *Proxy) Close() error {
	p.mu.Lock()
	first := !p.closed
	if first {
		p.closed = true
		close(p.quit)
	}
	p.mu.Unlock()
	var err error
	if first {
		err = p.ln.Close()
		p.closeLinks("proxy closed")
		// Only now, so that no held connection is let through to the
		// server on the way out.
		p.Heal()
	}
	p.wg.Wait()
	return err
}

// DropAll closes every current connection at once, both sides, as a
// server restart would; clients reconnect through the proxy. It acts
// even during a partition.
func (p *Proxy) DropAll() { p.closeLinks("dropped by DropAll") }

func (p *Proxy) closeLinks(why string) {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close(why)
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.quit:
			default:
				p.log("accept: %v; no longer accepting", err)
			}
			return
		}
		p.startLink(c)
	}
}

func (p *Proxy) startLink(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return
	}
	p.nextID++
	ctx, cancel := context.WithCancel(context.Background())
	l := &link{p: p, id: p.nextID, client: c, ctx: ctx, cancel: cancel, doomed: map[int32]doom{}}
	p.links[l] = struct{}{}
	// Added under mu, so never after Close has begun to wait.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		l.run()
	}()
}

func (p *Proxy) forget(l *link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.links, l)
}

func (p *Proxy) log(format string, args ...any) {
	if p.logf != nil {
		p.logf("zkproxy: "+format, args...)
	}
}
