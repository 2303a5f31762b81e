package worker_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zkdog/zkdog/worker"
)

// posixShells are the shells whose -c script is in the POSIX shell's
// language.
var posixShells = []string{"sh", "bash", "dash", "ash", "ksh", "mksh", "zsh"}

// wrappers are programs that run a command given after their own options
// (env X=1 sh -c ..., nice -n 5 sh -c ..., timeout 60 sh -c ...).
var wrappers = []string{"env", "nice", "nohup", "timeout", "stdbuf", "setsid", "ionice", "chrt", "taskset", "time", "exec", "command"}

// scriptIndex is the index of the script a shell runs for command, or -1,
// as bash and dash read their arguments: options are clusters of letters
// after - or + (c, given with -, says the first operand is the script; each
// o or O in a cluster takes the next argument as its value); -- or a lone
// - ends the options; bash's long options are --NAME, and --rcfile and
// --init-file take a file. Behind a wrapper, the shell is the first
// argument that names one.
func scriptIndex(command []string) int {
	if slices.Contains(wrappers, filepath.Base(command[0])) {
		k := slices.IndexFunc(command[1:], func(a string) bool { return slices.Contains(posixShells, filepath.Base(a)) })
		if k < 0 {
			return -1
		}
		if i := scriptIndex(command[k+1:]); i >= 0 {
			return k + 1 + i
		}
		return -1
	}
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
// item itself. The script (found as bash and dash themselves read their
// options) is the same whatever the item: {} becomes a reference to
// $ZKDOG_ITEM, so the shell never parses the item and it is data, never
// code. Where the quoting a {} stands in is plain to see (a script without
// $( ), backquotes, comments or heredocs) the reference is the one for
// that quoting, the item's exact text as one word: "${ZKDOG_ITEM}" outside
// quotes, ${ZKDOG_ITEM} inside "...", '"${ZKDOG_ITEM}"' inside '...'; a
// \ outside single quotes escapes the next character (\{} stays). Checked
// statically: running a shell per input would be far too slow for a fuzz
// body (TestShellScriptItemIsData runs one).
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
		{"sh\x00-c\x00printf '%s' \"{}\"", "a  b"},
		{"sh\x00-c\x00printf '%s' '{}'", "x' ; touch pwned; echo '"},
		{"sh\x00-c\x00printf '%s' \"$(printf '%s' {})\"", "$(touch pwned)"},
		{"sh\x00-c\x00printf '%s' \"`printf '%s' {}`\"", "`touch pwned`"},
		{"sh\x00-c\x00grep '{}' f", "x"},
		{"/bin/bash\x00-euc\x00echo \"$1/{}\"\x00sh\x00dir", "x"},
		{"sh\x00-c\x00echo \\{} {}", "x"},
		{"sh\x00-c\x00echo \\\\{} \"\\\"{}\"", "x"},
		{"sh\x00-c\x00echo {} # it's {}\necho {}", "x"},
		{"sh\x00-c\x00cat <<EOF\n{}\nEOF", "x"},
		{"sh\x00-c\x00echo ${X:-{}} $'{}'", "x"},
		{"env\x00X=1\x00sh\x00-c\x00echo {}", "a; touch pwned"},
		{"nice\x00-n\x005\x00/bin/bash\x00-euo\x00pipefail\x00-c\x00echo {}", "$(touch pwned)"},
		{"timeout\x0060\x00env\x00sh\x00-c\x00echo {}", "`touch pwned`"},
		{"env\x00./work\x00{}", "a;b"},
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
					t.Fatalf("Args(%q, %q)[%d] = %q, want %q: only a shell's -c script is treated apart", cmd, item, i, out[i], want)
				}
				continue
			}
			checkScript(t, cmd, item, i, out[i])
		}
	})
}

// checkScript: out, what Args made of script, does not depend on the
// item, holds no {} that was not escaped, and where the quoting is plain
// is script with each {} replaced by the reference for its quoting.
func checkScript(t *testing.T, cmd []string, item string, k int, out string) {
	t.Helper()
	script := cmd[k]
	other := "\x01'\"$(other)"
	if item == other {
		other += "x"
	}
	if again := worker.Args(cmd, other); again[k] != out {
		t.Fatalf("Args(%q): the script is %q with the item %q but %q with %q: the item is in the script's text, and the shell would parse it",
			cmd, out, item, again[k], other)
	}
	if strings.Count(out, worker.Placeholder) > strings.Count(script, `\`+worker.Placeholder) {
		t.Fatalf("Args(%q, %q): the script %q keeps a {} that was not escaped", cmd, item, out)
	}
	if want, ok := plainScript(script); ok && out != want {
		t.Fatalf("Args(%q, %q): the script became %q, want %q", cmd, item, out, want)
	}
}

// plainScript is script with each {} replaced by the reference to the item
// for the quoting it stands in, as the shell reads quotes: ok is false
// when the script holds what starts a context of its own ($( ), backquotes)
// or is read otherwise (comments, heredocs).
func plainScript(script string) (string, bool) {
	if strings.Contains(script, "$(") || strings.ContainsAny(script, "`#") || strings.Contains(script, "<<") {
		return "", false
	}
	ref := "${" + worker.EnvItem + "}"
	var b strings.Builder
	quote := byte(0)
	for i := 0; i < len(script); i++ {
		c := script[i]
		switch {
		case strings.HasPrefix(script[i:], worker.Placeholder):
			switch quote {
			case 0:
				b.WriteString(`"` + ref + `"`)
			case '"':
				b.WriteString(ref)
			case '\'':
				b.WriteString(`'"` + ref + `"'`) // close, expand in double quotes, reopen
			}
			i++
			continue
		case c == '\\' && quote != '\'' && i+1 < len(script):
			b.WriteString(script[i : i+2])
			i++
			continue
		case c == '\'' && quote == 0, c == '"' && quote == 0:
			quote = c
		case c == quote:
			quote = 0
		}
		b.WriteByte(c)
	}
	return b.String(), true
}
