package supervise

import (
	"context"
	"os"
	"time"
)

// DefaultInterval is the sampling period of a Monitor whose config leaves
// it zero. A watchdog limit is minutes long; a second of detection delay
// is nothing against that, and one sample a second of a small tree costs
// a few hundredths of a percent of a core.
const DefaultInterval = time.Second

// rescanEvery is how often, in samples, the Monitor forgets which pids it
// found to be outside the tree and reads all of them again; see sampleTree.
const rescanEvery = 30

// MonitorConfig says what a Monitor looks for.
type MonitorConfig struct {
	// Interval between samples; zero means DefaultInterval.
	Interval time.Duration
	// Kinds of activity to look for and report; zero means ActivityAll.
	Kinds Activity
	// Files are watched for ActivityFile: a file (or directory) counts as
	// changed when it appears, disappears, is replaced, or its size or
	// modification time changes.
	Files []string
	// KickFile is watched the same way for ActivityKick.
	KickFile string
	// Output is the Counter given to Start as Config.Output, watched for
	// ActivityOutput.
	Output *Counter
}

// Monitor samples a process tree for signs of progress. See Run.
type Monitor struct {
	pid  int
	self int // our own pid, the parent of orphans we adopted
	cfg  MonitorConfig
	src  procSource

	samples     int
	rootStart   uint64
	groupLeader bool

	procs   map[int]procState // tree members at the previous sample
	next    map[int]procState // scratch for the current sample
	foreign map[int]uint32    // pids outside the tree → generation last listed
	gen     uint32
	member  map[int]bool // scratch
	pidBuf  []int
	read    []procEntry
	output  uint64
	files   []watchedFile

	afterSample func(Activity) // test hook: every sample, after progress
}

// procState is what is remembered of one tree member between samples.
type procState struct {
	start uint64 // tells a recycled pid from the process we knew
	cpu   uint64
	io    uint64
	ioOK  bool
}

type procEntry struct {
	pid int
	st  procStat
}

type watchedFile struct {
	path  string
	kind  Activity
	stamp fileStamp
}

// NewMonitor returns a Monitor for the process tree rooted at pid: the
// process, its descendants as they come and go, and, if pid leads a
// process group (as a Child does), the members of that group, which
// catches grandchildren whose parent exited under them. A process once
// seen in the tree stays in it when its parent exits. On Linux, when pid
// is a Child's, the tree also has the orphans zkdog adopted from it as a
// subreaper (see Start), even those that left the group (a daemon's
// setsid and double fork) before a sample could see them; elsewhere such
// a descendant is lost to the monitor unless a sample saw it first.
func NewMonitor(pid int, cfg MonitorConfig) *Monitor {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Kinds == 0 {
		cfg.Kinds = ActivityAll
	}
	m := &Monitor{
		pid:     pid,
		self:    os.Getpid(),
		cfg:     cfg,
		src:     defaultSource(),
		procs:   make(map[int]procState),
		next:    make(map[int]procState),
		foreign: make(map[int]uint32),
		member:  make(map[int]bool),
	}
	if cfg.Kinds&ActivityFile != 0 {
		for _, p := range cfg.Files {
			m.files = append(m.files, watchedFile{path: p, kind: ActivityFile})
		}
	}
	if cfg.Kinds&ActivityKick != 0 && cfg.KickFile != "" {
		m.files = append(m.files, watchedFile{path: cfg.KickFile, kind: ActivityKick})
	}
	return m
}

// Run samples the tree every Interval until ctx is done (returning
// ctx.Err()) or the root process has exited (returning nil). After each
// sample that showed any of the configured kinds, it calls progress with
// them. progress runs on Run's goroutine and delays the next sample while
// it runs: it should only record the fact (set a flag, do a non-blocking
// channel send).
//
// The first sample sets the baselines and can report only ActivityAlive;
// every later one reports what changed since the one before:
//
//   - cpu: a member's user+system CPU time grew. Each process is compared
//     with itself (by pid and start time), so a member exiting never
//     cancels another's growth out; a process born since the last sample
//     counts with all the time it has. The times include those of reaped
//     children, so a short-lived process that came and went between two
//     samples still counts, when its parent reaps it.
//   - io: a member's bytes read or written grew: rchar/wchar of
//     /proc/PID/io, which count every read and write (files, the page
//     cache, pipes, sockets, network file systems), and read_bytes/
//     write_bytes, which add what rchar/wchar miss (mmap page-ins,
//     storage write-back). These too include reaped children. Starting a
//     program counts: loading it reads files.
//   - output: the Counter grew.
//   - file, kick: a watched file changed (see MonitorConfig.Files).
//   - alive: the root process is alive, every sample.
//
// A child blocked (in read, wait, sleep, a lock) or stopped shows none of
// cpu, io, output. A polling loop does: waking up costs CPU time and
// starting `sleep` reads files. That is what the kick file is for.
//
// A Monitor must not run more than one Run at a time.
func (m *Monitor) Run(ctx context.Context, progress func(Activity)) error {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		act, alive := m.sample()
		if alive && act != 0 && progress != nil {
			progress(act)
		}
		if m.afterSample != nil {
			m.afterSample(act)
		}
		if !alive {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// sample takes one sample and reports the activity seen since the
// previous one and whether the root process is alive.
func (m *Monitor) sample() (Activity, bool) {
	first := m.samples == 0
	m.samples++

	var act Activity
	var alive bool
	if m.cfg.Kinds&(ActivityCPU|ActivityIO) != 0 {
		act, alive = m.sampleTree(first)
	} else {
		alive = m.rootAlive(first)
	}
	if !alive {
		return 0, false
	}
	if m.cfg.Kinds&ActivityOutput != 0 {
		n := m.cfg.Output.Load()
		if !first && n != m.output {
			act |= ActivityOutput
		}
		m.output = n
	}
	for i := range m.files {
		f := &m.files[i]
		s := stampFile(f.path)
		if !first && !s.same(f.stamp) {
			act |= f.kind
		}
		f.stamp = s
	}
	if m.cfg.Kinds&ActivityAlive != 0 {
		act |= ActivityAlive
	}
	return act & m.cfg.Kinds, true
}

// isRoot reports whether st is the root process we started with,
// remembering its identity on the first sample.
func (m *Monitor) isRoot(st procStat, first bool) bool {
	if first {
		m.rootStart = st.start
		m.groupLeader = st.pgid == m.pid
		return true
	}
	return sameStart(m.rootStart, st.start, m.src.startSlack())
}

func (m *Monitor) rootAlive(first bool) bool {
	st, err := m.src.stat(m.pid)
	return err == nil && m.isRoot(st, first) && !st.zombie
}

// sampleTree finds the tree's members and compares their counters.
//
// Finding descendants means knowing every process's parent, and finding
// group members every process's group; both take a read of each
// /proc/PID/stat (gopsutil's Children does the same scan). To keep the
// cost near that of the tree alone, a pid found to be outside the tree
// is not read again while it stays listed: a process can only join the
// tree by being born into it (a new pid, even if it is re-parented to us
// before we list it) or by setpgid into the group from the same
// session, which nothing does. Every rescanEvery samples all pids are
// read again anyway, which also catches a pid recycled from an outsider
// to a new member between two listings.
func (m *Monitor) sampleTree(first bool) (Activity, bool) {
	pids, err := m.src.pids(m.pidBuf[:0])
	m.pidBuf = pids
	if err != nil {
		return 0, m.rootAlive(first)
	}
	if (m.samples-1)%rescanEvery == 0 {
		clear(m.foreign)
	}
	m.gen++
	read := m.read[:0]
	for _, pid := range pids {
		if _, out := m.foreign[pid]; out {
			m.foreign[pid] = m.gen
			continue
		}
		st, err := m.src.stat(pid)
		if err != nil {
			continue // gone since the listing
		}
		read = append(read, procEntry{pid, st})
	}
	m.read = read
	for pid, g := range m.foreign {
		if g != m.gen {
			delete(m.foreign, pid)
		}
	}

	clear(m.member)
	alive := false
	for _, e := range read {
		if e.pid == m.pid {
			if !m.isRoot(e.st, first) {
				return 0, false
			}
			alive = !e.st.zombie
			m.member[e.pid] = true
		}
	}
	if !alive {
		return 0, false
	}
	slack := m.src.startSlack()
	for _, e := range read {
		switch prev, seen := m.procs[e.pid]; {
		case m.groupLeader && e.st.pgid == m.pid:
			m.member[e.pid] = true
		case seen && sameStart(prev.start, e.st.start, slack):
			// A member whose parent exited is still the tree's, wherever
			// it was re-parented and whatever group it is in now.
			m.member[e.pid] = true
		case e.st.ppid == m.self && e.pid != m.pid && claimed(m.pid, e.pid):
			// Re-parented to us (a subreaper) before we saw it.
			m.member[e.pid] = true
		}
	}
	// Parents usually come before their children in the listing, so this
	// settles in a pass or two.
	for changed := true; changed; {
		changed = false
		for _, e := range read {
			if !m.member[e.pid] && m.member[e.st.ppid] {
				m.member[e.pid] = true
				changed = true
			}
		}
	}

	wantIO := m.cfg.Kinds&ActivityIO != 0
	var act Activity
	for _, e := range read {
		if !m.member[e.pid] {
			m.foreign[e.pid] = m.gen
			continue
		}
		cur := procState{start: e.st.start, cpu: e.st.cpu}
		if wantIO {
			n, err := m.src.ioBytes(e.pid)
			cur.io, cur.ioOK = n, err == nil
		}
		prev, seen := m.procs[e.pid]
		switch {
		case seen && sameStart(prev.start, cur.start, slack):
			if cur.cpu > prev.cpu {
				act |= ActivityCPU
			}
			if cur.ioOK && prev.ioOK && cur.io > prev.io {
				act |= ActivityIO
			}
		case !first:
			// Born since the last sample: everything it did is new.
			if cur.cpu > 0 {
				act |= ActivityCPU
			}
			if cur.ioOK && cur.io > 0 {
				act |= ActivityIO
			}
		}
		m.next[e.pid] = cur
	}
	m.procs, m.next = m.next, m.procs
	clear(m.next)
	return act, true
}

func sameStart(a, b, slack uint64) bool {
	if a > b {
		a, b = b, a
	}
	return b-a <= slack
}

// fileStamp is what tells a changed file from an unchanged one.
type fileStamp struct {
	fi os.FileInfo // nil if the file does not exist (or cannot be stat'ed)
}

func stampFile(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi}
}

// same compares modification time, size and identity (a file replaced by
// rename is another file even with the same stamp). A touch within the
// file system's timestamp granularity of the previous one goes unseen;
// Linux file systems keep nanoseconds, updated at the kernel's tick.
func (s fileStamp) same(o fileStamp) bool {
	if s.fi == nil || o.fi == nil {
		return s.fi == nil && o.fi == nil
	}
	return s.fi.ModTime().Equal(o.fi.ModTime()) && s.fi.Size() == o.fi.Size() &&
		os.SameFile(s.fi, o.fi)
}
