package creds_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/zkdog/zkdog/internal/creds"
)

func TestLoadOrCreateMakesAPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "home", ".zkdog", "credentials")
	c, created, err := creds.LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreate = %v, created %v; want a new file", err, created)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %04o, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %04o, want 0700", di.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	line := strings.TrimSuffix(string(b), "\n")
	user, secret, ok := strings.Cut(line, ":")
	if !ok || user != c.User || secret != c.Secret() || len(secret) != 43 {
		t.Errorf("file holds %d bytes, user %q, secret of %d characters; want USER:SECRET with a 256-bit secret (43 base64 characters)", len(b), user, len(secret))
	}
	again, created, err := creds.LoadOrCreate(path)
	if err != nil || created || again.Secret() != c.Secret() {
		t.Errorf("second LoadOrCreate: %v, created %v, same secret %v; want the same file read back", err, created, again.Secret() == c.Secret())
	}
}

func TestConcurrentCreatorsAgree(t *testing.T) {
	// Array tasks of one user may all start at once on a fresh home.
	path := filepath.Join(t.TempDir(), "credentials")
	secrets := make([]string, 8)
	var wg sync.WaitGroup
	for i := range secrets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := creds.LoadOrCreate(path)
			if err != nil {
				t.Error(err)
			}
			secrets[i] = c.Secret()
		}()
	}
	wg.Wait()
	for i, s := range secrets {
		if s != secrets[0] {
			t.Fatalf("creator %d got another secret than creator 0", i)
		}
	}
}

func TestLoadRefuses(t *testing.T) {
	good := "alice:" + strings.Repeat("s", 43) + "\n"
	for _, c := range []struct {
		name, content string
		mode          os.FileMode
		want          error
		says          string
	}{
		{"readable by others", good, 0o604, creds.ErrInsecure, "chmod 600"},
		{"writable by the group", good, 0o660, creds.ErrInsecure, "chmod 600"},
		{"writable by others", good, 0o602, creds.ErrInsecure, "mode 0602"},
		{"no colon", "alice\n", 0o600, creds.ErrBadFile, "no ':'"},
		{"empty user", ":" + strings.Repeat("s", 43), 0o600, creds.ErrBadFile, "empty user"},
		{"short secret", "alice:short", 0o600, creds.ErrBadFile, "shorter than 16"},
		{"two lines", good + good, 0o600, creds.ErrBadFile, "more than one line"},
		{"empty", "", 0o600, creds.ErrBadFile, "is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "credentials")
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			_, err := creds.Load(path)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Load = %v; want %v naming %s and saying %q", err, c.want, path, c.says)
			}
			if strings.Contains(err.Error(), strings.Repeat("s", 16)) {
				t.Errorf("the error quotes the secret: %v", err)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		if _, err := creds.Load(filepath.Join(t.TempDir(), "none")); !errors.Is(err, creds.ErrMissing) {
			t.Fatalf("Load = %v, want ErrMissing", err)
		}
	})
}

func TestGroupReadableCopyIsAccepted(t *testing.T) {
	// The copy for tasks under another account of the same group.
	path := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(path, []byte("alice:"+strings.Repeat("x", 40)+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	c, err := creds.Load(path)
	if err != nil || c.User != "alice" {
		t.Fatalf("Load = %+v, %v; want alice", c.User, err)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	c, _, err := creds.LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	for _, h := range []slog.Handler{
		slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
	} {
		slog.New(h).Debug("credentials", "creds", c)
	}
	printed := logs.String() + fmt.Sprint(c) + fmt.Sprintf("%v %+v %#v %s", c, c, c, c)
	if strings.Contains(printed, c.Secret()) {
		t.Fatalf("the secret appears in: %s", printed)
	}
	if !strings.Contains(printed, c.User) || !strings.Contains(printed, path) {
		t.Errorf("the user and file should be named: %s", printed)
	}
}
