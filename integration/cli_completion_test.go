package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zkdog/zkdog/internal/protocol"
)

// TestCompletionRunsNothing: bash completion runs zkdog with the words
// typed so far and --generate-bash-completion appended. Old behaviour:
// after "zkdog run --root R -- CMD " a TAB ran the action, which took a
// live item, ran CMD and recorded it. Now nothing is taken, nothing runs
// and no session is opened.
func TestCompletionRunsNothing(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	expectExit(t, run(t, opts{}, "init", "--root", root, "--items", writeFile(t, "items", "a\nb\n"), "--timer", "1m"), exitOK)
	t.Cleanup(func() { cleanJob(t, conn, root) })
	l := layoutOf(t, root)
	_, before, err := conn.Get(l.Cursor())
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "ran")
	for _, o := range []opts{{}, {zk: deadAddr(t)}} {
		p := run(t, o, "run", "--root", root, "--", "touch", marker, "--generate-bash-completion")
		expectExit(t, p, exitOK)
		if p.stdout.String() != "" || p.stderr.String() != "" {
			t.Errorf("completion after -- offered words or logged (the shell should offer files):\nstdout: %q\nstderr: %q", p.stdout.String(), p.stderr.String())
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("completion ran the command")
	}
	_, after, err := conn.Get(l.Cursor())
	if err != nil {
		t.Fatal(err)
	}
	if after.Version != before.Version {
		t.Fatalf("completion took an item: the cursor went from version %d to %d", before.Version, after.Version)
	}
}

// TestCompletionWords: what a TAB offers, from the definitions alone:
// the commands, a command's flags, the shells; never help or h.
func TestCompletionWords(t *testing.T) {
	dead := opts{zk: deadAddr(t)}
	cases := []struct {
		args      []string
		want, not []string
	}{
		{[]string{}, []string{"master", "run", "status", "completion"}, []string{"help", "h", "man"}},
		{[]string{"master"}, nil, []string{"help", "h"}},
		{[]string{"master", "-"}, []string{"--items", "--no-queue", "--timer", "--zk", "--help"}, []string{"help", "h"}},
		{[]string{"run", "--root", "/x", "--l"}, []string{"--loop", "--log-level"}, []string{"help"}},
		{[]string{"completion"}, []string{"bash", "zsh", "fish"}, []string{"help", "h"}},
	}
	for _, c := range cases {
		p := run(t, dead, append(c.args, "--generate-bash-completion")...)
		expectExit(t, p, exitOK)
		words := strings.Fields(p.stdout.String())
		for _, w := range c.want {
			if !slices.Contains(words, w) {
				t.Errorf("zkdog %v <TAB> does not offer %q: %q", c.args, w, words)
			}
		}
		for _, w := range c.not {
			if slices.Contains(words, w) {
				t.Errorf("zkdog %v <TAB> offers %q: %q", c.args, w, words)
			}
		}
	}
}

// TestBashCompletionScript drives the script the way bash does on a TAB,
// with zkdog found on PATH as a user's shell finds it.
func TestBashCompletionScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	root := rootFor(t)
	marker := filepath.Join(t.TempDir(), "ran")
	script := `eval "$(zkdog completion bash)"
complete_line() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _zkdog_complete; echo "${COMPREPLY[*]}"; }
complete_line zkdog ma
complete_line zkdog master --no-q
complete_line zkdog run --root ` + root + ` -- touch ` + marker + ` ""
`
	cmd := exec.Command(bash, "--norc", "-c", script)
	cmd.Env = append(cleanEnv(), "PATH="+filepath.Dir(zkdogBin)+":"+os.Getenv("PATH"), "ZKDOG_ZK="+shared.Addr(), raceOptions)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	want := []string{"master", "--no-queue", ""}
	if !slices.Equal(got, want) {
		t.Errorf("completions = %q, want %q", got, want)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("completion ran the command")
	}
}

func layoutOf(t *testing.T, root string) protocol.Layout {
	t.Helper()
	l, err := protocol.NewLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
