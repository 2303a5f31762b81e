//go:build linux

package supervise

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

func TestTailKeepsTheEnd(t *testing.T) {
	for _, c := range []struct {
		name   string
		size   int
		writes []string
		want   string
	}{
		{"all of a short text", 10, []string{"abc", "de"}, "abcde"},
		{"exactly the size", 5, []string{"abc", "de"}, "abcde"},
		{"the end of many writes", 5, []string{"abc", "def", "gh"}, "defgh"},
		{"the end of one large write", 4, []string{"0123456789"}, "6789"},
		{"a large write after a small one", 4, []string{"ab", "0123456789"}, "6789"},
		{"wrapping round the buffer", 4, []string{"abc", "d", "e", "fg", "h"}, "efgh"},
		// é is two bytes, 😀 four: the end kept may begin inside one.
		{"a cut character is dropped", 3, []string{"ab", "é", "xy"}, "xy"},
		{"a whole character is kept", 3, []string{"abc", "é", "x"}, "éx"},
		{"a cut four-byte character", 5, []string{"a", "😀", "bcd"}, "bcd"},
		{"text not UTF-8 loses three bytes at most", 5, []string{"a\x80\x80\x80\x80\x80z"}, "\x80z"},
		{"nothing written", 8, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			tail := NewTail(c.size)
			total := 0
			for _, w := range c.writes {
				if n, err := tail.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
				total += len(w)
			}
			got := tail.String()
			if got != c.want {
				t.Errorf("kept %q, want %q", got, c.want)
			}
			if len(got) > c.size {
				t.Errorf("kept %d bytes, more than the size %d", len(got), c.size)
			}
			if tail.Written() != int64(total) {
				t.Errorf("Written() = %d, want %d", tail.Written(), total)
			}
		})
	}
}

func TestTailOff(t *testing.T) {
	if NewTail(0) != nil || NewTail(-1) != nil {
		t.Fatal("NewTail of no size is not nil")
	}
	var tail *Tail
	if n, err := tail.Write([]byte("abc")); n != 3 || err != nil {
		t.Fatalf("nil Tail: Write = %d, %v", n, err)
	}
	if tail.Bytes() != nil || tail.String() != "" || tail.Written() != 0 {
		t.Fatal("a nil Tail kept something")
	}
}

// Writers racing on one Tail: each write's bytes stay together in what is
// kept, and the race detector sees no unguarded access.
func TestTailConcurrent(t *testing.T) {
	tail := NewTail(64)
	var wg sync.WaitGroup
	for _, line := range []string{"aaaaaaa\n", "bbbbbbb\n", "ccccccc\n", "ddddddd\n"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				tail.Write([]byte(line))
				_ = tail.String()
			}
		}()
	}
	wg.Wait()
	got := tail.String()
	if len(got) != 64 || tail.Written() != 4*1000*8 {
		t.Fatalf("kept %d bytes of %d written, want 64 of 32000", len(got), tail.Written())
	}
	for _, l := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		if len(l) != 7 || strings.Count(l, l[:1]) != 7 {
			t.Fatalf("writes interleaved inside a write: %q", got)
		}
	}
}

// Whatever a command writes to stderr, in whatever pieces, what is kept is
// its last bytes, valid UTF-8 when the text was, and never more than the
// size.
func TestTailOfStderr(t *testing.T) {
	tail := NewTail(100)
	stderr := newOutput()
	c := startSh(t, `i=0; while [ $i -lt 2000 ]; do printf 'é line %d\n' $i >&2; i=$((i+1)); done; printf 'the end: ça marche' >&2`,
		Config{Stderr: stderr, StderrTail: tail})
	if e := waitDone(t, c); !e.Success() {
		t.Fatalf("exit = %v", e)
	}
	all := stderr.String()
	got := tail.String()
	if !strings.HasSuffix(all, got) || len(got) > 100 || len(got) < 97 {
		t.Fatalf("kept %d bytes %q, not the end of the %d passed through", len(got), got, len(all))
	}
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "the end: ça marche") {
		t.Fatalf("kept %q: not the text's end on a character boundary", got)
	}
	if tail.Written() != int64(len(all)) {
		t.Errorf("the tail saw %d bytes, the destination %d", tail.Written(), len(all))
	}
}

// A stderr that is a file would be inherited; with a tail it passes
// through instead, to the same file, and stdout is still inherited.
func TestTailOfInheritedStderr(t *testing.T) {
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	errf, err := os.Create(filepath.Join(dir, "err"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	tail := NewTail(8)
	c := startSh(t, "echo to-stdout; echo failing because >&2; exit 3", Config{Stdout: out, Stderr: errf, StderrTail: tail})
	if e := waitDone(t, c); e.Status() != 3 {
		t.Fatalf("exit = %v", e)
	}
	if len(c.copiers) != 1 {
		t.Errorf("%d copiers, want one, for stderr", len(c.copiers))
	}
	if b, _ := os.ReadFile(errf.Name()); string(b) != "failing because\n" {
		t.Errorf("stderr file holds %q", b)
	}
	if b, _ := os.ReadFile(out.Name()); string(b) != "to-stdout\n" {
		t.Errorf("stdout file holds %q", b)
	}
	if got := tail.String(); got != "because\n" {
		t.Errorf("tail %q, want %q", got, "because\n")
	}
}

// The tail is kept even when the destination fails (our stderr went
// away): the command gets EPIPE, and what it wrote before is there.
func TestTailWithBrokenStderr(t *testing.T) {
	tail := NewTail(32)
	c := startSh(t, "echo last words >&2", Config{Stderr: errWriter{}, StderrTail: tail})
	waitDone(t, c)
	if got := tail.String(); got != "last words\n" {
		t.Fatalf("tail %q, want the words", got)
	}
}

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "work")
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, c := range []struct {
		name, path, dir string
		want            error
	}{
		{"in $PATH", "work", "", nil},
		{"absolute", exe, "", nil},
		{"relative to dir", "./work", dir, nil},
		{"a typo in $PATH", "wrok", "", ErrNotFound},
		{"a typo in a path", filepath.Join(dir, "wrok"), "", ErrNotFound},
		{"relative, missing", "./work", "", ErrNotFound},
		{"under a file", filepath.Join(exe, "x"), "", ErrNotFound},
		{"no execute permission", plain, "", ErrNotExecutable},
		// $PATH is searched for an executable of that name; a file
		// without the permission is passed over, as by execvp(3).
		{"no execute permission, by $PATH", "plain", "", ErrNotFound},
		{"a directory", dir, "", ErrNotExecutable},
		{"empty", "", "", ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Lookup(c.path, c.dir)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Lookup(%q) = %v", c.path, err)
				}
				return
			}
			if !errors.Is(err, c.want) || (c.want == ErrNotExecutable && errors.Is(err, ErrNotFound)) {
				t.Fatalf("Lookup(%q) = %v, want %v", c.path, err, c.want)
			}
			// One line naming the command, no package names.
			msg := err.Error()
			if c.path != "" && !strings.HasPrefix(msg, c.path+": ") || strings.Contains(msg, "supervise") || strings.Contains(msg, "\n") {
				t.Errorf("message %q does not start with the command, or names a package", msg)
			}
		})
	}
}
