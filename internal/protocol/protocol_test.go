package protocol_test

import (
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zkdog/zkdog/internal/protocol"
)

func TestCheckRootAccepts(t *testing.T) {
	for _, root := range []string{
		"/a",
		"/zkdog/run42",
		"/zkdog/run-42_x.y",
		"/zookeeperish",     // only the /zookeeper subtree is reserved
		"/jobs/zookeeper",   // not at the top
		"/zkdog/ümlaut/job", // non-ASCII text is a valid znode name
	} {
		if err := protocol.CheckRoot(root); err != nil {
			t.Errorf("CheckRoot(%q) = %v, want nil", root, err)
		}
		l, err := protocol.NewLayout(root)
		if err != nil || l.Root != root {
			t.Errorf("NewLayout(%q) = %+v, %v; want a layout rooted there", root, l, err)
		}
	}
}

// badRoots are roots CheckRoot must refuse, with why.
var badRoots = []struct{ name, root string }{
	{"empty", ""},
	{"relative", "zkdog/run42"},
	{"relative dot", "./run42"},
	{"slash", "/"},
	{"trailing slash", "/zkdog/run42/"},
	{"double slash", "//"},
	{"double slash inside", "/zkdog//run42"},
	{"dot", "/./"},
	{"dot component", "/zkdog/./run42"},
	{"dot-dot component", "/zkdog/../run42"},
	{"reserved", "/zookeeper"},
	{"reserved subtree", "/zookeeper/x"},
	{"reserved with trailing slash", "/zookeeper/"},
	{"NUL", "/zkdog/a\x00b"},
	{"control char", "/zkdog/a\x01b"},
	{"newline", "/zkdog/run42\n"},
	{"tab", "/zkdog/a\tb"},
	{"escape", "/zkdog/a\x1b[31mb"},
	{"DEL", "/zkdog/a\x7fb"},
}

func TestCheckRootRefuses(t *testing.T) {
	for _, c := range badRoots {
		t.Run(c.name, func(t *testing.T) {
			err := protocol.CheckRoot(c.root)
			if !errors.Is(err, protocol.ErrBadRoot) {
				t.Fatalf("CheckRoot(%q) = %v, want ErrBadRoot", c.root, err)
			}
			if c.root != "" && c.root != "/" && !strings.Contains(err.Error(), strconv.Quote(c.root)) {
				t.Errorf("CheckRoot(%q) = %q: does not name the root it refuses", c.root, err)
			}
			if _, err := protocol.NewLayout(c.root); !errors.Is(err, protocol.ErrBadRoot) {
				t.Errorf("NewLayout(%q) = %v, want ErrBadRoot", c.root, err)
			}
		})
	}
}

var suggestion = regexp.MustCompile(`try "((?:[^"\\]|\\.)*)"`)

// TestCheckRootSaysWhatToDo: a person who mistyped --root learns from the
// error what to give instead, and a suggested root is one CheckRoot takes.
func TestCheckRootSaysWhatToDo(t *testing.T) {
	for _, c := range badRoots {
		t.Run(c.name, func(t *testing.T) {
			msg := protocol.CheckRoot(c.root).Error()
			if strings.Contains(msg, "such as /zkdog/myjob") {
				return
			}
			m := suggestion.FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("CheckRoot(%q) = %q: gives neither an example root nor a corrected one", c.root, msg)
			}
			fixed := unquote(t, `"`+m[1]+`"`)
			if err := protocol.CheckRoot(fixed); err != nil {
				t.Errorf("CheckRoot(%q) suggests %q, which is refused too: %v", c.root, fixed, err)
			}
		})
	}
}

// TestCheckRootRefusesWhatZooKeeperRefuses: a root that passes CheckRoot
// must be a path ZooKeeper accepts, or the master fails after having
// started to write (parents first) with the client's bare "zk: invalid
// path". The Go client refuses C1 control characters (U+0080-U+009F, e.g.
// NEL and CSI, a terminal escape), invalid UTF-8 and U+FFF0-U+FFFF; the
// server refuses U+D800-U+F8FF (checked against a real server).
func TestCheckRootRefusesWhatZooKeeperRefuses(t *testing.T) {
	for _, c := range []struct{ name, root string }{
		{"C1 control NEL", "/zkdog/a\u0085b"},
		{"C1 control CSI", "/zkdog/a\u009b31mb"},
		{"invalid UTF-8", "/zkdog/a\xffb"},
		{"private use", "/zkdog/a\ue000b"},
		{"specials", "/zkdog/a\ufff0b"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := protocol.CheckRoot(c.root); !errors.Is(err, protocol.ErrBadRoot) {
				t.Errorf("CheckRoot(%q) = %v, want ErrBadRoot", c.root, err)
			}
		})
	}
}

func TestLayoutPaths(t *testing.T) {
	l, err := protocol.NewLayout("/zkdog/run42")
	if err != nil {
		t.Fatal(err)
	}
	// The fixed children, as docs/protocol.md names them.
	for got, want := range map[string]string{
		l.Items():   "/zkdog/run42/items",
		l.Results(): "/zkdog/run42/results",
		l.Leases():  "/zkdog/run42/leases",
		l.Retry():   "/zkdog/run42/retry",
		l.Timers():  "/zkdog/run42/timers",
		l.Cursor():  "/zkdog/run42/cursor",
		l.Done():    "/zkdog/run42/done",
		l.Failed():  "/zkdog/run42/failed",
		l.Sync():    "/zkdog/run42/sync",
		l.Clock():   "/zkdog/run42/clock",
		l.Abort():   "/zkdog/run42/abort",
		l.Filler():  "/zkdog/run42/filler",
		l.Workers(): "/zkdog/run42/workers",

		l.Timer("t-0000000003"): "/zkdog/run42/timers/t-0000000003",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}

	for _, c := range []struct {
		index          int
		bucket         int
		item, resultOK string
	}{
		{0, 0, "/zkdog/run42/items/00000/0000000000", "/zkdog/run42/results/00000/0000000000.ok"},
		{999, 0, "/zkdog/run42/items/00000/0000000999", "/zkdog/run42/results/00000/0000000999.ok"},
		{1000, 1, "/zkdog/run42/items/00001/0000001000", "/zkdog/run42/results/00001/0000001000.ok"},
		{9_999_999, 9999, "/zkdog/run42/items/09999/0009999999", "/zkdog/run42/results/09999/0009999999.ok"},
	} {
		if got := protocol.Bucket(c.index); got != c.bucket {
			t.Errorf("Bucket(%d) = %d, want %d", c.index, got, c.bucket)
		}
		if got := l.Item(c.index); got != c.item {
			t.Errorf("Item(%d) = %s, want %s", c.index, got, c.item)
		}
		if got := l.Result(c.index, protocol.OK); got != c.resultOK {
			t.Errorf("Result(%d, ok) = %s, want %s", c.index, got, c.resultOK)
		}
		// Every item's znode is in its bucket, and so is its result.
		if !strings.HasPrefix(l.Item(c.index), l.ItemBucket(c.bucket)+"/") ||
			!strings.HasPrefix(l.Result(c.index, protocol.Lost), l.ResultBucket(c.bucket)+"/") {
			t.Errorf("item %d or its result is outside bucket %d", c.index, c.bucket)
		}
	}
	if got, want := l.Result(7, protocol.Failed), "/zkdog/run42/results/00000/0000000007.failed"; got != want {
		t.Errorf("Result(7, failed) = %s, want %s", got, want)
	}

	turn := protocol.Turn{Index: 1234, Attempt: 3, Charged: 2}
	if got, want := l.Lease(turn), "/zkdog/run42/leases/0000001234-3-2"; got != want {
		t.Errorf("Lease = %s, want %s", got, want)
	}
	if got, want := l.RetryEntry(turn), "/zkdog/run42/retry/0000001234-3-2"; got != want {
		t.Errorf("RetryEntry = %s, want %s", got, want)
	}
}

func TestBuckets(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 0},
		{1, 1},
		{999, 1},
		{1000, 1},
		{1001, 2},
		{2500, 3},
		{protocol.MaxItems, protocol.MaxChildren},
	} {
		if got := protocol.Buckets(c.n); got != c.want {
			t.Errorf("Buckets(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	// The last item of the largest job is in the last bucket.
	if got := protocol.Bucket(protocol.MaxItems - 1); got != protocol.Buckets(protocol.MaxItems)-1 {
		t.Errorf("Bucket(MaxItems-1) = %d, want the last of %d buckets", got, protocol.Buckets(protocol.MaxItems))
	}
}

func TestTurnRoundTrip(t *testing.T) {
	for _, turn := range []protocol.Turn{
		{Index: 0, Attempt: 1, Charged: 0},
		{Index: 999, Attempt: 2, Charged: 1},
		{Index: 1000, Attempt: 5, Charged: 0},
		{Index: 9_999_999, Attempt: 12, Charged: 11},
	} {
		name := turn.Name()
		got, err := protocol.ParseTurn(name)
		if err != nil || got != turn {
			t.Errorf("ParseTurn(%q) = %+v, %v; want %+v", name, got, err, turn)
		}
	}
	if got, want := (protocol.Turn{Index: 42, Attempt: 3, Charged: 1}).Name(), "0000000042-3-1"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
}

func TestParseTurnRefuses(t *testing.T) {
	for _, name := range []string{
		"",
		"0000000001",
		"0000000001-1",
		"0000000001-1-0-0",
		"0000000001-0-0",  // attempts count from 1
		"0000000001-1-1",  // charged >= attempt: a turn cannot be charged for itself
		"0000000001-2-2",  // likewise
		"0000000001-2-5",  // more charges than earlier attempts
		"-1-1-0",          // negative index
		"0000000001--1-0", // negative attempt
		"0000000001-1--1", // negative charge
		"x-1-0",
		"0000000001-x-0",
		"0000000001-1-x",
		"0000000001-1-0.ok",
		"99999999999999999999-1-0", // overflows int
		"t-0000000001",             // a timer, not a turn
	} {
		if got, err := protocol.ParseTurn(name); err == nil {
			t.Errorf("ParseTurn(%q) = %+v, want an error", name, got)
		} else if !strings.Contains(err.Error(), "INDEX-ATTEMPT-CHARGED") {
			t.Errorf("ParseTurn(%q) error %q does not say what a turn name looks like", name, err)
		}
	}
}

func TestResultName(t *testing.T) {
	for _, o := range []protocol.Outcome{protocol.OK, protocol.Failed, protocol.Stalled, protocol.Lost} {
		for _, i := range []int{0, 999, 1000, 9_999_999} {
			name := protocol.ResultName(i, o)
			gi, got, err := protocol.ParseResultName(name)
			if err != nil || gi != i || got != o {
				t.Errorf("ParseResultName(%q) = %d, %q, %v; want %d, %q", name, gi, got, err, i, o)
			}
		}
	}
	if got, want := protocol.ResultName(5, protocol.Stalled), "0000000005.stalled"; got != want {
		t.Errorf("ResultName = %q, want %q", got, want)
	}
	for _, name := range []string{
		"",
		"0000000005",          // no outcome
		"0000000005.",         // empty outcome
		"0000000005.weird",    // unknown outcome
		"0000000005.OK",       // outcomes are lower case
		"0000000005.ok.extra", // not an outcome
		"x.ok",
		"-5.ok",
		".ok",
		"0000000005-1-0", // a turn, not a result
	} {
		if i, o, err := protocol.ParseResultName(name); err == nil {
			t.Errorf("ParseResultName(%q) = %d, %q; want an error", name, i, o)
		}
	}
}

func TestOutcomeIsFailure(t *testing.T) {
	for o, want := range map[protocol.Outcome]bool{
		protocol.OK: false, protocol.Failed: true, protocol.Stalled: true, protocol.Lost: true,
	} {
		if got := o.IsFailure(); got != want {
			t.Errorf("%s.IsFailure() = %v, want %v", o, got, want)
		}
	}
}

func TestLabel(t *testing.T) {
	short := "input/file-0001.dat"
	if got := protocol.Label([]byte(short)); got != short {
		t.Errorf("Label(%q) = %q, want it unchanged", short, got)
	}
	exact := strings.Repeat("x", protocol.LabelBytes)
	if got := protocol.Label([]byte(exact)); got != exact {
		t.Errorf("Label of exactly %d bytes = %q, want it unchanged", protocol.LabelBytes, got)
	}
	long := strings.Repeat("abcdefghij", 20) // 200 bytes
	got := protocol.Label([]byte(long))
	if want := long[:protocol.LabelBytes] + "…"; got != want {
		t.Errorf("Label(200 bytes) = %q, want the first %d bytes and an ellipsis %q", got, protocol.LabelBytes, want)
	}
	if protocol.Label(nil) != "" {
		t.Errorf("Label(nil) = %q, want empty", protocol.Label(nil))
	}
}

// TestLabelKeepsText: a label is shown to people (status, reports, JSON),
// so cutting a long item must not cut a character in half.
func TestLabelKeepsText(t *testing.T) {
	item := strings.Repeat("é", 100) // 200 bytes, 2 per character; byte 120 is a boundary
	item = "x" + item                // now byte 120 is inside a character
	got := protocol.Label([]byte(item))
	if !utf8.ValidString(got) {
		t.Fatalf("Label = %q: not valid UTF-8", got)
	}
	text := strings.TrimSuffix(got, "…")
	if text == got || !strings.HasPrefix(item, text) || len(text) > protocol.LabelBytes {
		t.Errorf("Label = %q, want at most %d bytes of the item's start and an ellipsis", got, protocol.LabelBytes)
	}
}

func TestJobRecord(t *testing.T) {
	j := protocol.Job{Protocol: protocol.Version, State: protocol.StateReady, Items: 3, TimerMillis: 1500,
		Retries: 2, Sync: true, Master: "node1:42", CreatedMillis: 1700000000000,
		Policy: protocol.Policy{RetryOn: []string{"75", "stalled"}, NoRetryExit: "2", MaxFailures: 3, OnHang: protocol.OnHangStall}}
	got, err := protocol.DecodeJob(protocol.Encode(j))
	if err != nil || !reflect.DeepEqual(got, j) {
		t.Fatalf("DecodeJob(Encode(%+v)) = %+v, %v", j, got, err)
	}
	if got.Timer() != 1500*time.Millisecond {
		t.Errorf("Timer() = %v, want 1.5s", got.Timer())
	}
	// The field names are the protocol (docs/protocol.md).
	enc := string(protocol.Encode(j))
	for _, f := range []string{`"protocol":` + strconv.Itoa(protocol.Version), `"state":"ready"`, `"items":3`, `"timer_ms":1500`, `"retries":2`, `"sync":true`, `"master":"node1:42"`} {
		if !strings.Contains(enc, f) {
			t.Errorf("encoded job %s lacks %s", enc, f)
		}
	}
	// Fields added later within the version are ignored.
	got, err = protocol.DecodeJob([]byte(`{"protocol":` + strconv.Itoa(protocol.Version) + `,"state":"filling","items":2,"timer_ms":10,"future":{"x":1}}`))
	if err != nil || got.State != protocol.StateFilling || got.Items != 2 {
		t.Errorf("DecodeJob with an unknown field = %+v, %v; want it read", got, err)
	}
}

func TestDecodeJobRefuses(t *testing.T) {
	// Versions 1 and 2 (the protocols before this one), a future version, none.
	for _, b := range []string{`{"protocol":1,"state":"ready","items":1}`, `{"protocol":3,"state":"ready","items":1}`, `{"protocol":5,"state":"ready","items":1}`, `{"protocol":0}`, `{"state":"ready"}`} {
		_, err := protocol.DecodeJob([]byte(b))
		if !errors.Is(err, protocol.ErrUnknownVersion) || errors.Is(err, protocol.ErrNotAJob) {
			t.Errorf("DecodeJob(%s) = %v, want ErrUnknownVersion", b, err)
		}
	}
	if _, err := protocol.DecodeJob([]byte(`{"protocol":5}`)); err == nil || !strings.Contains(err.Error(), "5") {
		t.Errorf("DecodeJob of version 5: %v; want the error to name the version", err)
	}
	// A parent znode (no data), or someone else's node.
	for _, b := range []string{"", "hello", "{", "[1,2]", `{"protocol":"one"}`} {
		_, err := protocol.DecodeJob([]byte(b))
		if !errors.Is(err, protocol.ErrNotAJob) || errors.Is(err, protocol.ErrUnknownVersion) {
			t.Errorf("DecodeJob(%q) = %v, want ErrNotAJob", b, err)
		}
	}
	if _, err := protocol.DecodeJob(nil); !errors.Is(err, protocol.ErrNotAJob) {
		t.Errorf("DecodeJob(nil) = %v, want ErrNotAJob", err)
	}
}

func TestRecords(t *testing.T) {
	v := protocol.Version
	timer := protocol.Timer{V: v, ID: "100_3", Host: "node7", Pid: 4242, Kicks: 9, SessionMillis: 4000}
	if got, err := protocol.DecodeTimer(protocol.Encode(timer)); err != nil || got != timer {
		t.Errorf("DecodeTimer(Encode(%+v)) = %+v, %v", timer, got, err)
	}
	lease := protocol.Lease{V: v, Timer: "t-0000000001", ID: "100_3", Host: "node7", Pid: 4242}
	if got, err := protocol.DecodeLease(protocol.Encode(lease)); err != nil || got != lease {
		t.Errorf("DecodeLease(Encode(%+v)) = %+v, %v", lease, got, err)
	}
	result := protocol.Result{V: v, Outcome: protocol.Failed, Exit: 137, Signal: 9, DurationMillis: 1234,
		Attempt: 2, ID: "100_3", Host: "node7", Timer: "t-0000000001", Reason: "killed",
		Item: []byte("in\xff put"), Stderr: "boom\n"}
	if got, err := protocol.DecodeResult(protocol.Encode(result)); err != nil || !reflect.DeepEqual(got, result) {
		t.Errorf("DecodeResult(Encode(%+v)) = %+v, %v", result, got, err)
	}
	abort := protocol.Abort{V: v, Reason: "timer t-0000000001 un-kicked"}
	if got, err := protocol.DecodeAbort(protocol.Encode(abort)); err != nil || got != abort {
		t.Errorf("DecodeAbort(Encode(%+v)) = %+v, %v", abort, got, err)
	}
	// Unknown fields are ignored within a version (here: the item fields
	// timers carried before the lease named its timer, and a new one).
	if got, err := protocol.DecodeTimer([]byte(`{"v":` + strconv.Itoa(v) + `,"id":"w","kicks":3,"item":-1,"label":"x","new_field":[1]}`)); err != nil || got.ID != "w" || got.Kicks != 3 {
		t.Errorf("DecodeTimer with an unknown field = %+v, %v", got, err)
	}
}

func TestDecodeRecordsRefuse(t *testing.T) {
	decoders := map[string]func([]byte) error{
		"timer":  func(b []byte) error { _, err := protocol.DecodeTimer(b); return err },
		"lease":  func(b []byte) error { _, err := protocol.DecodeLease(b); return err },
		"result": func(b []byte) error { _, err := protocol.DecodeResult(b); return err },
		"abort":  func(b []byte) error { _, err := protocol.DecodeAbort(b); return err },
	}
	for kind, decode := range decoders {
		for _, b := range []string{`{"v":3}`, `{"v":5}`, `{"v":0}`, `{}`, `{"v":3,"reason":"x","id":"y"}`, `{"v":5,"reason":"x","id":"y"}`} {
			if err := decode([]byte(b)); !errors.Is(err, protocol.ErrUnknownVersion) {
				t.Errorf("decoding a %s from %s: %v, want ErrUnknownVersion", kind, b, err)
			}
		}
		for _, b := range []string{"", "not json", "{", `{"v":"1"}`} {
			err := decode([]byte(b))
			if err == nil || errors.Is(err, protocol.ErrUnknownVersion) {
				t.Errorf("decoding a %s from %q: %v, want a decoding error", kind, b, err)
			} else if !strings.Contains(err.Error(), kind) {
				t.Errorf("decoding a %s from %q: %q does not say what was being read", kind, b, err)
			}
		}
	}
}

func TestEncodeSetsNothingItself(t *testing.T) {
	// Encode writes what it is given; the version comes from the callers
	// (job.CreateTimer and friends). A zero version must read back as
	// unknown, so a record written without one is never trusted.
	if _, err := protocol.DecodeTimer(protocol.Encode(protocol.Timer{ID: "w"})); !errors.Is(err, protocol.ErrUnknownVersion) {
		t.Errorf("a timer encoded without a version decoded with %v, want ErrUnknownVersion", err)
	}
}

func unquote(t *testing.T, s string) string {
	t.Helper()
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("unquoting %s: %v", s, err)
	}
	return u
}

// TestTurnVersions: an item's data version says which turn it is on and
// whether that turn was leased (docs/protocol.md, version 2): 0 while the
// first turn waits, 1 once it is leased, 2 once it ended and the second
// waits, and so on.
func TestTurnVersions(t *testing.T) {
	for attempt := 1; attempt <= 5; attempt++ {
		open, leased := protocol.OpenVersion(attempt), protocol.LeasedVersion(attempt)
		if open != int32(2*(attempt-1)) || leased != open+1 {
			t.Errorf("attempt %d: open version %d, leased %d; want %d and %d", attempt, open, leased, 2*(attempt-1), 2*attempt-1)
		}
		if a, l := protocol.TurnOf(open); a != attempt || l {
			t.Errorf("TurnOf(%d) = %d, %v; want %d, not leased", open, a, l, attempt)
		}
		if a, l := protocol.TurnOf(leased); a != attempt || !l {
			t.Errorf("TurnOf(%d) = %d, %v; want %d, leased", leased, a, l, attempt)
		}
		// Ending a leased turn (a result, a give-back, a requeue) bumps
		// the version once more: the next turn is open.
		if next := protocol.OpenVersion(attempt + 1); next != leased+1 {
			t.Errorf("attempt %d: the next turn opens at %d, want %d", attempt, next, leased+1)
		}
	}
}

// TestTimerLimit: a timer is judged against the job's limit, or twice its
// worker's session timeout if that is longer.
func TestTimerLimit(t *testing.T) {
	for _, c := range []struct {
		session int64
		limit   time.Duration
		want    time.Duration
	}{
		{0, time.Second, time.Second},
		{400, time.Second, time.Second},
		{500, time.Second, time.Second},
		{4000, time.Second, 8 * time.Second},
		{4000, time.Minute, time.Minute},
	} {
		if got := (protocol.Timer{SessionMillis: c.session}).Limit(c.limit); got != c.want {
			t.Errorf("Timer{session %dms}.Limit(%v) = %v, want %v", c.session, c.limit, got, c.want)
		}
	}
	if enc := string(protocol.Encode(protocol.Timer{V: protocol.Version, SessionMillis: 4000})); !strings.Contains(enc, `"session_ms":4000`) {
		t.Errorf("encoded timer %s lacks session_ms", enc)
	}
}
