// Package protocol is the layout of a zkdog job in ZooKeeper: the znode
// paths, what each one holds and the limits every participant honours.
// docs/protocol.md is the prose version of this file; change both together.
//
// The package does no I/O, so the master, the workers and the operator
// commands agree on the layout by construction and it can be tested
// without a server.
package protocol

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Version is the protocol version written in the job node. A participant
// refuses a job whose version it does not know rather than guessing.
//
// Version 2 changed what an item's data version means (it now says whether
// the current turn was leased, see TurnOf), gave an item given back a new
// turn, made every lease prove its worker's timer, and added the workers
// counter: a version 1 worker would lease version 2 items wrongly.
//
// Version 3 added the finished state: a master seals a job instead of
// removing it, leaving the results of the items that did not succeed
// (which now carry the item's text and the end of its error output).
// A version 2 worker would wait for ever on a sealed job.
//
// Version 4 packs the items' bytes many to a znode (chunks, see Chunk) and
// creates an item's own znode, its turn node, only when the item is first
// leased: a queued item costs the ensemble its bytes, not a znode. A
// version 3 worker would find no items to lease.
const Version = 4

// BucketSize is how many items (and results) share one parent znode.
// Java clients (zkCli, Curator) cannot list a node whose child list is
// larger than jute.maxbuffer, which happens near 44,000 short names; a
// thousand keeps every list a few kilobytes and the number of buckets of a
// job at the item limit under MaxChildren.
const BucketSize = 1000

// MaxChildren is the most children any zkdog znode may have. It bounds the
// number of buckets, concurrent leases and concurrent timers.
const MaxChildren = 10000

// MaxItems is the largest job: MaxChildren buckets of BucketSize items.
const MaxItems = MaxChildren * BucketSize

// MaxItemBytes is the largest item. The server drops a connection whose
// request approaches 1 MiB, and items are written a batch per request; a
// work item is a file name or a parameter line, so 64 KiB is generous.
const MaxItemBytes = 64 << 10

// Names of the children of the job root.
const (
	itemsDir    = "items"
	resultsDir  = "results"
	leasesDir   = "leases"
	retryDir    = "retry"
	timersDir   = "timers"
	cursorNode  = "cursor"
	doneNode    = "done"
	failedNode  = "failed"
	syncNode    = "sync"
	clockNode   = "clock"
	abortNode   = "abort"
	fillerNode  = "filler"
	workersNode = "workers"
	attemptsDir = "attempts"
	statsNode   = "stats"

	// TimerPrefix is the name prefix of the ephemeral sequential timers.
	TimerPrefix = "t-"
)

// ErrBadRoot reports a job root that is not a usable ZooKeeper path.
var ErrBadRoot = errors.New("bad job root")

// Layout names every znode of the job rooted at Root.
type Layout struct {
	Root string
}

// NewLayout checks root and returns the layout below it.
func NewLayout(root string) (Layout, error) {
	if err := CheckRoot(root); err != nil {
		return Layout{}, err
	}
	return Layout{Root: root}, nil
}

// CheckRoot accepts an absolute, clean ZooKeeper path other than "/" and
// the server's own /zookeeper subtree, made only of characters ZooKeeper
// takes. Refusing here, before anything is written, keeps a bad root from
// failing halfway through creating a job's parents.
func CheckRoot(root string) error {
	why := rootProblem(root)
	if why == "" {
		return nil
	}
	if root == "" {
		return fmt.Errorf("%w: the job root is empty; give an absolute path such as /zkdog/myjob", ErrBadRoot)
	}
	fix := "give an absolute path such as /zkdog/myjob"
	if c := path.Clean(root); c != root && rootProblem(c) == "" {
		fix = fmt.Sprintf("try %q", c)
	}
	return fmt.Errorf("%w: %q %s; %s", ErrBadRoot, root, why, fix)
}

// rootProblem says what is wrong with a root, "" if nothing.
func rootProblem(root string) string {
	switch {
	case root == "":
		return "is empty"
	case !strings.HasPrefix(root, "/"):
		return "is not an absolute path"
	case root == "/":
		return "is ZooKeeper's root itself, which a job cannot own"
	case !utf8.ValidString(root):
		return "is not valid UTF-8"
	}
	for _, r := range root {
		if illegalInPath(r) {
			return fmt.Sprintf("contains %U, a character ZooKeeper refuses in paths", r)
		}
	}
	switch {
	case path.Clean(root) != root:
		return "is not a clean path (no trailing slash, no // or . or ..)"
	case root == "/zookeeper" || strings.HasPrefix(root, "/zookeeper/"):
		return "is inside /zookeeper, which ZooKeeper reserves for itself"
	}
	return ""
}

// illegalInPath mirrors ZooKeeper's PathUtils.validatePath: control
// characters, and (in UTF-16, as the server sees them) the surrogates,
// the private use area and the specials. Characters beyond U+FFFF are
// surrogate pairs there, so they are refused too.
func illegalInPath(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r >= 0xd800 && r <= 0xf8ff) || r >= 0xfff0
}

func (l Layout) child(name string) string { return l.Root + "/" + name }

// Items is the parent of the item buckets.
func (l Layout) Items() string { return l.child(itemsDir) }

// Results is the parent of the result buckets.
func (l Layout) Results() string { return l.child(resultsDir) }

// Leases holds one ephemeral znode per item being worked on.
func (l Layout) Leases() string { return l.child(leasesDir) }

// Retry holds one znode per item waiting to be given out again.
func (l Layout) Retry() string { return l.child(retryDir) }

// Timers holds the workers' ephemeral sequential timers.
func (l Layout) Timers() string { return l.child(timersDir) }

// Cursor is the ticket counter: its data version is the number of tickets
// handed out, so a write with version -1 takes the next ticket atomically.
func (l Layout) Cursor() string { return l.child(cursorNode) }

// Done counts recorded results in its data version.
func (l Layout) Done() string { return l.child(doneNode) }

// Failed counts recorded results with a failed outcome in its data version.
func (l Layout) Failed() string { return l.child(failedNode) }

// Sync is the start barrier; the first worker deletes it.
func (l Layout) Sync() string { return l.child(syncNode) }

// Clock is the master's own node; writing it yields the server's time.
func (l Layout) Clock() string { return l.child(clockNode) }

// Abort exists once the master has given up on the job.
func (l Layout) Abort() string { return l.child(abortNode) }

// Filler is the filling master's ephemeral node: while the job is being
// filled, its absence means the master died before finishing.
func (l Layout) Filler() string { return l.child(fillerNode) }

// Workers counts in its data version the timers ever created: a job
// without items knows from it that workers came, even after they left.
func (l Layout) Workers() string { return l.child(workersNode) }

// Timer is the path of the timer with the given child name.
// Attempts is the parent of the attempt buckets: the records of the
// attempts at an item that ended without its result (retried, vanished,
// given back at a scheduler's TERM).
func (l Layout) Attempts() string { return l.child(attemptsDir) }

// AttemptBucket is the parent of attempt bucket b.
func (l Layout) AttemptBucket(b int) string { return l.Attempts() + "/" + bucketName(b) }

// Attempt is the record of attempt a at item index.
func (l Layout) Attempt(index, a int) string {
	return l.AttemptBucket(Bucket(index)) + "/" + AttemptName(index, a)
}

// AttemptName is the child name of an attempt record: INDEX-ATTEMPT.
func AttemptName(index, a int) string { return indexName(index) + "-" + strconv.Itoa(a) }

// ParseAttemptName reads an attempt record's name.
func ParseAttemptName(name string) (index, attempt int, err error) {
	i, a, ok := strings.Cut(name, "-")
	if ok {
		index, err = strconv.Atoi(i)
		if err == nil {
			attempt, err = strconv.Atoi(a)
		}
	}
	if !ok || err != nil || index < 0 || attempt < 1 || AttemptName(index, attempt) != name {
		return 0, 0, fmt.Errorf("%q is not INDEX-ATTEMPT", name)
	}
	return index, attempt, nil
}

// Stats is the node where the master publishes what the items took.
func (l Layout) Stats() string { return l.child(statsNode) }

func (l Layout) Timer(name string) string { return l.Timers() + "/" + name }

// Bucket is the bucket number of an item index.
func Bucket(index int) int { return index / BucketSize }

// Buckets is how many buckets a job of n items has.
func Buckets(n int) int { return (n + BucketSize - 1) / BucketSize }

// BucketLen is how many items bucket b of a job of n items holds.
func BucketLen(n, b int) int { return min(BucketSize, n-b*BucketSize) }

func bucketName(b int) string { return fmt.Sprintf("%05d", b) }

func indexName(index int) string { return fmt.Sprintf("%010d", index) }

// ParseBucketName reads a bucket's child name; only a name as the layout
// writes it is one.
func ParseBucketName(name string) (int, error) {
	b, err := strconv.Atoi(name)
	if err != nil || b < 0 || b >= MaxChildren || bucketName(b) != name {
		return 0, fmt.Errorf("%q is not a bucket name", name)
	}
	return b, nil
}

// OwnName reports whether name is one the protocol gives some node of a
// job: a fixed child, a bucket, an item, a chunk, a result, a turn or a
// timer.
func OwnName(name string) bool {
	switch name {
	case itemsDir, resultsDir, leasesDir, retryDir, timersDir, cursorNode, doneNode,
		failedNode, syncNode, clockNode, abortNode, fillerNode, workersNode, attemptsDir, statsNode:
		return true
	}
	if strings.HasPrefix(name, TimerPrefix) {
		return true
	}
	_, errB := ParseBucketName(name)
	_, errI := ParseItemName(name)
	_, errC := ParseChunkName(name)
	_, _, errR := ParseResultName(name)
	_, errT := ParseTurn(name)
	_, _, errA := ParseAttemptName(name)
	return errB == nil || errI == nil || errC == nil || errR == nil || errT == nil || errA == nil
}

// ParseItemName reads an item's child name in its bucket.
func ParseItemName(name string) (int, error) {
	i, err := strconv.Atoi(name)
	if err != nil || i < 0 || indexName(i) != name {
		return 0, fmt.Errorf("%q is not an item name", name)
	}
	return i, nil
}

// ItemBucket is the parent of item bucket b.
func (l Layout) ItemBucket(b int) string { return l.Items() + "/" + bucketName(b) }

// Item is item index's turn node: created when the item is first leased,
// empty, its data version saying where its current turn is (TurnCount).
// The item's bytes are in its chunk.
func (l Layout) Item(index int) string { return l.ItemBucket(Bucket(index)) + "/" + indexName(index) }

// Chunk is the znode holding the bytes of the items from index first to
// the next chunk of its bucket (EncodeChunk).
func (l Layout) Chunk(first int) string {
	return l.ItemBucket(Bucket(first)) + "/" + chunkPrefix + indexName(first)
}

// chunkPrefix keeps a chunk's name apart from the turn nodes beside it.
const chunkPrefix = "c-"

// ParseChunkName reads a chunk's child name in its bucket: the index of
// its first item.
func ParseChunkName(name string) (int, error) {
	rest, ok := strings.CutPrefix(name, chunkPrefix)
	if !ok {
		return 0, fmt.Errorf("%q is not a chunk name", name)
	}
	i, err := ParseItemName(rest)
	if err != nil {
		return 0, fmt.Errorf("%q is not a chunk name", name)
	}
	return i, nil
}

// ResultBucket is the parent of result bucket b.
func (l Layout) ResultBucket(b int) string { return l.Results() + "/" + bucketName(b) }

// Result is the znode of item index's result with the given outcome. The
// outcome is part of the name so that listing a bucket accounts for every
// result in it without reading each one.
func (l Layout) Result(index int, o Outcome) string {
	return l.ResultBucket(Bucket(index)) + "/" + ResultName(index, o)
}

// ResultName is the child name of a result in its bucket.
func ResultName(index int, o Outcome) string { return indexName(index) + "." + string(o) }

// ParseResultName splits a result child name into index and outcome. Only
// a name as ResultName writes it is one: the index in its ten digits, so
// that Result(index, outcome) is the node that was listed.
func ParseResultName(name string) (int, Outcome, error) {
	idx, o, ok := strings.Cut(name, ".")
	if !ok {
		return 0, "", fmt.Errorf("result name %q has no outcome", name)
	}
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 || indexName(i) != idx {
		return 0, "", fmt.Errorf("result name %q has a bad index", name)
	}
	out := Outcome(o)
	if !out.valid() {
		return 0, "", fmt.Errorf("result name %q has unknown outcome %q", name, o)
	}
	return i, out, nil
}

// Turn is one handing out of an item: its index, the attempt number (from
// 1, one more for every time the item was handed out again) and how many
// earlier attempts were charged against the job's retries because their
// worker vanished. A ticket lost in a dropped reply is handed out again
// without a charge, so a ZooKeeper failover never makes an item lost.
//
// The item's turn count records where its current turn is (OpenVersion,
// LeasedVersion): every lease, result and requeue is a transaction on its
// turn node.
type Turn struct {
	Index   int
	Attempt int
	Charged int
}

// Name is the child name of the turn's lease or retry entry:
// INDEX-ATTEMPT-CHARGED. The attempt is in the name so that a worker
// whose session died can never release the lease a later attempt holds;
// the charge is, so that the master can read it off a listing.
func (t Turn) Name() string {
	return indexName(t.Index) + "-" + strconv.Itoa(t.Attempt) + "-" + strconv.Itoa(t.Charged)
}

// OpenVersion is the item's turn count while turn attempt is waiting for
// a worker.
func OpenVersion(attempt int) int32 { return int32(2 * (attempt - 1)) }

// LeasedVersion is the item's turn count once turn attempt was leased.
// Leasing bumps the count, so a lease name is used at most once, and the
// count alone tells whether a turn ever ran: a worker that vanished while
// no master watched is charged like any other.
func LeasedVersion(attempt int) int32 { return int32(2*attempt - 1) }

// TurnOf reads an item's turn count: the attempt its current turn is on,
// and whether that turn was leased.
func TurnOf(version int32) (attempt int, leased bool) {
	return int(version)/2 + 1, version%2 == 1
}

// TurnCount is an item's turn count: 0 while its turn node does not exist
// (turn 1 open, no ZooKeeper state for a queued item), else the node's
// data version plus one. Creating the node is the count's first step.
func TurnCount(exists bool, dataVersion int32) int32 {
	if !exists {
		return 0
	}
	return dataVersion + 1
}

// NodeVersion is the data version of an item's turn node at turn count n
// (n >= 1: the node exists).
func NodeVersion(n int32) int32 { return n - 1 }

// Lease is the path of the ephemeral lease of a turn.
func (l Layout) Lease(t Turn) string { return l.Leases() + "/" + t.Name() }

// RetryEntry is the path announcing a turn waiting for a worker.
func (l Layout) RetryEntry(t Turn) string { return l.Retry() + "/" + t.Name() }

// ParseTurn reads a lease or retry entry name. Only a name as Turn.Name
// writes it is one (no sign, no other padding), so that Lease(t) and
// RetryEntry(t) are the node that was listed.
func ParseTurn(name string) (Turn, error) {
	parts := strings.Split(name, "-")
	var t Turn
	var err error
	if len(parts) == 3 {
		t.Index, err = strconv.Atoi(parts[0])
		if err == nil {
			t.Attempt, err = strconv.Atoi(parts[1])
		}
		if err == nil {
			t.Charged, err = strconv.Atoi(parts[2])
		}
	}
	if len(parts) != 3 || err != nil || t.Index < 0 || t.Attempt < 1 || t.Charged < 0 || t.Charged >= t.Attempt || t.Name() != name {
		return Turn{}, fmt.Errorf("%q is not INDEX-ATTEMPT-CHARGED", name)
	}
	return t, nil
}

// Outcome is how an attempt at an item ended, as the master accounts it.
type Outcome string

const (
	// OK: the command exited 0.
	OK Outcome = "ok"
	// Failed: the command exited non-zero or was killed by a signal.
	Failed Outcome = "failed"
	// Stalled: the worker stopped a command that made no progress.
	Stalled Outcome = "stalled"
	// Lost: the item's workers vanished without a result more often than
	// the job's retries allow; written by the master.
	Lost Outcome = "lost"
	// Timeout: the worker stopped a command that ran longer than the
	// job's --item-timeout.
	Timeout Outcome = "timeout"
	// Vanished and Terminated end an attempt, never an item: its worker
	// vanished, or its task was ended by the scheduler (TERM) and gave
	// the item back. They name attempt records only.
	Vanished   Outcome = "vanished"
	Terminated Outcome = "terminated"
	// Unfinished names an item without a result: still to run in a live
	// job, never run in a sealed one. It is never part of a result's name.
	Unfinished Outcome = "unfinished"
)

func (o Outcome) valid() bool {
	switch o {
	case OK, Failed, Stalled, Lost, Timeout:
		return true
	}
	return false
}

// validAttempt: the outcomes an attempt record may carry.
func (o Outcome) validAttempt() bool {
	return o != OK && (o.valid() || o == Vanished || o == Terminated)
}

// IsFailure reports whether the outcome makes the job fail.
func (o Outcome) IsFailure() bool { return o != OK }
