package integration

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/zkserver"
)

// cliErrorLine checks that stderr ends in one "zkdog: " line holding
// every part of says, in plain words.
func cliErrorLine(t *testing.T, p *proc, says ...string) {
	t.Helper()
	stderr := strings.TrimSpace(p.stderr.String())
	last := stderr[strings.LastIndex(stderr, "\n")+1:]
	if !strings.HasPrefix(last, "zkdog: ") {
		t.Errorf("the error is not one zkdog: line at the end:\n%s", stderr)
	}
	for _, s := range says {
		if !strings.Contains(last, s) {
			t.Errorf("the error does not say %q:\n%s", s, last)
		}
	}
	for _, pkg := range []string{"zkconn:", "master:", "job:", "protocol:", "creds:", "worker:", "zkdog zkdog", "No help topic"} {
		if strings.Contains(last, pkg) {
			t.Errorf("the error says %q:\n%s", pkg, last)
		}
	}
}

// TestCommandLineMistakes: each mistake gets exit 2 and one line that
// says what is wrong and what to do. Old behaviour in the comments.
func TestCommandLineMistakes(t *testing.T) {
	root := rootFor(t)
	cases := []struct {
		name string
		args []string
		says []string
	}{
		// "flag provided but not defined: -root (see zkdog zkdog --help)"
		{"flag before the command", []string{"--root", root, "master"},
			[]string{"--root", "flags go after the command, as in: zkdog master --root ..."}},
		// "No help topic for 'bogus'", exit 6
		{"no such command", []string{"bogus"},
			[]string{`no such command "bogus"; the commands are: master, init, wait, run, status`}},
		// "flag needs an argument: -timer"
		{"flag without its value", []string{"master", "--root", root, "--items", "x", "--timer"},
			[]string{"flag needs an argument: --timer", "(see zkdog master --help)"}},
		{"bad value", []string{"init", "--root", root, "--items", "x", "--retries", "many"},
			[]string{`invalid value "many" for flag --retries`}},
		// "--zk: zkconn: bad server list: ..."
		{"bad server list", []string{"status", "--root", root, "--zk", "zk1:99999"},
			[]string{"--zk: bad server list", "zk1:99999"}},
		// a job without items, whose every worker was then refused
		{"forgotten --items", []string{"init", "--root", root},
			[]string{"give --items FILE, or --no-queue for a job without items"}},
		{"--items and --no-queue", []string{"master", "--root", root, "--items", "x", "--no-queue"},
			[]string{"--items and --no-queue exclude each other"}},
		{"stray argument", []string{"status", "--root", root, "extra"},
			[]string{`takes no arguments, got "extra"`}},
		{"no shell", []string{"completion", "tcsh"}, []string{`no completion for "tcsh"; give bash, zsh or fish`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := run(t, opts{}, c.args...)
			expectExit(t, p, exitUsage)
			cliErrorLine(t, p, c.says...)
		})
	}
	if conn := connect(t, shared.Addr()); exists(t, conn, root) {
		t.Fatalf("a refused command left %s in ZooKeeper", root)
	}
}

// TestJobWithoutItemsIsAskedFor: --no-queue makes the watchdog-only job
// that a missing --items used to make silently.
func TestJobWithoutItemsIsAskedFor(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	expectExit(t, run(t, opts{}, "init", "--root", root, "--no-queue", "--timer", "10s"), exitOK)
	t.Cleanup(func() { cleanJob(t, conn, root) })
	m := start(t, opts{}, "wait", "--root", root)
	expectExit(t, run(t, opts{}, "run", "--root", root, "--no-queue", "--", "true"), exitOK)
	expectExit(t, m, exitOK)
}

// TestHelpSaysWhatValuesAre: placeholders and defaults as the README
// gives them. Old: "--timer value ... (default: 2m0s)", "--kick-interval
// value ... (default: 0s)".
func TestHelpSaysWhatValuesAre(t *testing.T) {
	for cmd, wants := range map[string][]string{
		"master": {"--zk HOST:PORT,...", "--items FILE", "--timer DURATION", "(default: 120s)", "--retries N", "--root PATH"},
		"run":    {"--kick-interval DURATION", "(default: a quarter of the job's timer)", "--progress-file FILE", "--id NAME"},
	} {
		p := run(t, opts{}, cmd, "--help")
		expectExit(t, p, exitOK)
		help := p.stdout.String()
		for _, w := range wants {
			if !strings.Contains(help, w) {
				t.Errorf("zkdog %s --help does not say %q", cmd, w)
			}
		}
		if strings.Contains(help, " value ") || strings.Contains(help, "(default: 0s)") {
			t.Errorf("zkdog %s --help still says value or 0s:\n%s", cmd, help)
		}
	}
}

// TestJSONLogsAreJSON: with --log-format json every line on standard
// error is a JSON object, the warnings and the final error too.
func TestJSONLogsAreJSON(t *testing.T) {
	dead := deadAddr(t)
	for _, c := range []struct {
		o    opts
		args []string
		code int
	}{
		{opts{zk: dead}, []string{"status", "--root", "/x", "--session-timeout", "2s", "--log-format", "json"}, exitZooKeeper},
		{opts{env: []string{"ZKDOG_LOG_FORMAT=json"}}, []string{"init", "--root", "/x", "--timer", "soon"}, exitUsage},
		{opts{}, []string{"init", "--log-format=json", "--root", "/x"}, exitUsage},
		// A master's whole run: the fill's progress, the report.
		{opts{}, []string{"master", "--log-format", "json", "--root", rootFor(t), "--items", writeFile(t, "items", "a\nb\n"),
			"--sync", "--sync-timeout", "1s"}, exitSyncTimeout},
	} {
		p := run(t, c.o, c.args...)
		expectExit(t, p, c.code)
		stderr := strings.TrimSpace(p.stderr.String())
		for _, line := range strings.Split(stderr, "\n") {
			var obj map[string]any
			if err := json.Unmarshal([]byte(line), &obj); err != nil {
				t.Errorf("zkdog %v: a stderr line is not a JSON object: %q", c.args, line)
				continue
			}
			if msg, _ := obj["msg"].(string); obj["level"] == "ERROR" && !strings.HasPrefix(msg, "zkdog: ") {
				t.Errorf("zkdog %v: the error's msg does not start with zkdog: %q", c.args, line)
			}
		}
	}
}

// TestUnreachableSaysWhatToDo: the default --zk with nothing there. A
// warning comes at once, and the final line says what to do.
func TestUnreachableSaysWhatToDo(t *testing.T) {
	dead := deadAddr(t)
	p := run(t, opts{zk: dead}, "status", "--root", "/x", "--session-timeout", "2s")
	expectExit(t, p, exitZooKeeper)
	cliErrorLine(t, p, "ZooKeeper unreachable", dead+": connection refused", "start ZooKeeper there, or give the servers that run it with --zk or ZKDOG_ZK")
	if !strings.Contains(p.stderr.String(), "cannot reach ZooKeeper yet") {
		t.Errorf("no warning while zkdog went on trying:\n%s", p.stderr.String())
	}
}

// TestUnresolvableServerIsSkipped: one name in --zk that does not resolve
// (a server taken out of DNS) no longer fails every command. Old: exit 2,
// "zkconn: bad server list: ...: lookup ...: no such host".
func TestUnresolvableServerIsSkipped(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	p := run(t, opts{zk: "zk-gone.invalid:2181," + shared.Addr()}, "init", "--root", root, "--items", writeFile(t, "items", "a\n"))
	expectExit(t, p, exitOK)
	t.Cleanup(func() { cleanJob(t, conn, root) })
	if !strings.Contains(p.stderr.String(), "zk-gone.invalid:2181 (no such host)") {
		t.Errorf("no warning names the skipped server:\n%s", p.stderr.String())
	}
	p = run(t, opts{zk: "zk-gone.invalid:2181,zk-also-gone.invalid"}, "status", "--root", root)
	expectExit(t, p, exitUsage)
	cliErrorLine(t, p, "no server's name resolves", "zk-gone.invalid:2181 (no such host)", "zk-also-gone.invalid:2181")
}

// TestShortTimerSaysItsEffectiveLimit: --timer 500ms is accepted, and the
// master says that a worker counts as hung only after twice its session
// timeout.
func TestShortTimerSaysItsEffectiveLimit(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	p := run(t, opts{}, "init", "--root", root, "--items", writeFile(t, "items", "a\n"), "--timer", "500ms", "--session-timeout", "4s")
	expectExit(t, p, exitOK)
	t.Cleanup(func() { cleanJob(t, conn, root) })
	if !strings.Contains(p.stderr.String(), "effective_limit=8s") {
		t.Errorf("the master does not say the limit in effect:\n%s", p.stderr.String())
	}
}

// TestGrantedSessionTimeoutIsSaid: ZooKeeper's default lower bound is two
// ticks (4s with the usual tickTime of 2s); asking 1s gets 4s, and zkdog
// says so.
func TestGrantedSessionTimeoutIsSaid(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	srv, err := zkserver.Start(ctx, zkserver.Config{Dir: t.TempDir(), MinSessionTimeout: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	p := run(t, opts{zk: srv.Addr()}, "init", "--root", rootFor(t), "--items", writeFile(t, "items", "a\n"), "--session-timeout", "1s")
	expectExit(t, p, exitOK)
	if !strings.Contains(p.stderr.String(), "ZooKeeper granted another session timeout") || !strings.Contains(p.stderr.String(), "granted=4s") {
		t.Errorf("zkdog does not say the session timeout granted:\n%s", p.stderr.String())
	}
}

// TestClearJSONSaysWhyItRefused: clear --json used to print nothing when
// it refused.
func TestClearJSONSaysWhyItRefused(t *testing.T) {
	root := rootFor(t)
	conn := connect(t, shared.Addr())
	expectExit(t, run(t, opts{}, "init", "--root", root, "--items", writeFile(t, "items", "a\n"), "--timer", "1m"), exitOK)
	t.Cleanup(func() { cleanJob(t, conn, root) })
	gate := writeFile(t, "gate", "")
	w := start(t, opts{}, "run", "--root", root, "--progress", "alive", "--", "sh", "-c", `while [ -e "$1" ]; do sleep 0.05; done`, "sh", gate)
	waitFor(t, "the worker's timer", func() bool {
		kids, _, err := conn.Children(layoutOf(t, root).Timers())
		return err == nil && len(kids) > 0
	})
	p := run(t, opts{}, "clear", "--root", root, "--json")
	expectExit(t, p, exitFailed)
	var out struct {
		Root    string `json:"root"`
		Removed bool   `json:"removed"`
		Alive   int    `json:"workers_alive"`
		Refused string `json:"refused"`
	}
	if err := json.Unmarshal(p.stdout.Bytes(), &out); err != nil {
		t.Fatalf("clear --json printed no JSON object when it refused: %v\n%q", err, p.stdout.String())
	}
	if out.Root != root || out.Removed || out.Alive != 1 || !strings.Contains(out.Refused, "--force") {
		t.Errorf("clear --json = %+v, want root %s, not removed, 1 worker alive, and why", out, root)
	}
	if err := os.Remove(gate); err != nil {
		t.Fatal(err)
	}
	expectExit(t, w, exitOK)
}
