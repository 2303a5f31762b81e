package zkserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	// ErrStopped is returned by operations on a server after Stop.
	ErrStopped = errors.New("zkserver: server stopped")

	// ErrNotRunning is returned by Mode when the JVM is not running, after
	// Kill or a failed Restart.
	ErrNotRunning = errors.New("zookeeper is not running")

	// ErrExited is wrapped by start errors when the JVM exits before it
	// serves; the error text includes the end of its log.
	ErrExited = errors.New("zookeeper exited")

	// ErrPortInUse is wrapped by start errors when ZooKeeper cannot bind one
	// of its ports. Start and StartEnsemble retry on fresh ports; Restart
	// cannot, since clients know the old ones.
	ErrPortInUse = errors.New("port already in use")
)

const (
	// pollInterval paces readiness polling: ZooKeeper serves 0.3-1.5s
	// after launch, so this costs little CPU and adds little latency.
	pollInterval = 25 * time.Millisecond

	// probeTimeout bounds one srvr probe, so that a reply whose connection
	// is left open does not eat the whole start budget.
	probeTimeout = time.Second

	// bindAttempts is how often Start and StartEnsemble try fresh ports
	// when another process took one between our probe and ZooKeeper's bind.
	bindAttempts = 5

	logName = "zookeeper.log"
	cfgName = "zoo.cfg"
)

// Server is one ZooKeeper JVM: a standalone server or an ensemble member.
// Its methods are safe for concurrent use; Stop, Kill and Restart wait for
// one another.
type Server struct {
	cfg     Config
	dir     string
	ownsDir bool // Stop removes dir
	prefix  string
	ready   []string // the modes in which the server counts as serving
	ports   []int    // client port, peer and election ports of a member, then the secure port
	addr    string
	// secureAddr is the TLS client address; "" without Config.TLS.
	secureAddr string

	opMu sync.Mutex // serialises Stop, Kill and Restart

	mu      sync.Mutex // guards the fields below
	proc    *proc      // latest run; nil before the first
	stopped bool
}

// Start runs a standalone ZooKeeper server on a free loopback port, in a new
// directory, and returns once it serves clients. If ctx has no deadline,
// Start gives up after StartTimeout.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, StartTimeout)
	defer cancel()

	dir, ownsDir, err := makeDir(cfg, "zookeeper-*")
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		ports, err := allocPorts(portsPerServer(cfg, 1))
		if err != nil {
			return nil, errors.Join(err, removeDir(dir, ownsDir))
		}
		s := &Server{
			cfg:     cfg,
			dir:     dir,
			ownsDir: ownsDir,
			ready:   []string{ModeStandalone},
			ports:   ports,
			addr:    loopback(ports[0]),
		}
		s.setSecureAddr()
		if err = s.writeConfig(nil); err == nil {
			if err = s.start(ctx); err == nil {
				return s, nil
			}
		}
		releasePorts(ports)
		if !errors.Is(err, ErrPortInUse) || attempt == bindAttempts || ctx.Err() != nil {
			return nil, errors.Join(err, removeDir(dir, ownsDir))
		}
	}
}

// Addr returns the client address, 127.0.0.1:port.
func (s *Server) Addr() string { return s.addr }

// portsPerServer is how many ports a server needs: plain, its client port
// (and a member's peer and election ports), and one more for TLS.
func portsPerServer(cfg Config, plain int) int {
	if cfg.TLS != nil {
		return plain + 1
	}
	return plain
}

func (s *Server) setSecureAddr() {
	if s.cfg.TLS != nil {
		s.secureAddr = loopback(s.securePort())
	}
}

// Dir returns the directory holding the server's data, zoo.cfg and log.
func (s *Server) Dir() string { return s.dir }

// LogPath returns the file that receives the JVM's output across restarts.
func (s *Server) LogPath() string { return filepath.Join(s.dir, logName) }

// LogTail returns at most the last n lines of the log file, for
// diagnostics.
func (s *Server) LogTail(n int) string { return tailFile(s.LogPath(), 0, n) }

// Pid returns the JVM's process id, or 0 when it is not running.
func (s *Server) Pid() int {
	if p := s.running(); p != nil {
		return p.Pid()
	}
	return 0
}

// Mode returns the server's mode as reported by srvr: ModeStandalone,
// ModeLeader, ModeFollower or ModeObserver. It fails with ErrNotServing
// while the server does not serve clients and with ErrNotRunning after Kill.
func (s *Server) Mode(ctx context.Context) (string, error) {
	if s.running() == nil {
		return "", fmt.Errorf("zkserver: %s: %w", s.addr, ErrNotRunning)
	}
	return queryMode(ctx, s.addr)
}

// Stop shuts the server down and removes its directory unless it is
// Config.DataDir. A server whose data is kept gets SIGTERM, then SIGKILL
// after a grace period; one whose data is about to be removed gets SIGKILL
// at once, since a clean shutdown would cost a third of a second and buy
// nothing. Stop is idempotent; after it, the server cannot be restarted.
func (s *Server) Stop() error {
	grace := stopGrace
	if s.ownsDir {
		grace = 0
	}
	return s.stop(grace, s.ownsDir)
}

func (s *Server) stop(grace time.Duration, removeData bool) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	p := s.proc
	s.mu.Unlock()

	if p != nil {
		p.Stop(grace)
	}
	releasePorts(s.ports)
	return removeDir(s.dir, removeData)
}

// Kill sends SIGKILL to the JVM and waits for it to die, as a crash would,
// keeping its data for Restart. Killing a server that is not running does
// nothing.
func (s *Server) Kill() error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.isStopped() {
		return ErrStopped
	}
	if p := s.running(); p != nil {
		p.Stop(0)
	}
	return nil
}

// Restart starts the server again on the same ports with the same data and
// returns once it serves; a running server is shut down first as by Stop.
// An ensemble member serves once it has joined a quorum. If ctx has no
// deadline, Restart gives up after StartTimeout. A failed Restart leaves
// the server not running, to be restarted again or stopped.
func (s *Server) Restart(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.isStopped() {
		return ErrStopped
	}
	if p := s.running(); p != nil {
		p.Stop(stopGrace)
	}
	ctx, cancel := withDefaultTimeout(ctx, StartTimeout)
	defer cancel()
	return s.start(ctx)
}

func (s *Server) isStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// running returns the current run, or nil if the JVM is not running.
func (s *Server) running() *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Exited() {
		return nil
	}
	return s.proc
}

// start launches the JVM and waits until it serves, killing it on failure.
func (s *Server) start(ctx context.Context) error {
	p, err := s.launch()
	if err != nil {
		return err
	}
	if err := s.waitServing(ctx, p); err != nil {
		p.Stop(0)
		return err
	}
	return nil
}

// launch starts a JVM for the server, whose previous run, if any, has
// exited.
func (s *Server) launch() (*proc, error) {
	f, err := os.OpenFile(s.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("zkserver: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("zkserver: %w", err)
	}
	logStart := fi.Size()

	cmd := s.command()
	afterWait := func() {}
	if s.cfg.Log == nil {
		// The JVM writes to the file itself: no copying goroutine, and
		// output written just before a crash is not lost in a pipe.
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		w := &logWriter{file: f, log: s.cfg.Log, prefix: s.prefix}
		// One writer value for both, so os/exec copies through a single
		// goroutine and Write needs no lock.
		cmd.Stdout, cmd.Stderr = w, w
		// Stop copying soon after the JVM exits even if a stray child
		// still holds the pipe, so that Wait cannot hang.
		cmd.WaitDelay = time.Second
		afterWait = func() { w.flush(); f.Close() }
	}
	fmt.Fprintf(f, "=== zkserver %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(cmd.Args, " "))

	p, err := launch(cmd, logStart, afterWait)
	if s.cfg.Log == nil || err != nil {
		// The JVM holds its own descriptor; ours is no longer needed.
		f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("zkserver: start %s: %w", s.cfg.Java, err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return p, nil
}

func (s *Server) command() *exec.Cmd {
	classpath := s.cfg.Jar
	if _, err := os.Stat(slf4jSimpleJar); err == nil {
		classpath += string(filepath.ListSeparator) + slf4jSimpleJar
	}
	if s.cfg.TLS != nil {
		// Next to the jar whose manifest leaves it out; see nettyCodecJar.
		if codec := filepath.Join(filepath.Dir(s.cfg.Jar), nettyCodecJar); fileExists(codec) {
			classpath += string(filepath.ListSeparator) + codec
		}
	}
	cmd := exec.Command(s.cfg.Java,
		// Small heap, serial GC and C1 only: ZooKeeper serves in a third
		// of a second and several JVMs fit on a small CI machine.
		"-Xms32m", fmt.Sprintf("-Xmx%dm", max(s.cfg.Heap>>20, 64)), "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		// No hsperfdata file in /tmp, which a killed JVM would leave.
		"-XX:-UsePerfData",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel="+s.cfg.LogLevel,
		"-Dorg.slf4j.simpleLogger.showDateTime=true",
		"-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
		"-cp", classpath,
		"org.apache.zookeeper.server.quorum.QuorumPeerMain",
		filepath.Join(s.dir, cfgName),
	)
	// A JVM crash report (hs_err_pid*.log) then lands next to the log
	// rather than in the caller's working directory.
	cmd.Dir = s.dir
	return cmd
}

// waitServing polls srvr until the server reports one of s.ready and,
// with TLS, until its secure port answers a handshake.
func (s *Server) waitServing(ctx context.Context, p *proc) error {
	begin := time.Now()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last error
	for {
		err := s.probe(ctx)
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-p.Done():
			return s.exitError(p)
		case <-ctx.Done():
			tail := s.runTail(p)
			return fmt.Errorf("zkserver: %s not serving after %v: %w (last check: %v)%s%s",
				s.addr, time.Since(begin).Round(time.Millisecond), ctx.Err(), last, nettyHint(tail), tail)
		case <-tick.C:
		}
	}
}

// probe checks once that the server serves in one of s.ready.
func (s *Server) probe(ctx context.Context) error {
	probeCtx, cancel := context.WithTimeout(ctx, probeTimeout)
	mode, err := queryMode(probeCtx, s.addr)
	cancel()
	if err != nil {
		return err
	}
	if !slices.Contains(s.ready, mode) {
		return fmt.Errorf("mode %s", mode)
	}
	return s.probeSecure(ctx)
}

// probeSecure checks the secure port, if any; see probeTLS. It has a
// probeTimeout of its own: a JVM's first handshake takes most of one.
func (s *Server) probeSecure(ctx context.Context) error {
	if s.secureAddr == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	return probeTLS(ctx, s.secureAddr)
}

// exitError describes a run that ended before it served.
func (s *Server) exitError(p *proc) error {
	tail := s.runTail(p)
	err := fmt.Errorf("zkserver: %s: %w during start-up (%v)%s", s.addr, ErrExited, p.Err(), tail)
	if strings.Contains(tail, "Address already in use") {
		err = fmt.Errorf("%w: %w", ErrPortInUse, err)
	}
	return err
}

// runTail returns the end of p's output, formatted to close an error.
func (s *Server) runTail(p *proc) string {
	tail := tailFile(s.LogPath(), p.logStart, 30)
	if tail == "" {
		return " (" + s.LogPath() + " is empty)"
	}
	return "\n--- " + s.LogPath() + ":\n" + tail
}

// writeConfig writes zoo.cfg (and myid for an ensemble member). members
// lists each member's client, peer and election ports; nil means
// standalone.
func (s *Server) writeConfig(members [][]int) error {
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	var b bytes.Buffer
	b.WriteString("# Written by zkserver at every start.\n")
	for _, kv := range [][2]string{
		{"tickTime", ms(s.cfg.TickTime)},
		{"minSessionTimeout", ms(s.cfg.MinSessionTimeout)},
		{"maxSessionTimeout", ms(s.cfg.MaxSessionTimeout)},
		{"dataDir", s.dir},
		{"clientPort", strconv.Itoa(s.ports[0])},
		{"clientPortAddress", "127.0.0.1"},
		{"4lw.commands.whitelist", "*"},
		{"admin.enableServer", "false"},
		{"maxClientCnxns", "0"},
		// Left at 0, meaning no limit, it earns a warning in every log.
		{"maxCnxns", "1000000"},
		// Durability is worthless for throw-away test data and fsync
		// dominates write latency on CI disks.
		{"forceSync", "no"},
	} {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
	}
	if s.cfg.TLS != nil {
		props, err := s.writeTLS()
		if err != nil {
			return err
		}
		for _, kv := range props {
			fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
		}
	}
	if members != nil {
		// initLimit and syncLimit count ticks. With short ticks ZooKeeper's
		// usual 10 and 5 would let a CPU-starved CI machine, not a fault,
		// make a leader drop its followers; the wall-clock floors keep
		// that from happening. Killed members are noticed at once anyway,
		// as their connections close.
		fmt.Fprintf(&b, "initLimit=%d\nsyncLimit=%d\n",
			ticksAtLeast(10, 5*time.Second, s.cfg.TickTime), ticksAtLeast(5, 2*time.Second, s.cfg.TickTime))
		// standaloneEnabled=false keeps a one-member ensemble in quorum
		// mode, so it behaves like the larger ones.
		b.WriteString("standaloneEnabled=false\n")
		for i, p := range members {
			fmt.Fprintf(&b, "server.%d=127.0.0.1:%d:%d\n", i+1, p[1], p[2])
		}
	}
	if err := os.WriteFile(filepath.Join(s.dir, cfgName), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("zkserver: %w", err)
	}
	return nil
}

// ticksAtLeast returns the number of ticks that is at least n and lasts at
// least d.
func ticksAtLeast(n int, d, tick time.Duration) int {
	return max(n, int((d+tick-1)/tick))
}

// makeDir returns the directory for a server or ensemble and whether Stop
// must remove it.
func makeDir(cfg Config, pattern string) (dir string, owned bool, err error) {
	if cfg.DataDir != "" {
		dir, err = filepath.Abs(cfg.DataDir)
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
	} else {
		dir, err = os.MkdirTemp(cfg.Dir, pattern)
		owned = true
		if err == nil {
			// zoo.cfg needs an absolute dataDir and ZooKeeper warns about
			// a relative config path.
			dir, err = filepath.Abs(dir)
		}
	}
	if err != nil {
		return "", false, fmt.Errorf("zkserver: %w", err)
	}
	return dir, owned, nil
}

func removeDir(dir string, owned bool) error {
	if !owned {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("zkserver: %w", err)
	}
	return nil
}

// tailFile returns at most the last n lines of path from offset from on.
func tailFile(path string, from int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxTail = 16 << 10
	if fi, err := f.Stat(); err == nil && fi.Size()-from > maxTail {
		from = fi.Size() - maxTail
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return ""
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
