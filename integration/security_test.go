package integration

// End-to-end tests of the security model (README "Security", DESIGN.md
// section 7) against a real ZooKeeper: outsiders with a raw client and no
// credentials, or the owner's user name with a wrong secret, try every
// attack the old world-open tree allowed; the ACL of every znode zkdog
// creates, parents and later nodes included; workers without the owner's
// credentials; the credentials file's hygiene; items that look like shell
// code; and a job anyone may change.
//
// Synchronisation is by ZooKeeper watches (secWaitChildren,
// secWaitVersion), by FIFOs that block a command until the test releases
// it, or by a process's exit. The one poll is waitFor on /proc for a
// child process, state no watch reports. Every negative check is bounded
// by its own nature: a ZooKeeper request answered with NoAuth, a command
// that exited, or a file checked after the process that could have made it
// has exited.

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// secRoot is a job root two levels below /sec, so that zkdog itself
// creates the parents /sec and /sec/NAME with the owner's ACL (whereas
// /it may have been made world-open by another test's createNode).
func secRoot(t *testing.T) string {
	return "/sec/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "/job"
}

// secOwnerACL is the ACL every znode of a private job carries: the
// tests' digest identity with every permission, and nothing else.
func secOwnerACL() []zk.ACL {
	return zk.DigestACL(zk.PermAll, testCreds.User, testCreds.Secret())
}

// secPublicACL is secOwnerACL plus read for everyone (--public-read).
func secPublicACL() []zk.ACL {
	return append(secOwnerACL(), zk.WorldACL(zk.PermRead)...)
}

// secOutsider is an outside client.
type secOutsider struct {
	name string
	conn *zk.Conn
}

// secWrongSecret is a secret that is not the tests' one (it is long
// enough for a credentials file).
const secWrongSecret = "wrong-secret-0123456789abcdef"

func secOutsiders(t *testing.T, addr string) []secOutsider {
	return []secOutsider{
		{"no credentials", dialAs(t, addr, "")},
		{"wrong secret", dialAs(t, addr, testCreds.User+":"+secWrongSecret)},
	}
}

// secHome is a home directory for a zkdog run as someone else: with no
// credentials file when user is "", else with ~/.zkdog/credentials
// holding USER:SECRET at mode. It returns the home and the file's path.
func secHome(t *testing.T, user, secret string, mode os.FileMode) (string, string) {
	t.Helper()
	home := t.TempDir()
	file := filepath.Join(home, ".zkdog", "credentials")
	if user == "" {
		return home, file
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(user+":"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Explicitly, whatever the umask.
	if err := os.Chmod(file, mode); err != nil {
		t.Fatal(err)
	}
	return home, file
}

// secAs runs zkdog with home as its HOME (the last HOME in the
// environment wins).
func secAs(home string, o opts) opts {
	o.env = append(append([]string(nil), o.env...), "HOME="+home)
	return o
}

// secMultiErr is the error of a failed multi: the first operation's
// that failed, which go-zookeeper reports in the responses.
func secMultiErr(res []zk.MultiResponse, err error) error {
	for _, r := range res {
		if r.Error != nil {
			return r.Error
		}
	}
	return err
}

// secRefused checks that p exited with code and said so in exactly one
// "zkdog: " line on standard error, containing each of wants, with
// nothing on standard output.
func secRefused(t *testing.T, p *proc, code int, wants ...string) {
	t.Helper()
	got := p.wait()
	s := strings.TrimSpace(p.stderr.String())
	if got != code {
		t.Errorf("zkdog %v exited %d, want %d; stderr:\n%s", p.cmd.Args[1:], got, code, s)
	}
	if s == "" || strings.Contains(s, "\n") || !strings.HasPrefix(s, "zkdog: ") {
		t.Errorf("zkdog %v: stderr is not one zkdog: line:\n%s", p.cmd.Args[1:], s)
	}
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("zkdog %v: stderr does not say %q:\n%s", p.cmd.Args[1:], w, s)
		}
	}
	if out := p.stdout.String(); out != "" {
		t.Errorf("zkdog %v printed on standard output: %q", p.cmd.Args[1:], out)
	}
	if strings.Contains(p.stderr.String(), testCreds.Secret()) {
		t.Errorf("zkdog %v printed the secret", p.cmd.Args[1:])
	}
}

// secWaitChildren waits, by watches, until the children of dir satisfy
// cond, and returns them.
func secWaitChildren(t *testing.T, conn *zk.Conn, dir, what string, cond func([]string) bool) []string {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		kids, _, ch, err := conn.ChildrenW(dir)
		if err != nil {
			t.Fatalf("watching %s: %v", dir, err)
		}
		if cond(kids) {
			slices.Sort(kids)
			return kids
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s: %s has %v", what, dir, kids)
		}
	}
}

func secCount(n int) func([]string) bool { return func(k []string) bool { return len(k) == n } }

// secWaitVersion waits, by watches, until the data version of p (a
// counter) is at least n.
func secWaitVersion(t *testing.T, conn *zk.Conn, p string, n int32) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		ok, st, ch, err := conn.ExistsW(p)
		if err != nil {
			t.Fatalf("watching %s: %v", p, err)
		}
		if ok && st.Version >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s to reach version %d", p, n)
		}
	}
}

// secVersion is the data version of p.
func secVersion(t *testing.T, conn *zk.Conn, p string) int32 {
	t.Helper()
	_, st, err := conn.Get(p)
	if err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	return st.Version
}

// secTree lists root and every node below it, parents first.
func secTree(t *testing.T, conn *zk.Conn, root string) []string {
	t.Helper()
	out := []string{root}
	kids, _, err := conn.Children(root)
	if errors.Is(err, zk.ErrNoNode) {
		return nil // vanished while listed (an ephemeral)
	}
	if err != nil {
		t.Fatalf("listing %s: %v", root, err)
	}
	slices.Sort(kids)
	for _, k := range kids {
		out = append(out, secTree(t, conn, root+"/"+k)...)
	}
	return out
}

// secSnapshot is everything an attack could change in a running job:
// every node's data and data version, except the timers' (their worker
// kicks them) and the clock (the master stamps it), of which only the
// existence counts.
func secSnapshot(t *testing.T, conn *zk.Conn, root string) map[string]string {
	t.Helper()
	l := protocol.Layout{Root: root}
	snap := map[string]string{}
	for _, p := range secTree(t, conn, root) {
		if strings.HasPrefix(p, l.Timers()+"/") || p == l.Clock() {
			snap[p] = "exists"
			continue
		}
		b, st, err := conn.Get(p)
		if err != nil {
			t.Fatalf("reading %s: %v", p, err)
		}
		snap[p] = fmt.Sprintf("%q version %d", b, st.Version)
	}
	return snap
}

func secSameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	if maps.Equal(before, after) {
		return
	}
	for p, b := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("%s: %s vanished (was %s)", what, p, b)
		} else if a != b {
			t.Errorf("%s: %s changed from %s to %s", what, p, b, a)
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s appeared (%s)", what, p, a)
		}
	}
}

// secParents are the parents of root, outermost first.
func secParents(root string) []string {
	var out []string
	for dir := path.Dir(root); dir != "/"; dir = path.Dir(dir) {
		out = append([]string{dir}, out...)
	}
	return out
}

// secCheckACLs reads the ACL of root's parents and of every node of the
// job, and fails for each that is not exactly want. It returns the nodes
// it checked.
func secCheckACLs(t *testing.T, conn *zk.Conn, root string, want []zk.ACL) []string {
	t.Helper()
	nodes := append(secParents(root), secTree(t, conn, root)...)
	var checked []string
	for _, p := range nodes {
		acl, _, err := conn.GetACL(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue // an ephemeral that ended meanwhile
		}
		if err != nil {
			t.Fatalf("GetACL %s: %v", p, err)
		}
		if !slices.Equal(acl, want) {
			t.Errorf("ACL of %s is %v, want exactly %v", p, acl, want)
		}
		checked = append(checked, p)
	}
	return checked
}

// secResults lists the job's results: outcomes by item index.
func secResults(t *testing.T, conn *zk.Conn, root string) map[int][]protocol.Outcome {
	t.Helper()
	l := protocol.Layout{Root: root}
	out := map[int][]protocol.Outcome{}
	for _, b := range children(t, conn, l.Results()) {
		for _, name := range children(t, conn, l.Results()+"/"+b) {
			i, o, err := protocol.ParseResultName(name)
			if err != nil {
				t.Errorf("result %s/%s: %v", b, name, err)
				continue
			}
			out[i] = append(out[i], o)
		}
	}
	return out
}

// secAllOK checks that each of the n items has exactly one result, ok.
func secAllOK(t *testing.T, conn *zk.Conn, root string, n int) {
	t.Helper()
	res := secResults(t, conn, root)
	for i := range n {
		if !slices.Equal(res[i], []protocol.Outcome{protocol.OK}) {
			t.Errorf("item %d has results %v, want exactly one ok", i, res[i])
		}
	}
	if len(res) != n {
		t.Errorf("results for %d items, want %d: %v", len(res), n, res)
	}
}

// secNothingTaken checks that no worker ever took anything from the job:
// no ticket, lease, timer, retry entry or result.
func secNothingTaken(t *testing.T, conn *zk.Conn, root string) {
	t.Helper()
	l := protocol.Layout{Root: root}
	for _, p := range []string{l.Cursor(), l.Workers(), l.Done(), l.Failed()} {
		if v := secVersion(t, conn, p); v != 0 {
			t.Errorf("%s has version %d, want 0: something was taken", p, v)
		}
	}
	for _, dir := range []string{l.Leases(), l.Timers(), l.Retry()} {
		if kids := children(t, conn, dir); len(kids) > 0 {
			t.Errorf("%s holds %v, want nothing", dir, kids)
		}
	}
	if exists(t, conn, l.Abort()) {
		t.Errorf("%s exists", l.Abort())
	}
}

// secMkfifo makes a FIFO in dir that a command blocks on until
// secRelease.
func secMkfifo(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "gate")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// secRelease writes a line to the FIFO, which releases the one command
// blocked reading it. Opening the FIFO waits for that reader.
func secRelease(t *testing.T, fifo string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString("go\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("releasing %s: %v", fifo, err)
		}
	case <-time.After(waitLimit):
		// Unblock the writer's open so the goroutine ends.
		if f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatalf("nothing read %s within %v", fifo, waitLimit)
	}
}

// secNoPwn fails if any file named PWN* is in dir: an item ran as code.
func secNoPwn(t *testing.T, dir string) {
	t.Helper()
	found, err := filepath.Glob(filepath.Join(dir, "PWN*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Errorf("an item ran as code: %v exist", found)
	}
}

func secItemsFile(t *testing.T, items []string) string {
	t.Helper()
	return writeFile(t, "items", strings.Join(items, "\n")+"\n")
}

// 1. A running job, with a master waiting and a worker holding an item
// (its command blocked on a FIFO), attacked from outside: every attack
// DESIGN.md section 7 lists against the old world-open tree, by a raw
// client without credentials and by one with the owner's user name and a
// wrong secret, fails with NoAuth and changes nothing; zkdog's own
// commands as an outsider are refused with one line, exit 2. The job then
// finishes as if nothing happened, and an item written as shell code ran
// as data.
func TestSecurityOutsiderCannotChangeARunningJob(t *testing.T) {
	root := secRoot(t)
	l := protocol.Layout{Root: root}
	owner := connect(t, shared.Addr())
	items := []string{"item-0", "a; touch PWNFILE", "item-2", "item-3", "item-4"}
	expectExit(t, run(t, opts{}, "init", "--root", root, "--items", secItemsFile(t, items), "--timer", "10s"), exitOK)
	t.Cleanup(func() { cleanJob(t, owner, root) })
	m := start(t, opts{}, "wait", "--root", root, "--keep", "--json")

	// Items 0 and 1 finish at once; item 2's command blocks on the gate,
	// its worker holding the lease and kicking its timer (alive).
	dir := t.TempDir()
	gate := secMkfifo(t, dir)
	w := start(t, opts{dir: dir}, "run", "--root", root, "--loop", "--progress", "alive", "--",
		"sh", "-c", `printf '%s\n' {} >> out; if [ "$ZKDOG_ITEM_INDEX" = 2 ]; then read x < gate; fi`)
	secWaitVersion(t, owner, l.Done(), 2)
	leases := secWaitChildren(t, owner, l.Leases(), "item 2's lease", secCount(1))
	timers := secWaitChildren(t, owner, l.Timers(), "the worker's timer", secCount(1))
	lease, timer := l.Leases()+"/"+leases[0], l.Timer(timers[0])
	if want := (protocol.Turn{Index: 2, Attempt: 1}).Name(); leases[0] != want {
		t.Fatalf("lease %s, want %s", leases[0], want)
	}
	before := secSnapshot(t, owner, root)

	forged := protocol.Encode(protocol.Result{V: protocol.Version, Outcome: protocol.OK, Attempt: 1})
	open := zk.WorldACL(zk.PermAll)
	attacks := []struct {
		name string
		do   func(c *zk.Conn) error
	}{
		{"read the job", func(c *zk.Conn) error { _, _, err := c.Get(root); return err }},
		{"read the items", func(c *zk.Conn) error { _, _, err := c.Get(l.Chunk(0)); return err }},
		{"list the items", func(c *zk.Conn) error { _, _, err := c.Children(l.ItemBucket(0)); return err }},
		{"replace the items (delete + create in one multi)", func(c *zk.Conn) error {
			return secMultiErr(c.Multi(
				&zk.DeleteRequest{Path: l.Chunk(0), Version: 0},
				&zk.CreateRequest{Path: l.Chunk(0), Data: protocol.EncodeChunk([][]byte{[]byte("touch PWNFILE")}), Acl: open}))
		}},
		{"rewrite the items", func(c *zk.Conn) error { _, err := c.Set(l.Chunk(0), []byte("touch PWNFILE"), -1); return err }},
		{"delete the items", func(c *zk.Conn) error { return c.Delete(l.Chunk(0), -1) }},
		{"hold an item back (create its turn node)", func(c *zk.Conn) error { _, err := c.Create(l.Item(3), nil, 0, open); return err }},
		{"forge a result", func(c *zk.Conn) error { _, err := c.Create(l.Result(3, protocol.OK), forged, 0, open); return err }},
		{"forge a result with the counters (multi)", func(c *zk.Conn) error {
			return secMultiErr(c.Multi(
				&zk.CreateRequest{Path: l.Result(4, protocol.OK), Data: forged, Acl: open},
				&zk.SetDataRequest{Path: l.Done(), Version: -1}))
		}},
		{"delete a result", func(c *zk.Conn) error { return c.Delete(l.Result(0, protocol.OK), -1) }},
		{"rewrite a result", func(c *zk.Conn) error { _, err := c.Set(l.Result(1, protocol.OK), forged, -1); return err }},
		{"bump done", func(c *zk.Conn) error { _, err := c.Set(l.Done(), nil, -1); return err }},
		{"bump failed", func(c *zk.Conn) error { _, err := c.Set(l.Failed(), nil, -1); return err }},
		{"bump the cursor", func(c *zk.Conn) error { _, err := c.Set(l.Cursor(), nil, -1); return err }},
		{"reset the cursor (delete + create)", func(c *zk.Conn) error {
			return secMultiErr(c.Multi(
				&zk.DeleteRequest{Path: l.Cursor(), Version: -1},
				&zk.CreateRequest{Path: l.Cursor(), Acl: open}))
		}},
		{"create abort", func(c *zk.Conn) error {
			_, err := c.Create(l.Abort(), protocol.Encode(protocol.Abort{V: protocol.Version, Reason: "outsider"}), 0, open)
			return err
		}},
		{"delete the lease", func(c *zk.Conn) error { return c.Delete(lease, -1) }},
		{"delete the timer", func(c *zk.Conn) error { return c.Delete(timer, -1) }},
		{"kick the timer", func(c *zk.Conn) error { _, err := c.Set(timer, nil, -1); return err }},
		{"delete the job root", func(c *zk.Conn) error { return c.Delete(root, -1) }},
		{"delete a node of the job", func(c *zk.Conn) error { return c.Delete(l.Clock(), -1) }},
		{"create under retry (the flood)", func(c *zk.Conn) error {
			_, err := c.Create(l.RetryEntry(protocol.Turn{Index: 3, Attempt: 2}), nil, 0, open)
			return err
		}},
		{"create under leases (the flood)", func(c *zk.Conn) error {
			_, err := c.Create(l.Leases()+"/flood-", nil, zk.FlagEphemeral|zk.FlagSequence, open)
			return err
		}},
		{"create a timer", func(c *zk.Conn) error {
			_, err := c.Create(l.Timer(protocol.TimerPrefix), nil, zk.FlagEphemeral|zk.FlagSequence, open)
			return err
		}},
		{"open the root's ACL", func(c *zk.Conn) error { _, err := c.SetACL(root, open, -1); return err }},
		{"squat beside the job in the owner's parent", func(c *zk.Conn) error {
			_, err := c.Create(path.Dir(root)+"/squat", nil, 0, open)
			return err
		}},
	}
	for _, o := range secOutsiders(t, shared.Addr()) {
		for _, a := range attacks {
			if err := a.do(o.conn); !errors.Is(err, zk.ErrNoAuth) {
				t.Errorf("%s: %s: got %v, want %v", o.name, a.name, err, zk.ErrNoAuth)
			}
		}
	}
	secSameSnapshot(t, "after the raw attacks", before, secSnapshot(t, owner, root))

	// zkdog itself, run by someone without the owner's credentials.
	noCreds, noCredsFile := secHome(t, "", "", 0)
	mallory, malloryFile := secHome(t, "mallory", "mallory-secret-0123456789abcdef", 0o600)
	impostor, impostorFile := secHome(t, testCreds.User, secWrongSecret, 0o600)
	for _, who := range []struct {
		name, home, file string
		private          bool // reaches the job: refused as private, else for the missing file
	}{
		{"no credentials file", noCreds, noCredsFile, false},
		{"another user's credentials", mallory, malloryFile, true},
		{"the owner's name with a wrong secret", impostor, impostorFile, true},
	} {
		for _, args := range [][]string{
			{"consume", "--root", root},
			{"clear", "--root", root, "--force"},
			{"kick", "--root", root, "--timer", timers[0]},
			{"status", "--root", root},
		} {
			t.Run(who.name+"/"+args[0], func(t *testing.T) {
				wants := []string{who.file}
				if who.private || args[0] == "status" {
					wants = []string{root, "private to its owner"}
					if who.private {
						wants = append(wants, who.file)
					}
				}
				secRefused(t, run(t, secAs(who.home, opts{}), args...), exitUsage, wants...)
			})
		}
	}
	secSameSnapshot(t, "after zkdog run by outsiders", before, secSnapshot(t, owner, root))
	select {
	case <-w.done:
		t.Fatalf("the worker exited %d during the attacks", w.code)
	case <-m.done:
		t.Fatalf("the master exited %d during the attacks", m.code)
	default:
	}

	// Released, the job finishes: every item once, ok, as given.
	secRelease(t, gate)
	expectExit(t, w, exitOK)
	expectExit(t, m, exitOK)
	if r := readReport(t, m); r.Items != len(items) || r.OK != len(items) || r.Failed+r.Lost+r.Stalled+r.Unfinished != 0 {
		t.Errorf("report %+v, want %d items all ok", r, len(items))
	}
	secAllOK(t, owner, root, len(items))
	out, err := os.ReadFile(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(items, "\n") + "\n"; string(out) != want {
		t.Errorf("the commands printed %q, want the items as given %q", out, want)
	}
	secNoPwn(t, dir) // after the worker exited: nothing can make one later
}

// 2. The ACL of every znode zkdog creates, parents included, and of the
// nodes workers and the master create later (timers, leases, results,
// retry entries), is exactly the owner's digest entry with every
// permission; with --public-read, that plus world:anyone read only.
func TestSecurityACLWalk(t *testing.T) {
	t.Run("private", func(t *testing.T) {
		const root = "/sec/a/b/job"
		owner := connect(t, shared.Addr())
		expectExit(t, run(t, opts{}, "init", "--root", root, "--items", secItemsFile(t, []string{"x", "y", "z"})), exitOK)
		t.Cleanup(func() { cleanJob(t, owner, root) })
		checked := secCheckACLs(t, owner, root, secOwnerACL())
		l := protocol.Layout{Root: root}
		for _, p := range []string{"/sec", "/sec/a", "/sec/a/b", root, l.Items(), l.ItemBucket(0), l.Chunk(0),
			l.Results(), l.Leases(), l.Retry(), l.Timers(), l.Cursor(), l.Done(), l.Failed(), l.Clock(), l.Workers()} {
			if !slices.Contains(checked, p) {
				t.Errorf("%s was not there to check (checked %v)", p, checked)
			}
		}
		t.Logf("checked %d nodes", len(checked))
		// A worker's results carry the job's ACL too.
		expectExit(t, run(t, opts{}, "run", "--root", root, "--loop", "--", "true"), exitOK)
		secAllOK(t, owner, root, 3)
		secCheckACLs(t, owner, root, secOwnerACL())
	})

	// The later nodes, checked on a public job: a worker's own identity
	// would give them the owner's ACL without the world's read, so only
	// the job's ACL, copied, passes. A server of short sessions, so that
	// a killed worker's lease vanishes at once and the master hands its
	// item out again (a retry entry).
	t.Run("public read, and nodes created later", func(t *testing.T) {
		srv := quickServer(t)
		o := opts{zk: srv.Addr()}
		const root = "/sec/pub/c/job"
		l := protocol.Layout{Root: root}
		owner := connect(t, srv.Addr())
		want := secPublicACL()
		expectExit(t, run(t, o, "init", "--root", root, "--items", secItemsFile(t, []string{"first", "second"}),
			"--public-read", "--retries", "1", "--timer", "10s"), exitOK)
		t.Cleanup(func() { cleanJob(t, owner, root) })
		secCheckACLs(t, owner, root, want)

		m := start(t, o, "wait", "--root", root, "--keep", "--json")
		dir := t.TempDir()
		secMkfifo(t, dir) // never written: the victim's command blocks until killed
		victim := start(t, opts{zk: srv.Addr(), dir: dir}, "run", "--root", root, "--session-timeout", "1s", "--progress", "alive",
			"--", "sh", "-c", "read x < gate")
		leases := secWaitChildren(t, owner, l.Leases(), "the victim's lease", secCount(1))
		timers := secWaitChildren(t, owner, l.Timers(), "the victim's timer", secCount(1))
		checked := secCheckACLs(t, owner, root, want)
		for _, p := range []string{l.Leases() + "/" + leases[0], l.Timer(timers[0])} {
			if !slices.Contains(checked, p) {
				t.Errorf("%s was not there to check", p)
			}
		}

		// Killed, its session ends; the master (zkdog wait, which did not
		// create the job) puts the item on the retry list.
		victim.signal(syscall.SIGKILL)
		retry := secWaitChildren(t, owner, l.Retry(), "the victim's item on the retry list", secCount(1))
		checked = secCheckACLs(t, owner, root, want)
		if !slices.Contains(checked, l.Retry()+"/"+retry[0]) {
			t.Errorf("the retry entry %s was not there to check", retry[0])
		}
		// Its command dies with it (zkdog sets PR_SET_PDEATHSIG).

		expectExit(t, run(t, o, "run", "--root", root, "--loop", "--", "true"), exitOK)
		expectExit(t, m, exitOK)
		secAllOK(t, owner, root, 2)
		checked = secCheckACLs(t, owner, root, want)
		for _, i := range []int{0, 1} {
			if !slices.Contains(checked, l.Result(i, protocol.OK)) {
				t.Errorf("item %d's result was not there to check", i)
			}
		}
		// Everyone may read it, nobody else change it.
		for _, out := range secOutsiders(t, srv.Addr()) {
			if _, _, err := out.conn.Get(root); err != nil {
				t.Errorf("%s: reading a public job: %v", out.name, err)
			}
			if _, err := out.conn.Set(l.Done(), nil, -1); !errors.Is(err, zk.ErrNoAuth) {
				t.Errorf("%s: bumping done of a public job: %v, want %v", out.name, err, zk.ErrNoAuth)
			}
		}
	})
}

// 3. A worker with the owner's credentials works; one without a
// credentials file, or with another identity's, exits 125 with one line
// and takes nothing: no ticket, lease or timer.
func TestSecurityWorkersNeedTheOwnersCredentials(t *testing.T) {
	root := secRoot(t)
	owner := connect(t, shared.Addr())
	expectExit(t, run(t, opts{}, "init", "--root", root, "--items", secItemsFile(t, []string{"p", "q", "r"}), "--timer", "10s"), exitOK)
	t.Cleanup(func() { cleanJob(t, owner, root) })
	public := root + "-public"
	expectExit(t, run(t, opts{}, "init", "--root", public, "--items", secItemsFile(t, []string{"p"}), "--public-read"), exitOK)
	t.Cleanup(func() { cleanJob(t, owner, public) })

	noCreds, noCredsFile := secHome(t, "", "", 0)
	mallory, malloryFile := secHome(t, "mallory", "mallory-secret-0123456789abcdef", 0o600)
	impostor, impostorFile := secHome(t, testCreds.User, secWrongSecret, 0o600)
	for _, c := range []struct {
		name  string
		o     opts
		root  string
		extra []string
		wants []string
	}{
		{"no credentials file", secAs(noCreds, opts{}), root, nil, []string{noCredsFile, "no credentials file"}},
		{"another user's credentials", secAs(mallory, opts{}), root, nil, []string{root, malloryFile, "digest:mallory"}},
		{"the owner's name with a wrong secret", secAs(impostor, opts{}), root, nil, []string{root, impostorFile}},
		{"another user's credentials by --auth-file", opts{}, root, []string{"--auth-file", malloryFile}, []string{root, malloryFile}},
		{"another user's credentials by ZKDOG_AUTH_FILE", opts{env: []string{"ZKDOG_AUTH_FILE=" + malloryFile}}, root, nil, []string{root, malloryFile}},
		// Readable by everyone, so only the check of write access can
		// stop the worker before it takes an item.
		{"another user's credentials on a public job", secAs(mallory, opts{}), public, nil, []string{public, malloryFile, "may not change it"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			marker := filepath.Join(dir, "ran")
			args := append(append([]string{"run", "--root", c.root, "--loop"}, c.extra...), "--", "touch", marker)
			secRefused(t, run(t, c.o, args...), exitRunFailed, c.wants...)
			// Checked after zkdog exited: nothing can make it later.
			if _, err := os.Stat(marker); err == nil {
				t.Error("the command ran")
			}
			secNothingTaken(t, owner, c.root)
		})
	}

	t.Run("the owner's credentials", func(t *testing.T) {
		expectExit(t, run(t, opts{}, "run", "--root", root, "--loop", "--", "true"), exitOK)
		secAllOK(t, owner, root, 3)
	})
}

// 4. The credentials file: refused by every command when others may read
// it; its secret never printed, even at debug, and never on a command line
// or in an environment, zkdog's or its command's.
func TestSecurityCredentialsFileHygiene(t *testing.T) {
	t.Run("a file others may read is refused by every command", func(t *testing.T) {
		root := secRoot(t)
		owner := connect(t, shared.Addr())
		expectExit(t, run(t, opts{}, "init", "--root", root, "--items", secItemsFile(t, []string{"p"})), exitOK)
		t.Cleanup(func() { cleanJob(t, owner, root) })
		loose, looseFile := secHome(t, testCreds.User, testCreds.Secret(), 0o644)
		items := secItemsFile(t, []string{"p"})
		fresh := root + "-never"
		for _, c := range []struct {
			args []string
			code int
		}{
			{[]string{"init", "--root", fresh, "--items", items}, exitUsage},
			{[]string{"master", "--root", fresh, "--items", items}, exitUsage},
			{[]string{"wait", "--root", root}, exitUsage},
			{[]string{"run", "--root", root, "--", "true"}, exitRunFailed},
			{[]string{"status", "--root", root}, exitUsage},
			{[]string{"timers", "--root", root}, exitUsage},
			{[]string{"consume", "--root", root}, exitUsage},
			{[]string{"kick", "--root", root, "--timer", "t-0000000000"}, exitUsage},
			{[]string{"clear", "--root", root, "--force"}, exitUsage},
		} {
			t.Run(c.args[0], func(t *testing.T) {
				secRefused(t, run(t, secAs(loose, opts{}), c.args...), c.code, looseFile, "chmod 600")
			})
		}
		t.Run("by --auth-file", func(t *testing.T) {
			secRefused(t, run(t, opts{}, "status", "--root", root, "--auth-file", looseFile), exitUsage, looseFile, "chmod 600")
		})
		t.Run("group-writable", func(t *testing.T) {
			_, gw := secHome(t, testCreds.User, testCreds.Secret(), 0o660)
			secRefused(t, run(t, opts{}, "status", "--root", root, "--auth-file", gw), exitUsage, gw, "chmod 600")
		})
		t.Run("group-readable is a group's copy, accepted", func(t *testing.T) {
			_, gr := secHome(t, testCreds.User, testCreds.Secret(), 0o640)
			expectExit(t, run(t, opts{}, "status", "--root", root, "--auth-file", gr), exitOK)
		})
		if exists(t, owner, fresh) {
			t.Errorf("%s was created with a refused credentials file", fresh)
		}
		secNothingTaken(t, owner, root)
	})

	t.Run("the secret is in no output, even at debug", func(t *testing.T) {
		// A first job in a fresh home: init makes the file, and logs so.
		home, file := secHome(t, "", "", 0)
		o := secAs(home, opts{})
		// Not below /sec, which belongs to the tests' identity: this is
		// another one's first job.
		root := "/secfresh" + strings.TrimPrefix(secRoot(t), "/sec")
		owner := connect(t, shared.Addr())
		items := secItemsFile(t, []string{"s1", "s2"})
		procs := []*proc{run(t, o, "init", "--log-level", "debug", "--root", root, "--items", items)}
		expectExit(t, procs[0], exitOK)
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatalf("init made no credentials file: %v", err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", file, fi.Mode().Perm())
		}
		if di, err := os.Stat(filepath.Dir(file)); err != nil || di.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, mode %v, want 0700", filepath.Dir(file), err, di.Mode().Perm())
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		user, secret, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
		if len(secret) < 40 {
			t.Fatalf("the new secret has %d characters, want a 256-bit one", len(secret))
		}
		// The owner's connection of this test, for the new identity.
		if err := owner.AddAuth("digest", []byte(user+":"+secret)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cleanJob(t, owner, root) })
		if !strings.Contains(procs[0].stderr.String(), "created a credentials file") {
			t.Errorf("init did not say it created the credentials file:\n%s", procs[0].stderr.String())
		}

		m := start(t, o, "wait", "--log-level", "debug", "--root", root, "--keep")
		procs = append(procs, m,
			run(t, o, "run", "--log-level", "debug", "--root", root, "--loop", "--", "true"),
			run(t, o, "status", "--log-level", "debug", "--root", root),
			run(t, o, "status", "--log-level", "debug", "--log-format", "json", "--root", root, "--json"))
		expectExit(t, procs[2], exitOK)
		expectExit(t, m, exitOK)
		expectExit(t, procs[3], exitOK)
		expectExit(t, procs[4], exitOK)
		for _, p := range procs {
			if strings.Contains(p.stdout.String(), secret) || strings.Contains(p.stderr.String(), secret) {
				t.Errorf("zkdog %v printed the secret", p.cmd.Args[1:])
			}
			if !strings.Contains(p.stderr.String(), "level=DEBUG") && !strings.Contains(p.stderr.String(), `"level":"DEBUG"`) {
				t.Logf("zkdog %v logged nothing at debug", p.cmd.Args[1:])
			}
		}
	})

	t.Run("the secret is in no command line or environment", func(t *testing.T) {
		root := secRoot(t)
		owner := connect(t, shared.Addr())
		expectExit(t, run(t, opts{}, "init", "--root", root, "--items", secItemsFile(t, []string{"proc-item"})), exitOK)
		t.Cleanup(func() { cleanJob(t, owner, root) })
		p := start(t, opts{env: []string{"ZKDOG_AUTH_FILE=" + testCreds.Path}}, "run", "--root", root, "--progress", "alive", "--", "sleep", "1000")
		secWaitChildren(t, owner, protocol.Layout{Root: root}.Leases(), "the worker's lease", secCount(1))
		// The child is a process, not a znode: polled on /proc.
		var child int
		waitFor(t, "zkdog's child sleep", func() bool { child = secDescendant(p.cmd.Process.Pid, "sleep"); return child > 0 })
		secret := []byte(testCreds.Secret())
		for _, pid := range []int{p.cmd.Process.Pid, child} {
			for _, f := range []string{"cmdline", "environ"} {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
				if err != nil {
					t.Fatal(err)
				}
				if len(b) == 0 {
					t.Errorf("/proc/%d/%s is empty", pid, f)
				}
				if strings.Contains(string(b), string(secret)) {
					t.Errorf("/proc/%d/%s holds the secret", pid, f)
				}
			}
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", child))
		if err != nil {
			t.Fatal(err)
		}
		vars := map[string]string{}
		for _, kv := range strings.Split(string(env), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				vars[k] = v
			}
		}
		for k, want := range map[string]string{"ZKDOG_ITEM": "proc-item", "ZKDOG_ITEM_INDEX": "0", "ZKDOG_ATTEMPT": "1",
			"ZKDOG_ROOT": root, "ZKDOG_AUTH_FILE": testCreds.Path} {
			if vars[k] != want {
				t.Errorf("the command's %s is %q, want %q", k, vars[k], want)
			}
		}
		for _, k := range []string{"ZKDOG_TIMER", "ZKDOG_ID", "ZKDOG_KICK_FILE"} {
			if vars[k] == "" {
				t.Errorf("the command has no %s", k)
			}
		}
		p.signal(syscall.SIGTERM)
		expectExit(t, p, 128+int(syscall.SIGTERM))
	})
}

// secDescendant is the pid of a live descendant of pid named comm, or 0.
func secDescendant(pid int, comm string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	name := map[int]string{}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parent[n], name[n] = ppid, s[open+1:end]
	}
	for n, c := range name {
		if c != comm {
			continue
		}
		for a := parent[n]; a > 1; a = parent[a] {
			if a == pid {
				return n
			}
		}
	}
	return 0
}

// 5. Items written as shell code reach the command as data through every
// form README recommends: nothing is run, and each arrives exactly as
// given.
func TestSecurityItemsAreData(t *testing.T) {
	items := []string{"a; touch PWN1", "$(touch PWN2)", "`touch PWN3`", "x' ; touch PWN4 ; '"}
	workSh := "#!/bin/sh\nprintf '%s\\n' \"$1\" >> out\n"
	itemSh := "#!/bin/sh\nprintf '%s\\n' \"$ZKDOG_ITEM\" >> out\n"
	for _, c := range []struct {
		name    string
		command []string
	}{
		{"./work.sh {}", []string{"./work.sh", "{}"}},
		{"sh -c with {} in the script", []string{"sh", "-c", `printf "%s\n" {} >> out`}},
		{"bash -euc with {} in the script", []string{"bash", "-euc", `printf "%s\n" {} >> out`}},
		{"sh -c with $1 and {} as an argument", []string{"sh", "-c", `printf "%s\n" "$1" >> out`, "sh", "{}"}},
		{"--stdin", []string{"--stdin", "--", "sh", "-c", "cat >> out"}},
		{"$ZKDOG_ITEM in a script", []string{"./item.sh"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root := secRoot(t)
			owner := connect(t, shared.Addr())
			expectExit(t, run(t, opts{}, "init", "--root", root, "--items", secItemsFile(t, items)), exitOK)
			t.Cleanup(func() { cleanJob(t, owner, root) })
			dir := t.TempDir()
			for name, script := range map[string]string{"work.sh": workSh, "item.sh": itemSh} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"run", "--root", root, "--loop"}
			if c.command[0] != "--stdin" {
				args = append(args, "--")
			}
			expectExit(t, run(t, opts{dir: dir}, append(args, c.command...)...), exitOK)
			secAllOK(t, owner, root, len(items))
			out, err := os.ReadFile(filepath.Join(dir, "out"))
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.Join(items, "\n") + "\n"; string(out) != want {
				t.Errorf("out holds %q, want the items as given %q", out, want)
			}
			secNoPwn(t, dir)
		})
	}
}

// 6. A job that anyone may change (made by hand, or by an older zkdog) is
// refused before anything is read from or taken out of it.
func TestSecurityJobAnyoneMayChangeIsRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		acl  []zk.ACL
		says string
	}{
		{"world:anyone:cdrwa", zk.WorldACL(zk.PermAll), "lets world:anyone change it"},
		{"the owner and ip:127.0.0.1:cdrwa", append(secOwnerACL(), zk.ACL{Perms: zk.PermAll, Scheme: "ip", ID: "127.0.0.1"}), "lets ip:127.0.0.1 change it"},
		{"the owner and world:anyone:w", append(secOwnerACL(), zk.WorldACL(zk.PermWrite)...), "lets world:anyone change it"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := secRoot(t)
			owner := connect(t, shared.Addr())
			expectExit(t, run(t, opts{}, "init", "--root", root, "--items", secItemsFile(t, []string{"p", "q"})), exitOK)
			t.Cleanup(func() { cleanJob(t, owner, root) })
			if _, err := owner.SetACL(root, c.acl, -1); err != nil {
				t.Fatal(err)
			}
			marker := filepath.Join(t.TempDir(), "ran")
			secRefused(t, run(t, opts{}, "status", "--root", root), exitUsage, root, c.says)
			secRefused(t, run(t, opts{}, "run", "--root", root, "--", "touch", marker), exitRunFailed, root, c.says)
			secRefused(t, run(t, opts{}, "wait", "--root", root), exitUsage, root, c.says)
			secRefused(t, run(t, opts{}, "consume", "--root", root), exitUsage, root, c.says)
			if _, err := os.Stat(marker); err == nil {
				t.Error("the command ran")
			}
			secNothingTaken(t, owner, root)
		})
	}
}
