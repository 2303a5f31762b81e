package zktest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/zkserver"
)

func TestStandalone(t *testing.T) {
	var (
		s   *zkserver.Server
		pid int
		log bytes.Buffer
	)
	t.Run("server", func(t *testing.T) {
		s = Standalone(t, WithTickTime(100*time.Millisecond), WithLog(&log, "info"))
		pid = s.Pid()
		conn := Connect(t, s.Addr())
		if _, err := conn.Create("/x", []byte("y"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
		cfg, err := os.ReadFile(s.Dir() + "/zoo.cfg")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"tickTime=100\n", "minSessionTimeout=200\n"} {
			if !bytes.Contains(cfg, []byte(want)) {
				t.Errorf("zoo.cfg lacks %q:\n%s", want, cfg)
			}
		}
	})
	// The subtest's cleanups have run.
	if s.Pid() != 0 || pid == 0 {
		t.Errorf("Pid() = %d after the test, %d during it", s.Pid(), pid)
	}
	if _, err := os.Stat(s.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s after the test: %v", s.Dir(), err)
	}
	if !strings.Contains(log.String(), " INFO ") {
		t.Errorf("WithLog(info) received no INFO line:\n%s", log.String())
	}
}

func TestEnsemble(t *testing.T) {
	var log bytes.Buffer
	e := Ensemble(t, 3, WithLog(&log, ""))
	conn := Connect(t, e.ConnString())
	if _, err := conn.Create("/x", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	// Several members over one Log: whole lines, each with its member.
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(log.String()) {
		if !strings.HasPrefix(line, "zk1| ") && !strings.HasPrefix(line, "zk2| ") && !strings.HasPrefix(line, "zk3| ") {
			t.Errorf("log line without member prefix: %q", line)
		}
	}
}

// fakeTB records how fail ends a test.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Skip(args ...any) {
	f.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *fakeTB) Fatal(args ...any) {
	f.fatal = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestFail(t *testing.T) {
	notInstalled := fmt.Errorf("zkserver: %w: ...; run `make deps`", zkserver.ErrNotInstalled)
	other := errors.New("zkserver: 127.0.0.1:1: zookeeper exited")
	for _, tc := range []struct {
		name        string
		err         error
		short, skip bool
	}{
		{"not installed, short", notInstalled, true, true},
		{"not installed", notInstalled, false, false},
		{"other failure, short", other, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				fail(f, tc.err, tc.short)
			}()
			<-done
			got, other := f.fatal, f.skipped
			if tc.skip {
				got, other = other, got
			}
			if got != tc.err.Error() || other != "" {
				t.Errorf("skipped %q, failed %q; want the error reported by %s",
					f.skipped, f.fatal, map[bool]string{true: "Skip", false: "Fatal"}[tc.skip])
			}
		})
	}
}

func TestNotInstalled(t *testing.T) {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Standalone(f, func(c *zkserver.Config) { c.Java = "/nonexistent/java" })
	}()
	<-done
	msg := f.fatal + f.skipped
	if !strings.Contains(msg, "not installed") || !strings.Contains(msg, "make deps") {
		t.Errorf("got %q, want a message saying ZooKeeper is not installed and to run make deps", msg)
	}
}
