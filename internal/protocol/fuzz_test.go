package protocol_test

import (
	"bytes"
	"errors"
	"path"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/zkdog/zkdog/internal/protocol"
)

// legalPathRune is ZooKeeper's PathUtils.validatePath rule, written out
// independently of the package's illegalInPath: no control characters
// (C0, DEL, C1), nothing the server sees as a surrogate, private use or
// special, and nothing beyond the BMP (a surrogate pair in UTF-16).
func legalPathRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return false
	case r >= 0xd800 && r <= 0xdfff, r >= 0xe000 && r <= 0xf8ff:
		return false
	case r >= 0xfff0:
		return false
	}
	return true
}

// FuzzCheckRoot: a root CheckRoot accepts is a ZooKeeper path a job can
// own (absolute, clean, not "/", not in /zookeeper, valid UTF-8, only
// characters ZooKeeper takes), and so is every znode its layout names; a
// refused root wraps ErrBadRoot and quotes the root, and a suggested fix
// is itself accepted. NewLayout agrees with CheckRoot.
func FuzzCheckRoot(f *testing.F) {
	for _, s := range []string{
		"/a", "/zkdog/run42", "/zkdog/run-42_x.y", "/zookeeperish", "/jobs/zookeeper", "/zkdog/ümlaut/job",
		"", "/", "//", "/./", "zkdog/run42", "./run42", "/zkdog/run42/", "/zkdog//run42", "/zkdog/./run42",
		"/zkdog/../run42", "/..", "/zookeeper", "/zookeeper/", "/zookeeper/x", "/Zookeeper", "/zookeeper..",
		"/zkdog/a\x00b", "/zkdog/a\x01b", "/zkdog/run42\n", "/zkdog/a\tb", "/zkdog/a\x1b[31mb", "/zkdog/a\x7fb",
		"/zkdog/a\u0085b", "/zkdog/a\u009b31mb", "/zkdog/a\xffb", "/zkdog/a\ue000b", "/zkdog/a\uf8ffb",
		"/zkdog/a\uf900b", "/zkdog/a\ufff0b", "/zkdog/a\uffefb", "/zkdog/\U0001F600", "/a\xed\xa0\x80",
		"/a b", "/ ", "/a/ /b", "/.hidden", "/...", "/a/...",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, root string) {
		err := protocol.CheckRoot(root)
		l, lerr := protocol.NewLayout(root)
		if (err == nil) != (lerr == nil) || (err != nil && err.Error() != lerr.Error()) {
			t.Fatalf("CheckRoot(%q) = %v but NewLayout = %v", root, err, lerr)
		}
		if err != nil {
			if !errors.Is(err, protocol.ErrBadRoot) {
				t.Fatalf("CheckRoot(%q) = %v, want it to wrap ErrBadRoot", root, err)
			}
			if root != "" && !strings.Contains(err.Error(), strconv.Quote(root)) {
				t.Fatalf("CheckRoot(%q) = %q: does not quote the root it refuses", root, err)
			}
			if m := suggestion.FindStringSubmatch(err.Error()); m != nil {
				fixed, uerr := strconv.Unquote(`"` + m[1] + `"`)
				if uerr != nil {
					t.Fatalf("CheckRoot(%q) = %q: suggestion does not unquote: %v", root, err, uerr)
				}
				if ferr := protocol.CheckRoot(fixed); ferr != nil {
					t.Fatalf("CheckRoot(%q) suggests %q, which is refused: %v", root, fixed, ferr)
				}
			}
			if l != (protocol.Layout{}) {
				t.Fatalf("NewLayout(%q) refused but returned %+v", root, l)
			}
			return
		}

		// Accepted: the documented invariants, checked without the
		// package's own helpers.
		switch {
		case !strings.HasPrefix(root, "/"):
			t.Fatalf("accepted %q: not absolute", root)
		case root == "/":
			t.Fatalf("accepted %q: ZooKeeper's root", root)
		case path.Clean(root) != root:
			t.Fatalf("accepted %q: not clean (%q)", root, path.Clean(root))
		case root == "/zookeeper" || strings.HasPrefix(root, "/zookeeper/"):
			t.Fatalf("accepted %q: inside /zookeeper", root)
		case !utf8.ValidString(root):
			t.Fatalf("accepted %q: not valid UTF-8", root)
		}
		for _, c := range strings.Split(root[1:], "/") {
			if c == "" || c == "." || c == ".." {
				t.Fatalf("accepted %q: component %q", root, c)
			}
		}
		for i, r := range root {
			if !legalPathRune(r) {
				t.Fatalf("accepted %q: %U at byte %d is a character ZooKeeper refuses", root, r, i)
			}
		}
		if l.Root != root {
			t.Fatalf("NewLayout(%q).Root = %q", root, l.Root)
		}
		// Every znode of the job is a path below the root that ZooKeeper
		// takes too.
		for _, p := range []string{
			l.Items(), l.Results(), l.Leases(), l.Retry(), l.Timers(), l.Cursor(), l.Done(), l.Failed(),
			l.Sync(), l.Clock(), l.Abort(), l.Filler(), l.Workers(), l.Timer("t-0000000001"),
			l.Item(0), l.Item(protocol.MaxItems - 1), l.Result(12345, protocol.Stalled),
			l.Lease(protocol.Turn{Index: 7, Attempt: 2, Charged: 1}), l.RetryEntry(protocol.Turn{Index: 7, Attempt: 3, Charged: 1}),
		} {
			if !strings.HasPrefix(p, root+"/") {
				t.Fatalf("layout of %q names %q, outside the root", root, p)
			}
			if perr := protocol.CheckRoot(p); perr != nil {
				t.Fatalf("layout of %q names %q, which is not a valid path: %v", root, p, perr)
			}
		}
	})
}

// FuzzParseTurn: a name ParseTurn accepts is a valid turn (index >= 0,
// attempt >= 1, 0 <= charged < attempt) written the way Turn.Name writes
// it, so the path a caller rebuilds from the turn is the node it listed;
// a refused name gets an error quoting it. From the other side, for any
// generated turn, ParseTurn(t.Name()) gives t back exactly when t is
// valid.
func FuzzParseTurn(f *testing.F) {
	for _, s := range []string{
		"0000000000-1-0", "0000000999-2-1", "0000001000-5-0", "0009999999-12-11", "0000000042-3-1",
		"", "0000000001", "0000000001-1", "0000000001-1-0-0", "0000000001-0-0", "0000000001-1-1",
		"0000000001-2-2", "0000000001-2-5", "-1-1-0", "0000000001--1-0", "0000000001-1--1", "x-1-0",
		"0000000001-x-0", "0000000001-1-x", "0000000001-1-0.ok", "99999999999999999999-1-0", "t-0000000001",
		"1-1-0", "+0000000001-1-0", "0000000001-+1-0", "0000000001-01-0", "0000000001-1-00", " 0000000001-1-0",
		"0000000001-1-0 ", "0000000001-1-0\n", "00000000001-1-0", "9223372036854775807-2-1",
	} {
		f.Add(s, 0, 1, 0)
	}
	f.Add("", 12345, 3, 2)
	f.Add("", -1, 1, 0)
	f.Add("", 0, 0, 0)
	f.Add("", 5, 2, 2)
	f.Add("", 5, -2, -1)
	f.Add("", 99999999999, 1, 0)
	f.Fuzz(func(t *testing.T, name string, index, attempt, charged int) {
		turn, err := protocol.ParseTurn(name)
		if err != nil {
			if turn != (protocol.Turn{}) {
				t.Fatalf("ParseTurn(%q) refused (%v) but returned %+v", name, err, turn)
			}
			if !strings.Contains(err.Error(), strconv.Quote(name)) || !strings.Contains(err.Error(), "INDEX-ATTEMPT-CHARGED") {
				t.Fatalf("ParseTurn(%q) = %q: does not quote the name and say what a turn looks like", name, err)
			}
		} else {
			if turn.Index < 0 || turn.Attempt < 1 || turn.Charged < 0 || turn.Charged >= turn.Attempt {
				t.Fatalf("ParseTurn(%q) accepted an invalid turn %+v", name, turn)
			}
			if turn.Name() != name {
				t.Fatalf("ParseTurn(%q) = %+v, whose name is %q: a name zkdog never writes was taken for a turn", name, turn, turn.Name())
			}
			if again, err := protocol.ParseTurn(turn.Name()); err != nil || again != turn {
				t.Fatalf("ParseTurn(%q) = %+v, but its name %q parses to %+v, %v", name, turn, turn.Name(), again, err)
			}
		}

		gen := protocol.Turn{Index: index, Attempt: attempt, Charged: charged}
		valid := index >= 0 && attempt >= 1 && charged >= 0 && charged < attempt
		got, err := protocol.ParseTurn(gen.Name())
		if valid && (err != nil || got != gen) {
			t.Fatalf("ParseTurn(%q) = %+v, %v; want %+v", gen.Name(), got, err, gen)
		}
		if !valid && err == nil {
			t.Fatalf("ParseTurn(%q) = %+v: the name of an invalid turn %+v was accepted", gen.Name(), got, gen)
		}
	})
}

var outcomes = []protocol.Outcome{protocol.OK, protocol.Failed, protocol.Stalled, protocol.Lost}

// FuzzParseResultName: a name ParseResultName accepts has an index >= 0
// and one of the four outcomes, and is exactly ResultName of them (so
// Layout.Result rebuilds the node that was listed); a refused name gets an
// error quoting it. For any generated index and outcome,
// ParseResultName(ResultName(i, o)) gives them back exactly when the index
// is not negative.
func FuzzParseResultName(f *testing.F) {
	for _, s := range []string{
		"0000000000.ok", "0000000999.failed", "0000001000.stalled", "0009999999.lost", "0000000005.stalled",
		"", "0000000005", "0000000005.", "0000000005.weird", "0000000005.OK", "0000000005.ok.extra",
		"x.ok", "-5.ok", ".ok", "0000000005-1-0", "5.ok", "+0000000005.ok", "00000000005.ok", " 0000000005.ok",
		"0000000005.ok\n", "99999999999999999999.ok", "9223372036854775807.lost", "0000000005. ok",
	} {
		f.Add(s, 0, uint8(0))
	}
	f.Add("", 7, uint8(1))
	f.Add("", -7, uint8(2))
	f.Add("", 99999999999, uint8(3))
	f.Fuzz(func(t *testing.T, name string, index int, o uint8) {
		i, out, err := protocol.ParseResultName(name)
		if err != nil {
			if i != 0 || out != "" {
				t.Fatalf("ParseResultName(%q) refused (%v) but returned %d, %q", name, err, i, out)
			}
			if !strings.Contains(err.Error(), strconv.Quote(name)) {
				t.Fatalf("ParseResultName(%q) = %q: does not quote the name", name, err)
			}
		} else {
			known := false
			for _, k := range outcomes {
				known = known || out == k
			}
			if i < 0 || !known {
				t.Fatalf("ParseResultName(%q) = %d, %q: not a valid index and outcome", name, i, out)
			}
			if protocol.ResultName(i, out) != name {
				t.Fatalf("ParseResultName(%q) = %d, %q, whose name is %q: a name zkdog never writes was taken for a result", name, i, out, protocol.ResultName(i, out))
			}
		}

		want := outcomes[int(o)%len(outcomes)]
		gen := protocol.ResultName(index, want)
		gi, got, err := protocol.ParseResultName(gen)
		if index >= 0 && (err != nil || gi != index || got != want) {
			t.Fatalf("ParseResultName(%q) = %d, %q, %v; want %d, %q", gen, gi, got, err, index, want)
		}
		if index < 0 && err == nil {
			t.Fatalf("ParseResultName(%q) accepted a negative index: %d", gen, gi)
		}
	})
}

// FuzzDecodeRecords: no decoder panics on any bytes; an accepted record
// carries this protocol's version; re-encoding an accepted record and
// decoding that gives the same record; a refusal either says the version
// is unknown or names the kind of record (and, for the job node, is
// exactly one of ErrNotAJob and ErrUnknownVersion).
func FuzzDecodeRecords(f *testing.F) {
	v := strconv.Itoa(protocol.Version)
	for _, s := range []string{
		string(protocol.Encode(protocol.Job{Protocol: protocol.Version, State: protocol.StateReady, Items: 3, TimerMillis: 1500,
			Retries: 2, Sync: true, Master: "node1:42", CreatedMillis: 1700000000000, ExpectWorkers: 2})),
		string(protocol.Encode(protocol.Timer{V: protocol.Version, ID: "100_3", Host: "node7", Pid: 4242, Kicks: 9, SessionMillis: 4000})),
		string(protocol.Encode(protocol.Lease{V: protocol.Version, Timer: "t-0000000001", ID: "100_3", Host: "node7", Pid: 4242})),
		string(protocol.Encode(protocol.Result{V: protocol.Version, Outcome: protocol.Failed, Exit: 137, Signal: 9, DurationMillis: 1234,
			Attempt: 2, ID: "100_3", Host: "node7", Timer: "t-0000000001", Reason: "killed"})),
		string(protocol.Encode(protocol.Abort{V: protocol.Version, Reason: "timer t-0000000001 un-kicked"})),
		`{"protocol":` + v + `,"state":"filling","items":2,"timer_ms":10,"future":{"x":1}}`,
		`{"v":` + v + `,"id":"w","kicks":3,"item":-1,"label":"x","new_field":[1]}`,
		`{"protocol":1,"state":"ready","items":1}`, `{"protocol":3}`, `{"protocol":0}`, `{"state":"ready"}`,
		`{"v":1}`, `{"v":3}`, `{"v":0}`, `{}`, `{"v":"2"}`, `{"V":` + v + `}`, `{"v":` + v + `,"v":1}`, `{"v":1,"v":` + v + `}`,
		`{"v":` + v + `.0}`, `{"v":2e0}`, `{"v":` + v + `,"pid":1e100}`, `{"v":` + v + `,"kicks":9223372036854775808}`,
		`{"v":` + v + `,"reason":"\ud800"}`, "{\"v\":" + v + ",\"reason\":\"\xff\"}", `{"v":` + v + `,"reason":"\u0000"}`,
		`{"v":` + v + `,"outcome":"bogus"}`, `{"v":` + v + `,"reason":null}`, `{"protocol":` + v + `,"master":{}}`,
		"", "hello", "{", "[1,2]", `{"protocol":"one"}`, "null", "true", `"s"`, "  {\"v\":" + v + "}  ", `{"v":` + v + `}{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		checkDecoder(t, "job", b, protocol.DecodeJob, func(j protocol.Job) int { return j.Protocol })
		checkDecoder(t, "timer", b, protocol.DecodeTimer, func(r protocol.Timer) int { return r.V })
		checkDecoder(t, "lease", b, protocol.DecodeLease, func(r protocol.Lease) int { return r.V })
		checkDecoder(t, "result", b, protocol.DecodeResult, func(r protocol.Result) int { return r.V })
		checkDecoder(t, "abort", b, protocol.DecodeAbort, func(r protocol.Abort) int { return r.V })
		if !bytes.Equal(b, orig) {
			t.Fatalf("a decoder changed its input: %q, was %q", b, orig)
		}
	})
}

func checkDecoder[T any](t *testing.T, kind string, b []byte, decode func([]byte) (T, error), version func(T) int) {
	t.Helper()
	v, err := decode(b)
	if err != nil {
		switch {
		case kind == "job" && errors.Is(err, protocol.ErrNotAJob) == errors.Is(err, protocol.ErrUnknownVersion):
			t.Fatalf("DecodeJob(%q) = %v: want exactly one of ErrNotAJob and ErrUnknownVersion", b, err)
		case errors.Is(err, protocol.ErrUnknownVersion):
			if !strings.Contains(err.Error(), strconv.Itoa(version(v))) && kind != "job" {
				t.Fatalf("decoding a %s from %q: %q does not name the version it found", kind, b, err)
			}
		case !strings.Contains(err.Error(), kind):
			t.Fatalf("decoding a %s from %q: %q does not say what was being read", kind, b, err)
		}
		return
	}
	if got := version(v); got != protocol.Version {
		t.Fatalf("decoding a %s from %q accepted version %d, want %d", kind, b, got, protocol.Version)
	}
	// Compared by their encodings: an empty list and none (an item of
	// zero bytes, "item":[]) are the same record.
	enc := protocol.Encode(v)
	again, err := decode(enc)
	if err != nil || !bytes.Equal(protocol.Encode(again), enc) {
		t.Fatalf("%s from %q = %+v; its encoding %s decodes to %+v, %v", kind, b, v, enc, again, err)
	}
	if enc2 := protocol.Encode(again); !bytes.Equal(enc, enc2) {
		t.Fatalf("%s encodes as %s, then as %s", kind, enc, enc2)
	}
}

// asJSON is what a string becomes through JSON: each byte that is not
// part of valid UTF-8 becomes U+FFFD (encoding/json's documented
// coercion, and Go's []rune conversion).
func asJSON(s string) string { return string([]rune(s)) }

// FuzzRecordRoundTrip: for generated field values, Decode(Encode(v)) is v,
// for every record (strings as JSON keeps them: valid UTF-8); and a record
// of another version is refused with ErrUnknownVersion.
func FuzzRecordRoundTrip(f *testing.F) {
	f.Add("node7", "100_3", "t-0000000001", "killed", 4242, int64(9), int64(4000), true)
	f.Add("", "", "", "", 0, int64(0), int64(0), false)
	f.Add("é\u2028\x00\"\\</>&", "\xff\xfe", "\ud7ff\ue000", "line\nbreak\ttab", -1, int64(-1<<63), int64(1<<63-1), true)
	f.Add(strings.Repeat("x", 300), "a\x7fb", "\U0001F600", "\u0085", 1<<62, int64(1e15), int64(-5), false)
	f.Fuzz(func(t *testing.T, s1, s2, s3, s4 string, n int, m1, m2 int64, flag bool) {
		V := protocol.Version
		job := protocol.Job{Protocol: V, State: s1, Items: n, TimerMillis: m1, Retries: -n, Sync: flag, Master: s2, CreatedMillis: m2, ExpectWorkers: n / 3}
		timer := protocol.Timer{V: V, ID: s1, Host: s2, Pid: n, Kicks: m1, SessionMillis: m2}
		lease := protocol.Lease{V: V, Timer: s3, ID: s1, Host: s2, Pid: n}
		result := protocol.Result{V: V, Outcome: protocol.Outcome(s4), Exit: n, Signal: -n, DurationMillis: m1, Attempt: int(m2 % (1 << 31)),
			ID: s1, Host: s2, Timer: s3, Reason: s4}
		abort := protocol.Abort{V: V, Reason: s4}

		wantJob := job
		wantJob.State, wantJob.Master = asJSON(s1), asJSON(s2)
		wantTimer := timer
		wantTimer.ID, wantTimer.Host = asJSON(s1), asJSON(s2)
		wantLease := lease
		wantLease.Timer, wantLease.ID, wantLease.Host = asJSON(s3), asJSON(s1), asJSON(s2)
		wantResult := result
		wantResult.Outcome, wantResult.ID, wantResult.Host, wantResult.Timer, wantResult.Reason =
			protocol.Outcome(asJSON(s4)), asJSON(s1), asJSON(s2), asJSON(s3), asJSON(s4)
		wantAbort := abort
		wantAbort.Reason = asJSON(s4)

		roundTrip(t, "job", job, wantJob, protocol.DecodeJob)
		roundTrip(t, "timer", timer, wantTimer, protocol.DecodeTimer)
		roundTrip(t, "lease", lease, wantLease, protocol.DecodeLease)
		roundTrip(t, "result", result, wantResult, protocol.DecodeResult)
		roundTrip(t, "abort", abort, wantAbort, protocol.DecodeAbort)

		// The same records of another version are refused.
		other := V + 1 + int(uint(n)%5)
		if flag {
			other = V - 1 - int(uint(n)%5)
		}
		job.Protocol, timer.V, lease.V, result.V, abort.V = other, other, other, other, other
		for kind, err := range map[string]error{
			"job":    second(protocol.DecodeJob(protocol.Encode(job))),
			"timer":  second(protocol.DecodeTimer(protocol.Encode(timer))),
			"lease":  second(protocol.DecodeLease(protocol.Encode(lease))),
			"result": second(protocol.DecodeResult(protocol.Encode(result))),
			"abort":  second(protocol.DecodeAbort(protocol.Encode(abort))),
		} {
			if !errors.Is(err, protocol.ErrUnknownVersion) || !strings.Contains(err.Error(), strconv.Itoa(other)) {
				t.Fatalf("a %s of version %d: %v, want ErrUnknownVersion naming %d", kind, other, err, other)
			}
		}
	})
}

func roundTrip[T any](t *testing.T, kind string, v, want T, decode func([]byte) (T, error)) {
	t.Helper()
	enc := protocol.Encode(v)
	got, err := decode(enc)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode(Encode(%s %+v)) = %+v, %v; want %+v (encoded %s)", kind, v, got, err, want, enc)
	}
}

func second[T any](_ T, err error) error { return err }
