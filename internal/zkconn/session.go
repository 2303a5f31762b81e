// Package zkconn opens a ZooKeeper session and says when it is lost, and
// when the work it protects must start to stop.
//
// The go-zookeeper client hides session loss: after an expiry it quietly
// opens a new session, and while partitioned it only reports
// "disconnected", so a program learns that its ephemerals are gone at the
// earliest when it reconnects. Session turns this into two signals:
//
//   - Lost closes as soon as the session that was opened can no longer be
//     trusted: the server said it expired, a different session replaced
//     it, or by our own clock the server may have expired it (below).
//   - Endangered closes a stop lead (WithStopLead) before that last
//     instant, and with Lost at the latest. A worker stops its command
//     when it closes, so that the command is dead (TERM, then KILL within
//     the lead) before the server can expire the session and hand the
//     command's item to someone else. Both close once and stay closed.
//
// # Safety argument
//
// The server expires a session one granted session timeout T after it
// last heard from it, never sooner: every packet that arrives from the
// client touches the session, and the expiry is scheduled at that instant
// plus T, rounded up to the server's next tick (in an ensemble the leader
// learns of a touch at a follower later still, and a new leader restarts
// every session's timeout, which only delays expiry). A reply proves that
// its request reached the server, and a request cannot arrive before it
// was sent. So if A is the send time, by our monotonic clock, of the
// latest request the server has answered, the server cannot expire the
// session before A + T by its clock. Session reads A off the client's own
// connections (it wraps the dialer and pairs each reply with its request
// by xid; watch events answer no request and do not count; the client
// pings every T/3, so A advances at least that often on a healthy
// connection) and takes
//
//	EarliestExpiry = A + T - ExpiryMargin(T)
//
// as the first instant the session may be gone. The margin covers what
// the argument leaves out: our timer firing late (scheduling, GC) and the
// two clocks running at slightly different rates. It does not have to
// cover the network or the server's processing time, because A is when a
// request left, not when its reply came back. Lost closes at
// EarliestExpiry and Endangered at EarliestExpiry minus the lead, unless
// a newer answer has moved A on by then.
//
// The deadline runs whether or not the client has noticed a
// disconnection. It notices a silent partition only when nothing at all
// has arrived for its read timeout, 2T/3, and counting from that notice
// is what made the old deadline late: it ran up to 2T/3 past the server's
// own expiry. Nor would a shorter deadline counted from the notice be
// safe: a watch event that arrives just before the partition defers the
// notice to about A + T.
//
// When a connection is restored with the same session, its connect reply
// moves A on and a deadline that has not fired yet is pushed back: a
// disconnection passes unseen if the connect reply of the reconnection
// arrives within T - margin - lead of A (with the default 10s timeout and
// the greatest lead, 6.2s: a leader election, under a second, is ridden
// out).
//
// LastHeard, when the last byte arrived, is for logging only: it is later
// than A by a round trip, or by more when the last packet was a watch
// event or the answer to a slow request, and must not be used as the
// basis of an expiry.
//
// # The overlap that remains
//
//   - A command that does not die within the lead: one in uninterruptible
//     sleep (a hung NFS mount, say) that even SIGKILL cannot end, or one
//     whose process tree the worker cannot reach.
//   - A lead shorter than the worker's kill grace: the lead is capped at
//     T/3 (StopLeadFor), so a worker must kill within StopLead, not within
//     a longer --kill-timeout.
//   - Our process paused (SIGSTOP, a frozen VM, swapping) when the timer
//     is due, or its timers late by more than the margin: it acts only
//     when it runs again.
//   - A server clock that runs faster than ours by more than the margin
//     allows; real clocks differ by parts per million.
//
// The price of the early signal: Endangered also fires on a connection
// that is up but whose replies stall for T - margin - lead since the last
// answered request (at least 2T/3 - margin with the capped lead, leaving
// a reply about T/3 - margin to be late beyond the ping interval), and a
// disconnection that would have been ridden out within T is given up
// margin + lead earlier.
package zkconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/go-zookeeper/zk"
)

// DefaultSessionTimeout trades how quickly a dead worker's timer and lease
// vanish against how long a network blip or a JVM pause may last before a
// healthy worker loses its session and stops its child. Ten seconds is
// etcd's lease default; consul lock uses fifteen.
const DefaultSessionTimeout = 10 * time.Second

// The expiry margin is taken off the server's earliest possible expiry
// (see the package doc) for what the safety argument leaves out: our
// timers firing late and the clocks' rates differing. A twentieth of the
// timeout (0.5s of the default 10s) and at least MinExpiryMargin is far
// more than a timer is late on a sane machine, even under -race; each
// extra millisecond is one less that a partition can last before the
// session is given up. It never exceeds a quarter of the timeout, so that
// tiny timeouts keep a deadline beyond the client's ping interval.
const (
	MinExpiryMargin        = 200 * time.Millisecond
	expiryMarginDivisor    = 20
	maxExpiryMarginDivisor = 4
)

// ExpiryMargin is the margin taken off the earliest possible expiry of a
// session with the given granted timeout.
func ExpiryMargin(timeout time.Duration) time.Duration {
	return min(max(timeout/expiryMarginDivisor, MinExpiryMargin), timeout/maxExpiryMarginDivisor)
}

// maxStopLeadDivisor caps the stop lead at a third of the session timeout.
// The lead is time the command is given to die before the server may
// expire the session, and it is taken from the time a disconnection can
// last unharmed. The cap keeps Endangered's deadline at least
// 2T/3 - margin after the last answered request: beyond the client's ping
// interval (T/3) with T/3 - margin to spare for a slow reply, so that a
// healthy connection never trips it, and long enough that a leader
// election (under a second) or a reconnection to another server is ridden
// out with the default timeout (6.2s of 10s).
const maxStopLeadDivisor = 3

// StopLeadFor is the stop lead a Session uses for the granted timeout
// when asked for grace (WithStopLead): grace, but at most a third of the
// timeout, and not negative. A worker that stops its command with TERM and
// then KILL asks for its kill timeout plus the time a KILL takes to be
// reaped, and then kills within Session.StopLead, which may be shorter
// than its kill timeout: past the lead the server may already have
// expired the session and handed the item on.
func StopLeadFor(timeout, grace time.Duration) time.Duration {
	return max(0, min(grace, timeout/maxStopLeadDivisor))
}

// Option adjusts Dial.
type Option func(*options)

type options struct {
	lead time.Duration
	// dial makes the connections the tracker wraps and hosts hands it
	// the addresses; nil means net.DialTimeout and the client's own
	// DNSHostProvider. WithTLS sets both (tls.go).
	dial  func(network, address string, timeout time.Duration) (net.Conn, error)
	hosts zk.HostProvider
}

// WithStopLead asks for Endangered to close lead before the earliest
// instant the server may expire the session (capped by StopLeadFor once
// the granted timeout is known; Session.StopLead tells the lead in use).
// Without it, or with 0, Endangered closes with Lost.
func WithStopLead(lead time.Duration) Option {
	return func(o *options) { o.lead = lead }
}

// Sentinel errors.
var (
	// ErrUnreachable: no session could be opened in time.
	ErrUnreachable = errors.New("ZooKeeper unreachable")
	// ErrBadServers: the server list cannot be used.
	ErrBadServers = errors.New("bad server list")
	// ErrLost: the session ended while in use.
	ErrLost = errors.New("ZooKeeper session lost")
)

// Session is one ZooKeeper session.
type Session struct {
	conn    *zk.Conn
	log     *slog.Logger
	servers string
	opts    options
	trk     *tracker

	mu           sync.Mutex
	id           int64
	timeout      time.Duration // asked for; the granted one is s.trk.granted
	lostErr      error
	lost         chan struct{}
	endangered   chan struct{}
	isEndangered bool
	ready        chan struct{}
	readyOnce    sync.Once
	watch        *time.Timer // fires at the next deadline; see armLocked
	disconnected bool        // the client reported a disconnection since the last session event
	lastFailed   string      // last connection failure, for the error message
	failures     int         // connection failures before the first session
	addrs        int         // how many servers there are to try
	closed       bool
	early        bool // a session event came before conn was set
}

// ParseServers splits a comma-separated host[:port] list. A host without a
// port gets ZooKeeper's 2181. An optional chroot suffix is refused: zkdog
// takes the job path as --root instead. So is what cannot be dialled: a
// port that is not 1-65535 in digits, a host with a space, a bracket or a
// colon that is no IPv6 address's. Ports are returned in plain decimal.
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
			// No port: the entry is the host, in brackets or not.
			host, port = s, "2181"
			if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
				host = s[1 : len(s)-1]
			}
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.Trim(port, "0123456789") != "" {
			return nil, fmt.Errorf("%w: %q has no valid port (1-65535); give host:port, as in zk1:2181", ErrBadServers, s)
		}
		if why := hostProblem(host); why != "" {
			return nil, fmt.Errorf("%w: %q %s; give host:port, as in zk1:2181", ErrBadServers, s, why)
		}
		out = append(out, net.JoinHostPort(host, strconv.Itoa(n)))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no servers given; set --zk or ZKDOG_ZK to host:port[,host:port...]", ErrBadServers)
	}
	return out, nil
}

// hostProblem says what keeps host from being dialled, "" if nothing
// does: a typo caught here is not dialled until the session timeout.
func hostProblem(host string) string {
	switch {
	case host == "":
		return "has no host"
	case strings.ContainsAny(host, "[]"):
		return "has a stray bracket"
	case strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return "has a space or control character in its host"
	case strings.Contains(host, ":"):
		if _, err := netip.ParseAddr(host); err != nil {
			return "has a colon but is neither host:port nor an IPv6 address"
		}
	}
	return ""
}

// Dial opens a session and returns once the server has granted it, or with
// ErrUnreachable once ctx is done. Callers bound ctx: the client itself
// would retry forever.
func Dial(ctx context.Context, servers string, timeout time.Duration, log *slog.Logger, opts ...Option) (*Session, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addrs, err := ParseServers(servers)
	if err != nil {
		return nil, err
	}
	if addrs, err = resolvable(ctx, addrs, log); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultSessionTimeout
	}
	s := &Session{
		log:        log,
		servers:    strings.Join(addrs, ","),
		addrs:      len(addrs),
		trk:        newTracker(),
		timeout:    timeout,
		lost:       make(chan struct{}),
		endangered: make(chan struct{}),
		ready:      make(chan struct{}),
	}
	for _, o := range opts {
		o(&s.opts)
	}
	dial, hosts := s.opts.dial, s.opts.hosts
	if dial == nil {
		dial = net.DialTimeout
	}
	if hosts == nil {
		hosts = zk.NewDNSHostProvider()
	}
	conn, _, err := zk.Connect(addrs, timeout,
		zk.WithLogger(clientLogger{s}),
		zk.WithEventCallback(s.onEvent),
		// Every connection reports when the server answered; see the
		// safety argument in the package doc.
		zk.WithDialer(s.trk.dialer(dial)),
		zk.WithHostProvider(hosts),
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
		// Timeout is right from the start: the tracker read the granted
		// timeout off the connect reply, before the client reported the
		// session.
		return s, nil
	case <-ctx.Done():
		s.mu.Lock()
		why := s.lastFailed
		s.mu.Unlock()
		conn.Close()
		if why == "" {
			why = "no session granted"
		}
		return nil, fmt.Errorf("%w: no session with %s (%s); start ZooKeeper there, or give the servers that run it with --zk or ZKDOG_ZK",
			ErrUnreachable, s.servers, why)
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
	return s.timeoutLocked()
}

// timeoutLocked is the timeout of the last connect reply for this session,
// or, until there is one, the timeout asked for.
func (s *Session) timeoutLocked() time.Duration {
	if g := s.trk.granted.Load(); g > 0 {
		return time.Duration(g)
	}
	return s.timeout
}

// StopLead is the lead Endangered keeps before the earliest possible
// expiry: the one asked for with WithStopLead, capped by StopLeadFor for
// the granted timeout.
func (s *Session) StopLead() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return StopLeadFor(s.timeoutLocked(), s.opts.lead)
}

// Servers is the server list in use.
func (s *Session) Servers() string { return s.servers }

// Lost is closed when the session can no longer be trusted: the server
// expired it, another session replaced it, or EarliestExpiry has passed
// with no newer answer from the server. Endangered is closed by then.
func (s *Session) Lost() <-chan struct{} { return s.lost }

// Endangered is closed when it is time to stop what the session protects:
// StopLead before EarliestExpiry if no newer answer from the server has
// come by then (whether or not the client has noticed a disconnection),
// and with Lost at the latest. Once closed it stays closed: a connection
// restored after it closed does not reopen it, and the session should be
// treated as lost.
func (s *Session) Endangered() <-chan struct{} { return s.endangered }

// Err says why Lost closed; nil while the session holds.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lostErr
}

// LastHeard is when data last arrived from a server, or the zero time if
// none has. It is for logging: it says nothing safe about expiry (see the
// package doc; EarliestExpiry does).
func (s *Session) LastHeard() time.Time {
	ns := s.trk.heard.Load()
	if ns == 0 {
		return time.Time{}
	}
	return s.trk.at(ns)
}

// EarliestExpiry is the earliest instant the server may expire the
// session given the answers received so far: the send time of the latest
// request the server answered, plus the granted timeout, less
// ExpiryMargin. It moves on with every answer (pings come every third of
// the timeout) and is meaningful whether or not the client is connected;
// ok is false before the session is granted and after Close.
func (s *Session) EarliestExpiry() (t time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id == 0 || s.closed {
		return time.Time{}, false
	}
	return s.earliestExpiryLocked(), true
}

func (s *Session) earliestExpiryLocked() time.Time {
	t := s.timeoutLocked()
	return s.trk.at(s.trk.acked.Load()).Add(t - ExpiryMargin(t))
}

// Close ends the session; the server deletes its ephemerals at once.
// Neither Lost nor Endangered closes for it.
func (s *Session) Close() {
	s.mu.Lock()
	s.closed = true
	if s.watch != nil {
		s.watch.Stop()
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
			// The connect reply has moved EarliestExpiry on; push the
			// deadline back unless it has already fired.
			if s.disconnected && s.lostErr == nil {
				s.log.Info("ZooKeeper connection restored", "server", ev.Server)
			}
			s.disconnected = false
			s.armLocked()
		}
	case zk.StateExpired:
		s.loseLocked(fmt.Errorf("%w: the server expired the session", ErrLost))
	case zk.StateDisconnected:
		if s.id == 0 || s.lostErr != nil {
			return
		}
		if !s.disconnected {
			s.disconnected = true
			s.log.Warn("ZooKeeper connection lost; the session ends unless it is restored in time",
				"within", time.Until(s.earliestExpiryLocked()).Round(time.Millisecond),
				"stop_lead", StopLeadFor(s.timeoutLocked(), s.opts.lead))
		}
		// Fires at once if the deadline has passed by the time the client
		// noticed, as it may have for a silent partition.
		s.armLocked()
	}
}

func (s *Session) openedLocked() {
	s.id = s.conn.SessionID()
	s.trk.session.Store(s.id)
	s.readyOnce.Do(func() { close(s.ready) })
	s.log.Debug("ZooKeeper session opened", "session", fmt.Sprintf("0x%x", s.id), "server", s.conn.Server())
	s.armLocked()
}

// armLocked closes Endangered and Lost if their deadlines have passed and
// otherwise sets the timer for the next one. The timer does not follow
// every answer: when it fires it looks at EarliestExpiry again and, if an
// answer has moved it on, sets itself for the new deadline. On a healthy
// connection that is about once every 2T/3.
func (s *Session) armLocked() {
	if s.closed || s.id == 0 || s.lostErr != nil {
		return
	}
	now := time.Now()
	expiry := s.earliestExpiryLocked()
	lead := StopLeadFor(s.timeoutLocked(), s.opts.lead)
	if !s.isEndangered && !now.Before(expiry.Add(-lead)) {
		s.endangerLocked(expiry, lead)
	}
	if !now.Before(expiry) {
		t := s.timeoutLocked()
		s.loseLocked(fmt.Errorf("%w: no answer from the server for the session timeout (%v) less a %v safety margin; the server may have expired the session",
			ErrLost, t, ExpiryMargin(t)))
		return
	}
	next := expiry
	if !s.isEndangered {
		next = expiry.Add(-lead)
	}
	if s.watch == nil {
		s.watch = time.AfterFunc(next.Sub(now), s.checkDeadline)
	} else {
		s.watch.Reset(next.Sub(now))
	}
}

func (s *Session) checkDeadline() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armLocked()
}

func (s *Session) endangerLocked(expiry time.Time, lead time.Duration) {
	s.isEndangered = true
	if lead > 0 {
		s.log.Warn("ZooKeeper session endangered: the server may expire it soon; stop what it protects",
			"within", time.Until(expiry).Round(time.Millisecond), "stop_lead", lead)
	}
	close(s.endangered)
}

func (s *Session) loseLocked(err error) {
	if s.lostErr != nil {
		return
	}
	if !s.isEndangered {
		// Endangered first: whoever sees Lost closed sees Endangered too.
		s.isEndangered = true
		close(s.endangered)
	}
	s.lostErr = err
	if s.watch != nil {
		s.watch.Stop()
	}
	s.log.Warn("ZooKeeper session lost", "err", err)
	close(s.lost)
}

// clientLogger routes the client's printf logging to slog at debug level
// and picks up what the client knows and does not export.
type clientLogger struct{ s *Session }

func (l clientLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	// What the message tells is taken before it is logged.
	if strings.HasPrefix(msg, "failed to connect") {
		l.s.failedToConnect(msg)
	}
	l.s.log.Debug("zk: " + msg)
}

// failedToConnect notes a connection that failed. Once every server has
// failed before the first session, it says so at once, rather than
// leaving the caller silent until its bound on connecting: the usual cause
// is no ZooKeeper at the address, and the client goes on trying.
func (s *Session) failedToConnect(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastFailed = shortFailure(msg)
	if s.id != 0 {
		return
	}
	s.failures++
	if s.failures == s.addrs {
		s.log.Warn("cannot reach ZooKeeper yet; still trying", "servers", s.servers, "err", s.lastFailed)
	}
}

// shortFailure turns the client's "failed to connect to ADDR: dial tcp
// ADDR: connect: connection refused" into "ADDR: connection refused";
// other failures (a TLS handshake's) keep their words.
func shortFailure(msg string) string {
	rest, ok := strings.CutPrefix(msg, "failed to connect to ")
	if !ok {
		return msg
	}
	addr, _, _ := strings.Cut(rest, ": ")
	return strings.Replace(rest, ": dial tcp "+addr+": connect: ", ": ", 1)
}

// resolvable keeps the servers whose names resolve. One name that does not
// (a decommissioned server, a typo) is skipped with a warning, as the
// others can carry the session; the client itself would refuse the whole
// list. Only when no name resolves is it an error.
func resolvable(ctx context.Context, addrs []string, log *slog.Logger) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		host, _, _ := net.SplitHostPort(a)
		if _, err := netip.ParseAddr(host); err == nil {
			continue
		}
		wg.Go(func() {
			_, errs[i] = net.DefaultResolver.LookupHost(ctx, host)
		})
	}
	wg.Wait()
	var ok, bad []string
	for i, a := range addrs {
		if errs[i] == nil {
			ok = append(ok, a)
			continue
		}
		bad = append(bad, fmt.Sprintf("%s (%s)", a, lookupProblem(errs[i])))
	}
	if len(ok) == 0 {
		return nil, fmt.Errorf("%w: no server's name resolves: %s; check the names in --zk or ZKDOG_ZK",
			ErrBadServers, strings.Join(bad, ", "))
	}
	for _, b := range bad {
		log.Warn("skipping a ZooKeeper server whose name does not resolve; the others carry the session", "server", b)
	}
	return ok, nil
}

// lookupProblem is a lookup error without the resolver's own wording
// around it ("lookup zk9 on 127.0.0.53:53: no such host").
func lookupProblem(err error) string {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		if dns.IsNotFound {
			return "no such host"
		}
		return dns.Err
	}
	return err.Error()
}
