//go:build linux

package supervise

import (
	"bytes"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// This file keeps track of every process that descends from a command
// supervise started, including the ones a process group does not hold:
// a `setsid` (a daemon's double fork) leaves both the group and the
// session. Three things need that: a stop, which must leave no such
// process running; the Monitor, whose progress they make; and reaping.
//
// Before the first child is started the process makes itself a child
// subreaper (PR_SET_CHILD_SUBREAPER). A descendant whose parent exits is
// then re-parented to us instead of init, so it stays findable by its
// parent links, and it becomes our zombie when it exits. Nobody else will
// wait for it, so we must.
//
// # Who may be reaped
//
// Reaping a process that os/exec waits for would make that Wait fail, and
// the leader of a supervised command is exactly such a process (its
// exit status is what Exit reports). So supervise never calls wait with
// pid -1; it calls wait4(pid, WNOHANG) for one pid at a time, and only
// for a pid that, with registry.mu held, is
//
//  1. a child of ours (its ppid is our pid in /proc), and
//  2. not a leader: not in registry.leaders. A leader is put there by
//     startChild, which forks it with registry.mu held, so no reaper can
//     see it before it is there, and taken out by forget only after its
//     cmd.Wait has returned, so no reaper can see it unlisted while
//     os/exec still has to wait for it; and
//  3. adopted: in the tree of a supervised command (in the ledger, or in
//     the group of a leader that is still there), or in a session other
//     than ours. A child that os/exec or anything else in this program
//     started on purpose is in our session; a process in another one is
//     a re-parented orphan: only a program that starts children with
//     Setsid itself, and not through supervise, breaks this (zkdog starts
//     none; a test binary's ZooKeeper gets Setpgid, not Setsid).
//
// What rule 3 leaves out is never reaped by us and stays a zombie until
// we exit: an orphan that moved to a group of its own in our session (job
// control, `set -m`) before any scan saw it in the tree.
//
// While registry.mu is held no other goroutine of ours reaps an adopted
// child, so its pid cannot be recycled under a signal we send it.
//
// # Whose a process is
//
// A scan (scanLocked) reads the whole process table and gives each
// process the Child whose tree it is in: a leader its Child; a process
// known from an earlier scan (the ledger: pid and start time, so a
// recycled pid is not mistaken for it) its old owner; a member of the
// group of a leader still there, that Child; an adopted child in another
// session, the newest command started before it was (it left its group
// and lost its parent before any scan saw it, so that is the best guess
// there is; right for zkdog, which runs one command at a time); and
// every other process, the owner of its parent. The result goes back into
// the ledger, so a process once seen keeps its owner when its parent
// exits, and the orphans one command leaves behind are not taken for the
// next one's.
var procs registry

// reapBackstop is how often the reaper looks for zombies without being
// told of one. SIGCHLD (while we may have adopted children, see loop),
// and the wake-up after each cmd.Wait, should be enough; this only bounds
// the damage of a case not thought of, and how long an orphan that exits
// while its command still runs stays a zombie.
const reapBackstop = 5 * time.Second

// killRounds bounds how many times a stop re-reads the process table to
// catch processes forked by the ones it has just KILLed.
const killRounds = 100

type registry struct {
	once      sync.Once
	self, sid int  // our pid and session
	subreaper bool // PR_SET_CHILD_SUBREAPER took
	wake      chan struct{}

	mu      sync.Mutex
	leaders map[int]*Child // pid → child, from its fork until its cmd.Wait returned
	ledger  map[int]member // pid → owner, of the processes scans attributed to a child
	src     *procfs
	pidBuf  []int
}

type member struct {
	start uint64
	owner *Child
}

// table is one scan of the process table.
type table struct {
	stats map[int]procStat
	owner map[int]*Child // nil for a process in no supervised tree
	// adopted lists our children that pass rules 1-3 of "Who may be
	// reaped", alive or not.
	adopted []int
}

func (r *registry) init() {
	r.self = os.Getpid()
	sid, _, errno := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	r.sid = int(sid)
	if errno != 0 {
		r.sid = -1 // no process is in session -1: rule 3 then admits our children in no session at all
	}
	r.leaders = make(map[int]*Child)
	r.ledger = make(map[int]member)
	r.src = newProcfs()
	r.wake = make(chan struct{}, 1)
	r.subreaper = becomeSubreaper() == nil
	go r.loop()
}

// startChild starts c's command, once this process is a subreaper and
// reaps, and registers its leader (rule 2). It runs on the forker thread.
func startChild(c *Child) error {
	r := &procs
	r.once.Do(r.init)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := c.cmd.Start(); err != nil {
		return err
	}
	c.pid = c.cmd.Process.Pid
	// The leader cannot have been reaped yet: only c's own goroutine will
	// Wait for it, after this returns.
	if st, err := r.src.stat(c.pid); err == nil {
		c.start = st.start
	}
	r.leaders[c.pid] = c
	return nil
}

// forget unregisters c's leader once cmd.Wait has reaped it, and wakes
// the reaper: the leader's zombie may have hidden others from its quick
// check.
func (c *Child) forget() {
	r := &procs
	r.mu.Lock()
	if r.leaders[c.pid] == c {
		delete(r.leaders, c.pid)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// loop reaps on every wake-up. It listens for SIGCHLD only while we may
// have adopted children: with none, every SIGCHLD is a leader's, which
// os/exec waits for and forget wakes us after anyway, and a subscription
// would wake the signal-handling goroutine at every command's exit, just
// as the command's own relay subscription is stopped: signal.Stop then
// spins until that goroutine is idle again, which for a loop over short
// commands cost more than the rest of a start. An orphan adopted while
// its command runs, and exiting before the command does, is reaped when
// the command exits (forget), or at the latest by the backstop. Without
// a children file in /proc, we may always have adopted children: SIGCHLD
// is then listened for throughout.
func (r *registry) loop() {
	sigchld := make(chan os.Signal, 1)
	watching := false
	t := time.NewTicker(reapBackstop)
	defer t.Stop()
	for {
		select {
		case <-sigchld:
		case <-r.wake:
		case <-t.C:
		}
		r.reap()
		if want := r.mayHaveAdopted(); want != watching {
			watching = want
			if !want {
				signal.Stop(sigchld)
				continue
			}
			signal.Notify(sigchld, syscall.SIGCHLD)
			// One that exited before the subscription sent no signal here.
			r.reap()
		}
	}
}

// mayHaveAdopted reports whether we may have a child that is not a leader.
func (r *registry) mayHaveAdopted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.otherChildrenLocked()
}

// reap waits for the adopted children that have exited.
func (r *registry) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid := exitedChild()
	if pid <= 0 {
		return // none has exited: the usual case costs one system call
	}
	if r.leaders[pid] != nil {
		// os/exec is about to wait for it, and forget wakes us after.
		return
	}
	t := r.scanLocked()
	for _, pid := range t.adopted {
		var ws syscall.WaitStatus
		for {
			// WNOHANG: one still running is left for its SIGCHLD.
			_, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			if err != syscall.EINTR {
				break
			}
		}
	}
}

// exitedChild returns the pid of a child of ours that has exited, without
// reaping it; 0 if none has.
func exitedChild() int {
	const pAll = 0     // P_ALL
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pAll, 0, uintptr(unsafe.Pointer(&info[0])),
			syscall.WEXITED|syscall.WNOHANG|syscall.WNOWAIT, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return 0 // ECHILD: no children at all
		}
		// si_pid opens the union after si_signo, si_errno and si_code,
		// which is aligned to a pointer.
		off := 12
		if unsafe.Sizeof(uintptr(0)) == 8 {
			off = 16
		}
		return int(*(*int32)(unsafe.Pointer(&info[off])))
	}
}

// scanLocked reads every process's stat and works out whose each one is
// (see the top of this file). r.mu must be held.
func (r *registry) scanLocked() *table {
	t := &table{stats: make(map[int]procStat), owner: make(map[int]*Child)}
	pids, err := r.src.pids(r.pidBuf[:0])
	r.pidBuf = pids
	if err != nil {
		return t
	}
	for _, pid := range pids {
		if pid == r.self {
			continue // never ours to signal or reap
		}
		if st, err := r.src.stat(pid); err == nil {
			t.stats[pid] = st
		}
	}

	for pid, c := range r.leaders {
		if st, ok := t.stats[pid]; ok && st.start == c.start {
			t.owner[pid] = c
		}
	}
	for pid, m := range r.ledger {
		if st, ok := t.stats[pid]; ok && st.start == m.start {
			if t.owner[pid] == nil {
				t.owner[pid] = m.owner
			}
		} else {
			delete(r.ledger, pid)
		}
	}
	for pid, st := range t.stats {
		// A leader still there, alive or a zombie, holds its pid and with
		// it the group id: a member cannot be some recycled group's.
		if c := r.leaders[st.pgid]; t.owner[pid] == nil && c != nil && t.owner[st.pgid] == c {
			t.owner[pid] = c
		}
	}
	for pid, st := range t.stats {
		if st.ppid != r.self || r.leaders[pid] != nil {
			continue
		}
		if t.owner[pid] == nil {
			if st.sid == r.sid {
				continue // one of ours started on purpose: not ours to touch
			}
			t.owner[pid] = r.newestBeforeLocked(st.start)
		}
		t.adopted = append(t.adopted, pid)
	}
	// Parents usually come before their children in the listing, so this
	// settles in a pass or two. Our own children were settled above.
	for changed := true; changed; {
		changed = false
		for pid, st := range t.stats {
			if t.owner[pid] == nil && st.ppid != r.self {
				if c := t.owner[st.ppid]; c != nil {
					t.owner[pid] = c
					changed = true
				}
			}
		}
	}

	for pid, c := range t.owner {
		if c != nil && r.leaders[pid] != c {
			r.ledger[pid] = member{start: t.stats[pid].start, owner: c}
		}
	}
	return t
}

// newestBeforeLocked returns the child started last before start, among
// those still running or with processes in the ledger.
func (r *registry) newestBeforeLocked(start uint64) *Child {
	var best *Child
	consider := func(c *Child) {
		if c.start <= start && (best == nil || c.start > best.start) {
			best = c
		}
	}
	for _, c := range r.leaders {
		consider(c)
	}
	for _, m := range r.ledger {
		consider(m.owner)
	}
	return best
}

// signalLocked sends sig to a process a scan found, unless it is no
// longer the one the scan saw: a process that is not our child may have
// been reaped by its parent since, and its pid recycled.
func (r *registry) signalLocked(pid int, st procStat, sig syscall.Signal) {
	if pid <= 1 || pid == r.self {
		return
	}
	if st.ppid != r.self {
		now, err := r.src.stat(pid)
		if err != nil || now.start != st.start {
			return
		}
	}
	_ = syscall.Kill(pid, sig)
}

// signalOutsiders sends sigs to every live process of c's tree outside
// its process group, which a signal to the group does not reach.
func (c *Child) signalOutsiders(sigs ...syscall.Signal) {
	r := &procs
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.scanLocked()
	for pid, o := range t.owner {
		st := t.stats[pid]
		if o != c || pid == c.pid || st.pgid == c.pid || st.zombie {
			continue
		}
		for _, s := range sigs {
			r.signalLocked(pid, st, s)
		}
	}
}

// killTree SIGKILLs every live process of c's tree but its leader (which
// is the group signal's to reach: os/exec may reap it at any moment), and
// reads the table again until a read finds none it has not KILLed
// already, so that what they forked meanwhile dies too.
func (c *Child) killTree() {
	r := &procs
	r.mu.Lock()
	defer r.mu.Unlock()
	killed := make(map[int]uint64)
	for range killRounds {
		t := r.scanLocked()
		fresh := false
		for pid, o := range t.owner {
			st := t.stats[pid]
			if o != c || pid == c.pid || st.zombie {
				continue
			}
			if start, done := killed[pid]; done && start == st.start {
				continue
			}
			killed[pid] = st.start
			r.signalLocked(pid, st, syscall.SIGKILL)
			fresh = true
		}
		if !fresh {
			return
		}
	}
}

// orphaned reports whether c's tree has live processes other than its
// leader, which has exited. It is called in the leader's zombie window
// (see run); where that fails, after the reap, when c's group is no longer
// tied to its leader's pid, so group members count through the group.
func (c *Child) orphaned(zombie bool) bool {
	if !zombie && groupHasLiveMembers(c.pid) {
		return true
	}
	r := &procs
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subreaper && !r.otherChildrenLocked() {
		// With us a subreaper, each surviving part of the tree hangs from
		// a child of ours: with no child but leaders there is nothing.
		return false
	}
	t := r.scanLocked()
	for pid, o := range t.owner {
		if o == c && pid != c.pid && !t.stats[pid].zombie {
			return true
		}
	}
	return false
}

// otherChildrenLocked reports whether we may have a child that is not a
// leader. Orphans are re-parented to a subreaper's first live thread, the
// main one in Go, so its children file lists them all.
func (r *registry) otherChildrenLocked() bool {
	b, err := r.src.readProc(r.self, "task/"+strconv.Itoa(r.self)+"/children")
	if err != nil || len(b) == len(r.src.buf) {
		return true // no such file (CONFIG_PROC_CHILDREN), or too long to be sure
	}
	for _, f := range bytes.Fields(b) {
		if pid, ok := atoi(f); ok && r.leaders[pid] == nil {
			return true
		}
	}
	return false
}

// claimed reports whether pid, a child of ours, is in the tree of the
// child whose leader is root: an orphan the Monitor has not seen with its
// parent.
func claimed(root, pid int) bool {
	r := &procs
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.leaders[root]
	if c == nil || r.leaders[pid] != nil {
		return false
	}
	st, err := r.src.stat(pid)
	if err != nil || st.ppid != r.self {
		return false
	}
	if m, ok := r.ledger[pid]; ok && m.start == st.start {
		return m.owner == c
	}
	if st.pgid == root {
		return true
	}
	return st.sid != r.sid && r.newestBeforeLocked(st.start) == c
}

// becomeSubreaper sets PR_SET_CHILD_SUBREAPER (Linux 3.4).
func becomeSubreaper() error {
	const prSetChildSubreaper = 36
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
