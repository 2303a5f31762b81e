package worker_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zkdog/zkdog/worker"
)

// unquoteWord reads q as one word of the POSIX shell made only of
// single-quoted strings ('...', which hold anything but ') and escaped
// quotes (\'), the only syntax a quoted item may use, and returns the
// word's text; ok is false if q is anything else: empty, a character
// outside quotes, or an unclosed quote.
func unquoteWord(q string) (word string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(q); {
		switch {
		case q[i] == '\'':
			end := strings.IndexByte(q[i+1:], '\'')
			if end < 0 {
				return "", false
			}
			b.WriteString(q[i+1 : i+1+end])
			i += end + 2
		case strings.HasPrefix(q[i:], `\'`):
			b.WriteByte('\'')
			i += 2
		default:
			return "", false
		}
	}
	return b.String(), q != ""
}

// posixShells are the shells whose -c script is in the POSIX shell's
// language.
var posixShells = []string{"sh", "bash", "dash", "ash", "ksh", "mksh", "zsh"}

// scriptIndex is the index of the script a shell runs for command, or -1,
// as bash and dash read their arguments: options are clusters of letters
// after - or + (c, given with -, says the first operand is the script; each
// o or O in a cluster takes the next argument as its value); -- or a lone
// - ends the options; bash's long options are --NAME, and --rcfile and
// --init-file take a file.
func scriptIndex(command []string) int {
	if !slices.Contains(posixShells, filepath.Base(command[0])) {
		return -1
	}
	withC := false
	for i := 1; i < len(command); i++ {
		a := command[i]
		switch {
		case a == "--" || a == "-":
			if withC && i+1 < len(command) {
				return i + 1
			}
			return -1
		case a == "--rcfile" || a == "--init-file":
			i++
		case strings.HasPrefix(a, "--"):
		case len(a) > 1 && (a[0] == '-' || a[0] == '+'):
			for _, ch := range a[1:] {
				switch {
				case ch == 'c' && a[0] == '-':
					withC = true
				case ch == 'o' || ch == 'O':
					i++
				}
			}
		default:
			if withC {
				return i
			}
			return -1
		}
	}
	return -1
}

// FuzzArgs: Args keeps the command's length and name and never changes
// its input; in every argument but a shell's -c script each {} becomes the
// item itself; in the script (found as the shells themselves read their
// options) each {} becomes one and the same shell word, made only of
// single-quoted strings and escaped quotes, whose text is the item. So a
// shell reads the item as data, never as code. Checked statically:
// running a shell per input would be far too slow for a fuzz body
// (TestShellScriptItemIsData runs one).
func FuzzArgs(f *testing.F) {
	// Command lines, their words separated by NUL (which no argument
	// can hold), and items.
	for _, c := range []struct{ argv, item string }{
		{"sh\x00-c\x00printf '%s' {}", "in/a.dat"},
		{"sh\x00-c\x00./work {} > out/{}.log", "a; touch pwned"},
		{"/bin/bash\x00-euc\x00echo {}", "it's $(id)"},
		{"bash\x00-o\x00pipefail\x00-c\x00x {}", "a b"},
		{"bash\x00-e\x00-o\x00pipefail\x00-c\x00x {}", "x' ; touch pwned; echo '"},
		{"bash\x00-O\x00extglob\x00-c\x00ls {}", "*"},
		{"bash\x00+o\x00posix\x00-c\x00echo {}", "`id`"},
		{"sh\x00-c\x00./work \"$1\"\x00sh\x00{}", "$(x)"},
		{"sh\x00work.sh\x00{}", "a;b"},
		{"sh\x00-c\x00--\x00echo {}", "a\nb"},
		{"dash\x00-ec\x00{}{}", ""},
		{"zsh\x00-c\x00x{}y{}z", "'"},
		{"ksh\x00-x\x00-c\x00{}", "''\\'"},
		{"bash\x00--norc\x00-c\x00echo {}", "$HOME"},
		{"bash\x00--rcfile\x00/dev/null\x00-c\x00echo {}", "a; touch pwned"},
		{"bash\x00-euo\x00pipefail\x00-c\x00printf '%s' {}", "$(touch pwned)"},
		{"bash\x00-oc\x00pipefail\x00echo {}", "a; touch pwned"},
		{"bash\x00-c\x00-\x00echo {}", "a; touch pwned"},
		{"./work\x00{}", "in/a.dat"},
		{"cp\x00{}\x00out/{}", "a.dat"},
		{"./work\x00--input={}.gz\x00--log\x00logs/{}-{}.txt", "x"},
		{"./{}\x00{}", "a{}b"},
		{"awk\x00{print $1}\x00{ }\x00{}", "f"},
		{"sh", "a"},
		{"", "a"},
	} {
		f.Add(c.argv, c.item)
	}
	f.Fuzz(func(t *testing.T, argv, item string) {
		// The quoting itself: a script that is only {}.
		q := worker.Args([]string{"sh", "-c", "{}"}, item)[2]
		if len(q) < 2 || q[0] != '\'' || q[len(q)-1] != '\'' {
			t.Fatalf("the item %q is quoted as %q: not in quotes", item, q)
		}
		if got, ok := unquoteWord(q); !ok || got != item {
			t.Fatalf("the item %q is quoted as %q, which the shell reads as %q (one word: %v)", item, q, got, ok)
		}

		cmd := strings.Split(argv, "\x00")
		orig := slices.Clone(cmd)
		out := worker.Args(cmd, item)
		if !slices.Equal(cmd, orig) {
			t.Fatalf("Args changed its input: %q, was %q", cmd, orig)
		}
		if len(out) != len(cmd) || out[0] != cmd[0] {
			t.Fatalf("Args(%q, %q) = %q: another length or name", cmd, item, out)
		}
		k := scriptIndex(cmd)
		for i := 1; i < len(cmd); i++ {
			if i != k {
				if want := strings.ReplaceAll(cmd[i], worker.Placeholder, item); out[i] != want {
					t.Fatalf("Args(%q, %q)[%d] = %q, want %q: only a shell's -c script is quoted", cmd, item, i, out[i], want)
				}
				continue
			}
			checkScript(t, cmd, item, cmd[i], out[i])
		}
	})
}

// checkScript: out is script with each {} replaced by one and the same
// quoted word whose text is item.
func checkScript(t *testing.T, cmd []string, item, script, out string) {
	t.Helper()
	pieces := strings.Split(script, worker.Placeholder)
	if len(pieces) == 1 {
		if out != script {
			t.Fatalf("Args(%q, %q): script %q without {} became %q", cmd, item, script, out)
		}
		return
	}
	fixed := 0
	for _, p := range pieces {
		fixed += len(p)
	}
	n := len(pieces) - 1
	if len(out) < fixed || (len(out)-fixed)%n != 0 || !strings.HasPrefix(out, pieces[0]) {
		t.Fatalf("Args(%q, %q): script %q became %q, which is not the script with {} replaced", cmd, item, script, out)
	}
	q := out[len(pieces[0]) : len(pieces[0])+(len(out)-fixed)/n]
	if strings.Join(pieces, q) != out {
		t.Fatalf("Args(%q, %q): script %q became %q, which is not the script with each {} replaced alike", cmd, item, script, out)
	}
	if got, ok := unquoteWord(q); !ok || got != item {
		t.Fatalf("Args(%q, %q): in the script %q the item became %q, which the shell reads as %q (one quoted word: %v): the item would run as code",
			cmd, item, out, q, got, ok)
	}
}
