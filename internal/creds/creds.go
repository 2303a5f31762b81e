// Package creds reads and makes zkdog's credentials file: one line
// USER:SECRET, a ZooKeeper digest identity. The secret is the only thing
// between a job and every other user of a shared ensemble, so it lives in
// a file of its owner's, never on a command line (where ps shows it) and
// never in a log: Credentials print and log as the user and the file only.
package creds

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
)

// Sentinel errors.
var (
	// ErrInsecure: the file could be read or changed by others.
	ErrInsecure = errors.New("credentials file not private")
	// ErrBadFile: the file is not one line USER:SECRET.
	ErrBadFile = errors.New("bad credentials file")
	// ErrMissing: there is no credentials file.
	ErrMissing = errors.New("no credentials file")
)

// secretBytes is the secret's strength: 256 random bits.
const secretBytes = 32

// maxFileBytes bounds what is read: the file holds one short line.
const maxFileBytes = 4 << 10

// Credentials are a digest identity and where it came from.
type Credentials struct {
	User   string
	Path   string
	secret string
}

// AuthData is what ZooKeeper's digest scheme takes: USER:SECRET. It is the
// only way to the secret; keep it out of logs and errors.
func (c Credentials) AuthData() []byte { return []byte(c.User + ":" + c.secret) }

// Secret is the secret, for computing the digest ACL.
func (c Credentials) Secret() string { return c.secret }

// String names the identity without the secret.
func (c Credentials) String() string {
	return fmt.Sprintf("digest user %s (from %s)", c.User, c.Path)
}

// LogValue keeps the secret out of structured logs at any level.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", c.User), slog.String("file", c.Path))
}

// GoString keeps the secret out of %#v.
func (c Credentials) GoString() string { return c.String() }

// DefaultPath is the per-user file: ~/.zkdog/credentials. Home
// directories are shared across a cluster's nodes, so every task of the
// same user finds it with no set-up.
func DefaultPath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory for the default credentials file (%v); give --auth-file", err)
	}
	return filepath.Join(home, ".zkdog", "credentials"), nil
}

// Load reads the credentials file at path. It refuses a file that others
// than its owner (and its group, if the owner made it group-readable) can
// read, or anyone but its owner can write: a copy for the tasks of
// another account is made group-readable on purpose.
func Load(path string) (Credentials, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Credentials{}, fmt.Errorf("%w at %s", ErrMissing, path)
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("%w", err)
	}
	if err := private(path, fi); err != nil {
		return Credentials{}, err
	}
	b, err := readSmall(path)
	if err != nil {
		return Credentials{}, err
	}
	return parse(path, b)
}

// private checks the file's kind and mode.
func private(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrBadFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o027 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, so other users could read or change the job's secret; run: chmod 600 %s (or 640 for a copy the tasks of a group share)",
			ErrInsecure, path, perm, path)
	}
	return nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	defer f.Close()
	b := make([]byte, maxFileBytes+1)
	n, err := f.Read(b)
	if err != nil && n == 0 {
		return nil, fmt.Errorf("%w: %s is empty; it holds one line USER:SECRET", ErrBadFile, path)
	}
	if n > maxFileBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes; it holds one line USER:SECRET", ErrBadFile, path, maxFileBytes)
	}
	return b[:n], nil
}

// parse reads USER:SECRET, one line, an optional final newline. The
// errors never quote the file's content: it is a secret.
func parse(path string, b []byte) (Credentials, error) {
	line := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	bad := func(why string) error {
		return fmt.Errorf("%w: %s %s; it holds one line USER:SECRET", ErrBadFile, path, why)
	}
	switch {
	case strings.ContainsAny(line, "\n\r"):
		return Credentials{}, bad("has more than one line")
	case bytes.IndexByte(b, 0) >= 0:
		return Credentials{}, bad("contains a NUL byte")
	}
	user, secret, ok := strings.Cut(line, ":")
	switch {
	case !ok:
		return Credentials{}, bad("has no ':' between user and secret")
	case user == "" || strings.TrimSpace(user) != user:
		return Credentials{}, bad("has an empty user, or one with spaces around it")
	case len(secret) < 16:
		return Credentials{}, bad("has a secret shorter than 16 characters")
	}
	return Credentials{User: user, Path: path, secret: secret}, nil
}

// LoadOrCreate loads the file, or, if there is none, creates it for the
// current user with a random 256-bit secret, mode 0600, in a directory of
// mode 0700. It is for the commands that create jobs; the others only Load.
func LoadOrCreate(path string) (c Credentials, created bool, err error) {
	c, err = Load(path)
	if !errors.Is(err, ErrMissing) {
		return c, false, err
	}
	c, err = create(path)
	if errors.Is(err, fs.ErrExist) {
		// Another task of the same user made it meanwhile.
		c, err = Load(path)
		return c, false, err
	}
	return c, err == nil, err
}

func create(path string) (Credentials, error) {
	name, err := userName()
	if err != nil {
		return Credentials{}, err
	}
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return Credentials{}, fmt.Errorf("%w", err)
	}
	c := Credentials{User: name, Path: path, secret: base64.RawURLEncoding.EncodeToString(raw)}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Credentials{}, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	// Written to a private temporary file and linked into place, so that
	// a reader never sees a half-written file and two creators never
	// overwrite each other.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*")
	if err != nil {
		return Credentials{}, fmt.Errorf("%w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(c.AuthData(), '\n')); err != nil {
		tmp.Close()
		return Credentials{}, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return Credentials{}, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Credentials{}, err
		}
		return Credentials{}, fmt.Errorf("creating %s: %w", path, err)
	}
	return c, nil
}

// userName is the digest user of a new file: the account's name, which is
// what people reading an ACL expect to see.
func userName() (string, error) {
	u, err := user.Current()
	if err == nil && u.Username != "" && !strings.Contains(u.Username, ":") {
		return u.Username, nil
	}
	if n := os.Getenv("USER"); n != "" && !strings.Contains(n, ":") {
		return n, nil
	}
	return "", errors.New("cannot tell this account's user name for a new credentials file; write one yourself: USER:SECRET, mode 600")
}
