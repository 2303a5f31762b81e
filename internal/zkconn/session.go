// Package zkconn opens a ZooKeeper session and says when it is lost.
//
// The go-zookeeper client hides session loss: after an expiry it quietly
// opens a new session, and while partitioned it only reports
// "disconnected", so a program learns that its ephemerals are gone at the
// earliest when it reconnects. Session turns both into one signal, Lost,
// which closes as soon as the session that was opened can no longer be
// trusted: the server said it expired, a different session replaced it, or
// the client has been disconnected for a whole session timeout by its own
// clock.
package zkconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// DefaultSessionTimeout trades how quickly a dead worker's timer and lease
// vanish against how long a network blip or a JVM pause may last before a
// healthy worker loses its session and stops its child. Ten seconds is
// etcd's lease default; consul lock uses fifteen.
const DefaultSessionTimeout = 10 * time.Second

// Sentinel errors.
var (
	// ErrUnreachable: no session could be opened in time.
	ErrUnreachable = errors.New("zkconn: ZooKeeper unreachable")
	// ErrBadServers: the server list cannot be used.
	ErrBadServers = errors.New("zkconn: bad server list")
	// ErrLost: the session ended while in use.
	ErrLost = errors.New("zkconn: ZooKeeper session lost")
)

// Session is one ZooKeeper session.
type Session struct {
	conn    *zk.Conn
	log     *slog.Logger
	servers string

	mu         sync.Mutex
	id         int64
	timeout    time.Duration // negotiated with the server once known
	lostErr    error
	lost       chan struct{}
	ready      chan struct{}
	readyOnce  sync.Once
	granted    chan struct{} // closed once the granted timeout is known
	grantOnce  sync.Once
	deadline   *time.Timer // runs while disconnected
	lastFailed string      // last connection failure, for the error message
	closed     bool
	early      bool // a session event came before conn was set
}

// ParseServers splits a comma-separated host[:port] list. A host without a
// port gets ZooKeeper's 2181. An optional chroot suffix is refused: zkdog
// takes the job path as --root instead.
func ParseServers(list string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			return nil, fmt.Errorf("%w: %q has a path; give the path with --root instead", ErrBadServers, s)
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			host, port = strings.Trim(s, "[]"), "2181"
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: %q has no valid port (1-65535); give host:port, as in zk1:2181", ErrBadServers, s)
		}
		if host == "" {
			return nil, fmt.Errorf("%w: %q has no host; give host:port, as in zk1:2181", ErrBadServers, s)
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no servers given; set --zk or ZKDOG_ZK to host:port[,host:port...]", ErrBadServers)
	}
	return out, nil
}

// Dial opens a session and returns once the server has granted it, or with
// ErrUnreachable once ctx is done. Callers bound ctx: the client itself
// would retry forever.
func Dial(ctx context.Context, servers string, timeout time.Duration, log *slog.Logger) (*Session, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addrs, err := ParseServers(servers)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultSessionTimeout
	}
	s := &Session{
		log:     log,
		servers: strings.Join(addrs, ","),
		timeout: timeout,
		lost:    make(chan struct{}),
		ready:   make(chan struct{}),
		granted: make(chan struct{}),
	}
	conn, _, err := zk.Connect(addrs, timeout,
		zk.WithLogger(clientLogger{s}),
		zk.WithEventCallback(s.onEvent),
		// Bound what a reply may make us allocate; the server's own
		// jute.maxbuffer default is the natural size.
		zk.WithMaxBufferSize(4<<20),
	)
	if err != nil {
		// The client resolves names once, up front.
		return nil, fmt.Errorf("%w: %s: %v", ErrBadServers, servers, err)
	}
	s.mu.Lock()
	s.conn = conn
	if s.early {
		// The session arrived before Connect returned.
		s.openedLocked()
	}
	s.mu.Unlock()
	select {
	case <-s.ready:
		// The client logs the timeout the server granted just after it
		// reports the session; wait for it so that Timeout is right from
		// the start. It never fails to come, but is not worth a hang.
		select {
		case <-s.granted:
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		return s, nil
	case <-ctx.Done():
		s.mu.Lock()
		why := s.lastFailed
		s.mu.Unlock()
		conn.Close()
		if why == "" {
			why = "no session granted"
		}
		return nil, fmt.Errorf("%w: no session with %s (%s); check --zk and that ZooKeeper is running", ErrUnreachable, s.servers, why)
	}
}

// Conn is the client connection, for requests.
func (s *Session) Conn() *zk.Conn { return s.conn }

// ID is the session id the server granted first. Znodes whose
// EphemeralOwner differs are not ours, whatever their data says.
func (s *Session) ID() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// Timeout is the session timeout the server granted, which may differ from
// the one asked for (the server clamps it to its min and max).
func (s *Session) Timeout() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.timeout
}

// Servers is the server list in use.
func (s *Session) Servers() string { return s.servers }

// Lost is closed when the session can no longer be trusted.
func (s *Session) Lost() <-chan struct{} { return s.lost }

// Err says why Lost closed; nil while the session holds.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lostErr
}

// Close ends the session; the server deletes its ephemerals at once.
func (s *Session) Close() {
	s.mu.Lock()
	s.closed = true
	if s.deadline != nil {
		s.deadline.Stop()
	}
	s.mu.Unlock()
	s.conn.Close()
}

// onEvent runs on the client's receive goroutine and must not block.
func (s *Session) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	switch ev.State {
	case zk.StateHasSession:
		if s.conn == nil {
			s.early = true
			return
		}
		id := s.conn.SessionID()
		switch {
		case s.id == 0:
			s.openedLocked()
		case id != s.id:
			s.loseLocked(fmt.Errorf("%w: the session expired and the client opened another", ErrLost))
		default:
			if s.deadline != nil {
				s.deadline.Stop()
				s.deadline = nil
				s.log.Info("ZooKeeper connection restored", "server", ev.Server)
			}
		}
	case zk.StateExpired:
		s.loseLocked(fmt.Errorf("%w: the server expired the session", ErrLost))
	case zk.StateDisconnected:
		if s.id != 0 && s.deadline == nil && s.lostErr == nil {
			// The server expires us one session timeout after it last
			// heard from us, which is no earlier than our last reply, so
			// by our own clock this deadline is never late.
			s.log.Warn("ZooKeeper connection lost; the session ends unless it is restored in time", "within", s.timeout)
			s.deadline = time.AfterFunc(s.timeout, func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.deadline != nil && !s.closed {
					s.loseLocked(fmt.Errorf("%w: disconnected for the whole session timeout (%v)", ErrLost, s.timeout))
				}
			})
		}
	}
}

func (s *Session) openedLocked() {
	s.id = s.conn.SessionID()
	s.readyOnce.Do(func() { close(s.ready) })
	s.log.Debug("ZooKeeper session opened", "session", fmt.Sprintf("0x%x", s.id), "server", s.conn.Server())
}

func (s *Session) loseLocked(err error) {
	if s.lostErr != nil {
		return
	}
	s.lostErr = err
	if s.deadline != nil {
		s.deadline.Stop()
		s.deadline = nil
	}
	s.log.Warn("ZooKeeper session lost", "err", err)
	close(s.lost)
}

// negotiated matches the client's log line that carries the timeout the
// server granted; the client exposes it nowhere else.
var negotiated = regexp.MustCompile(`authenticated: id=(-?\d+), timeout=(\d+)`)

// clientLogger routes the client's printf logging to slog at debug level
// and picks up what the client knows and does not export.
type clientLogger struct{ s *Session }

func (l clientLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	// What the message tells is taken before it is logged: a slow log
	// must not delay Dial's return.
	if m := negotiated.FindStringSubmatch(msg); m != nil {
		if ms, err := strconv.Atoi(m[2]); err == nil && ms > 0 {
			l.s.mu.Lock()
			l.s.timeout = time.Duration(ms) * time.Millisecond
			l.s.mu.Unlock()
		}
		l.s.grantOnce.Do(func() { close(l.s.granted) })
	} else if strings.HasPrefix(msg, "failed to connect") {
		l.s.mu.Lock()
		l.s.lastFailed = msg
		l.s.mu.Unlock()
	}
	l.s.log.Debug("zk: " + msg)
}
