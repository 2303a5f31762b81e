package integration

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Issue 10: a result that is not ok keeps the item and the end of what the
// command wrote to its standard error, which also reaches zkdog's own; an
// ok result keeps neither.
func TestRunKeepsTheEndOfStderr(t *testing.T) {
	root := rootFor(t)
	initJob(t, opts{}, root, 3, "--timer", "60s")
	script := `i=0; while [ $i -lt 50 ]; do echo "progress $i" >&2; i=$((i+1)); done
printf 'ééé %s: cannot open input\n' "$1" >&2
[ "$1" = item-1 ]`
	p := run(t, opts{}, "run", "--root", root, "--loop", "--keep-stderr", "48", "--", "sh", "-c", script, "sh", "{}")
	// item-2 failed last: its status is the loop's.
	expectExit(t, p, 1)
	if s := p.stderr.String(); strings.Count(s, "cannot open input") != 3 || !strings.Contains(s, "progress 49") {
		t.Errorf("the command's stderr did not pass through:\n%s", s)
	}
	conn := connect(t, shared.Addr())
	for i, item := range []string{"item-0", "item-1", "item-2"} {
		r := resultOf(t, conn, root, i)
		if item == "item-1" {
			if r.Stderr != "" || r.Item != nil {
				t.Errorf("the ok result of %s keeps %q and %q", item, r.Stderr, r.Item)
			}
			continue
		}
		want := "é " + item + ": cannot open input\n"
		if string(r.Item) != item || len(r.Stderr) > 48 || !utf8.ValidString(r.Stderr) || !strings.HasSuffix(r.Stderr, want) {
			t.Errorf("the failed result of %s keeps item %q and stderr %q; want the item and the last 48 bytes from a character boundary", item, r.Item, r.Stderr)
		}
	}
}

// --keep-stderr over what a result may keep is refused before anything
// happens, with the bound named.
func TestRunKeepStderrBounds(t *testing.T) {
	root := rootFor(t)
	initJob(t, opts{}, root, 1, "--timer", "60s")
	for _, args := range [][]string{{"--keep-stderr", "16385"}, {"--keep-stderr", "-1"}} {
		p := run(t, opts{}, append(append([]string{"run", "--root", root}, args...), "--", "true")...)
		expectExit(t, p, exitRunFailed)
		oneErrorLine(t, p, "--keep-stderr", "16384")
	}
	p := run(t, opts{env: []string{"ZKDOG_KEEP_STDERR=99999"}}, "run", "--root", root, "--", "true")
	expectExit(t, p, exitRunFailed)
	oneErrorLine(t, p, "--keep-stderr 99999")
	runNothingTaken(t, connect(t, shared.Addr()), root)
}
