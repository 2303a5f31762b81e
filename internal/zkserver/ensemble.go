package zkserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoLeader is wrapped by Leader and WaitLeader errors when the running
// members do not agree on a serving leader.
var ErrNoLeader = errors.New("no leader")

// Ensemble is a ZooKeeper ensemble on loopback ports. Member i has myid i+1
// and its directory is zk<i+1> in the ensemble's directory. Its methods are
// safe for concurrent use.
type Ensemble struct {
	members []*Server
	dir     string
	ownsDir bool

	stopOnce sync.Once
	stopErr  error
}

// StartEnsemble runs an ensemble of n members and returns once a leader
// serves and every other member follows it. If ctx has no deadline,
// StartEnsemble gives up after StartTimeout.
func StartEnsemble(ctx context.Context, n int, cfg Config) (*Ensemble, error) {
	if n < 1 {
		return nil, fmt.Errorf("zkserver: an ensemble needs at least one member, not %d", n)
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, StartTimeout)
	defer cancel()

	dir, ownsDir, err := makeDir(cfg, "zkensemble-*")
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		e, err := newEnsemble(dir, ownsDir, n, cfg)
		if err == nil {
			if err = e.start(ctx); err == nil {
				return e, nil
			}
			e.abort()
		}
		if !errors.Is(err, ErrPortInUse) || attempt == bindAttempts || ctx.Err() != nil {
			return nil, errors.Join(err, removeDir(dir, ownsDir))
		}
	}
}

// newEnsemble allocates ports and writes the members' configuration.
func newEnsemble(dir string, ownsDir bool, n int, cfg Config) (*Ensemble, error) {
	w := portsPerServer(cfg, 3)
	ports, err := allocPorts(w * n)
	if err != nil {
		return nil, err
	}
	// Each member's client, peer and election ports, then its secure port.
	all := make([][]int, n)
	for i := range all {
		all[i] = ports[w*i : w*i+w : w*i+w]
	}
	e := &Ensemble{dir: dir, ownsDir: ownsDir}
	for i := range n {
		m := &Server{
			cfg:    cfg,
			dir:    filepath.Join(dir, "zk"+strconv.Itoa(i+1)),
			prefix: "zk" + strconv.Itoa(i+1) + "| ",
			ready:  []string{ModeLeader, ModeFollower, ModeObserver},
			ports:  all[i],
			addr:   loopback(all[i][0]),
		}
		m.setSecureAddr()
		e.members = append(e.members, m)
		err := os.MkdirAll(m.dir, 0o755)
		if err == nil {
			err = os.WriteFile(filepath.Join(m.dir, "myid"), []byte(strconv.Itoa(i+1)+"\n"), 0o644)
		}
		if err != nil {
			err = fmt.Errorf("zkserver: %w", err)
		} else {
			err = m.writeConfig(all)
		}
		if err != nil {
			releasePorts(ports)
			return nil, err
		}
	}
	return e, nil
}

// start launches every member and waits for a leader, failing early if a
// member exits.
func (e *Ensemble) start(ctx context.Context) error {
	procs := make([]*proc, len(e.members))
	for i, m := range e.members {
		p, err := m.launch()
		if err != nil {
			return err
		}
		procs[i] = p
	}
	begin := time.Now()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		probeCtx, cancel := context.WithTimeout(ctx, probeTimeout)
		_, err := e.Leader(probeCtx)
		cancel()
		if err == nil {
			err = e.probeSecure(ctx)
		}
		// Checked after Leader, which ignores members that are not
		// running: a member that died meanwhile must fail the start.
		for i, p := range procs {
			if p.Exited() {
				return e.members[i].exitError(p)
			}
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			var tails strings.Builder
			for i, m := range e.members {
				tails.WriteString(m.runTail(procs[i]))
			}
			return fmt.Errorf("zkserver: ensemble not serving after %v: %w (%w)%s%s",
				time.Since(begin).Round(time.Millisecond), ctx.Err(), err, nettyHint(tails.String()), tails.String())
		case <-tick.C:
		}
	}
}

// probeSecure checks every member's secure port, if any; see probeTLS.
func (e *Ensemble) probeSecure(ctx context.Context) error {
	for _, m := range e.members {
		if err := m.probeSecure(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Members returns the members; member i has myid i+1.
func (e *Ensemble) Members() []*Server { return append([]*Server(nil), e.members...) }

// Member returns member i.
func (e *Ensemble) Member(i int) *Server { return e.members[i] }

// Addrs returns the members' client addresses, 127.0.0.1:port.
func (e *Ensemble) Addrs() []string {
	addrs := make([]string, len(e.members))
	for i, m := range e.members {
		addrs[i] = m.Addr()
	}
	return addrs
}

// SecureAddrs returns the members' TLS client addresses, or nil when the
// ensemble has no TLS.
func (e *Ensemble) SecureAddrs() []string {
	var addrs []string
	for _, m := range e.members {
		if a := m.SecureAddr(); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// SecureConnString is ConnString for the TLS client addresses.
func (e *Ensemble) SecureConnString() string { return strings.Join(e.SecureAddrs(), ",") }

// ConnString returns the client addresses joined by commas, as in a
// ZooKeeper connection string; strings.Split(ConnString(), ",") is the
// servers argument of zk.Connect.
func (e *Ensemble) ConnString() string { return strings.Join(e.Addrs(), ",") }

// Dir returns the directory holding the members' directories.
func (e *Ensemble) Dir() string { return e.dir }

// Leader returns the index of the current leader. It fails, wrapping
// ErrNoLeader, unless one running member reports ModeLeader and all other
// running members report ModeFollower or ModeObserver. Requiring the
// followers too matters after the leader dies: survivors keep reporting
// follower for a few milliseconds before they notice.
func (e *Ensemble) Leader(ctx context.Context) (int, error) {
	modes := make([]string, len(e.members))
	errs := make([]error, len(e.members))
	var wg sync.WaitGroup
	for i, m := range e.members {
		wg.Go(func() { modes[i], errs[i] = m.Mode(ctx) })
	}
	wg.Wait()

	leader, agree := -1, true
	var states []string
	for i := range e.members {
		state := modes[i]
		switch {
		case errors.Is(errs[i], ErrNotRunning):
			state = "not running"
		case errors.Is(errs[i], ErrNotServing):
			state, agree = "not serving", false
		case errs[i] != nil:
			state, agree = errs[i].Error(), false
		case modes[i] == ModeLeader:
			agree = agree && leader < 0
			leader = i
		case modes[i] == ModeFollower, modes[i] == ModeObserver:
		default:
			agree = false
		}
		states = append(states, fmt.Sprintf("zk%d %s", i+1, state))
	}
	if leader < 0 || !agree {
		return -1, fmt.Errorf("zkserver: %w: %s", ErrNoLeader, strings.Join(states, ", "))
	}
	return leader, nil
}

// WaitLeader polls Leader until it succeeds and returns the leader's index.
// If ctx has no deadline, WaitLeader gives up after StartTimeout.
func (e *Ensemble) WaitLeader(ctx context.Context) (int, error) {
	ctx, cancel := withDefaultTimeout(ctx, StartTimeout)
	defer cancel()
	begin := time.Now()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		probeCtx, cancel := context.WithTimeout(ctx, probeTimeout)
		i, err := e.Leader(probeCtx)
		cancel()
		if err == nil {
			return i, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("zkserver: no leader after %v: %w (%w)",
				time.Since(begin).Round(time.Millisecond), ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// Kill kills member i as by Server.Kill.
func (e *Ensemble) Kill(i int) error {
	if err := e.check(i); err != nil {
		return err
	}
	return e.members[i].Kill()
}

// Restart restarts member i as by Server.Restart and returns once it
// serves as leader or follower. It does not wait for the other members:
// call WaitLeader for that.
func (e *Ensemble) Restart(ctx context.Context, i int) error {
	if err := e.check(i); err != nil {
		return err
	}
	return e.members[i].Restart(ctx)
}

func (e *Ensemble) check(i int) error {
	if i < 0 || i >= len(e.members) {
		return fmt.Errorf("zkserver: no member %d in an ensemble of %d", i, len(e.members))
	}
	return nil
}

// Stop stops every member as Server.Stop does and removes the ensemble's
// directory unless it is Config.DataDir. It is idempotent.
func (e *Ensemble) Stop() error {
	e.stopOnce.Do(func() {
		// As Server.Stop: no clean shutdown for data about to be removed.
		grace := stopGrace
		if e.ownsDir {
			grace = 0
		}
		// In parallel, so that a slow shutdown costs its grace period once
		// rather than once per member.
		errs := make([]error, len(e.members)+1)
		var wg sync.WaitGroup
		for i, m := range e.members {
			wg.Go(func() { errs[i] = m.stop(grace, false) })
		}
		wg.Wait()
		errs[len(e.members)] = removeDir(e.dir, e.ownsDir)
		e.stopErr = errors.Join(errs...)
	})
	return e.stopErr
}

// abort kills the members after a failed start and frees their ports for
// the next attempt.
func (e *Ensemble) abort() {
	var wg sync.WaitGroup
	for _, m := range e.members {
		wg.Go(func() {
			if p := m.running(); p != nil {
				p.Stop(0)
			}
			releasePorts(m.ports)
		})
	}
	wg.Wait()
}
