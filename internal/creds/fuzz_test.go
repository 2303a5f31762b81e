package creds_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zkdog/zkdog/internal/creds"
)

// credsModel is the file format as the package documents it: one line
// USER:SECRET, an optional final line end (\n, \r\n or \r), no NUL, a user
// without spaces around it, a secret of at least 16 characters, at most
// 4 KiB in all.
func credsModel(b []byte) (user, secret string, ok bool) {
	if len(b) == 0 || len(b) > 4<<10 || bytes.IndexByte(b, 0) >= 0 {
		return "", "", false
	}
	line := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if strings.ContainsAny(line, "\r\n") {
		return "", "", false
	}
	user, secret, ok = strings.Cut(line, ":")
	if !ok || user == "" || strings.TrimSpace(user) != user || len(secret) < 16 {
		return "", "", false
	}
	return user, secret, true
}

// FuzzLoad: Load of a file with any content and mode never panics. A file
// others may read (or anyone but its owner write) is refused with
// ErrInsecure naming the file and its mode, whatever it holds; a private
// one is accepted exactly when it is one line USER:SECRET as documented,
// and then gives that user and secret; a refusal names the file and never
// holds the secret part of the content.
func FuzzLoad(f *testing.F) {
	long := strings.Repeat("s", 43)
	for _, s := range []string{
		"alice:" + long + "\n", "alice:" + long, "alice:" + long + "\r\n", "bob:0123456789abcdef", "alice\n",
		":" + long, "alice:short", "alice:" + long + "\nalice:" + long + "\n", "", "\x00", "alice:" + long + "\x00",
		"alice:" + strings.Repeat("x", 4<<10), "alice:" + strings.Repeat("x", 4<<10-6), "alice:" + strings.Repeat("x", 4<<10-7) + "\n",
	} {
		f.Add([]byte(s), uint16(0o600))
	}
	f.Add([]byte("alice:"+long+"\n"), uint16(0o640))
	f.Add([]byte("alice:"+long+"\n"), uint16(0o604))
	f.Add([]byte("alice:"+long+"\n"), uint16(0o660))
	f.Add([]byte("alice:"+long+"\n"), uint16(0o400))
	f.Add([]byte("alice:"+long+"\n"), uint16(0o200))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte, mode uint16) {
		perm := os.FileMode(mode)&0o777 | 0o400 // always readable by its owner
		path := filepath.Join(dir, "credentials")
		os.Remove(path)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, perm); err != nil {
			t.Fatal(err)
		}
		c, err := creds.Load(path)

		_, secretPart, _ := strings.Cut(strings.TrimSuffix(string(bytes.SplitN(b, []byte("\n"), 2)[0]), "\r"), ":")
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Fatalf("Load = %q: does not name the file", msg)
			}
			rest := strings.ReplaceAll(msg, path, "")
			if len(secretPart) >= 8 && strings.Contains(rest, secretPart) {
				t.Fatalf("Load of %q = %q: the error holds the secret", b, msg)
			}
		}
		if perm&0o027 != 0 {
			if !errors.Is(err, creds.ErrInsecure) || !strings.Contains(err.Error(), fmt.Sprintf("%04o", perm)) {
				t.Fatalf("Load of a file of mode %04o = %v, want ErrInsecure naming the mode", perm, err)
			}
			return
		}
		user, secret, ok := credsModel(b)
		switch {
		case ok && err != nil:
			t.Fatalf("Load of %q = %v, want user %q", b, err, user)
		case !ok && err == nil:
			t.Fatalf("Load of %q accepted user %q, want ErrBadFile", b, c.User)
		case !ok && !errors.Is(err, creds.ErrBadFile):
			t.Fatalf("Load of %q = %v, want ErrBadFile", b, err)
		case ok && (c.User != user || c.Secret() != secret || c.Path != path):
			t.Fatalf("Load of %q = user %q from %s, want %q from %s", b, c.User, c.Path, user, path)
		case ok && !bytes.Equal(c.AuthData(), []byte(user+":"+secret)):
			t.Fatalf("AuthData() = %q, want USER:SECRET", c.AuthData())
		}
	})
}
