package creds

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// parseWhys are every reason parse gives, so that an error can be checked
// to be made of the path and one of them only, never of the content.
var parseWhys = []string{
	"has more than one line",
	"contains a NUL byte",
	"has no ':' between user and secret",
	"has an empty user, or one with spaces around it",
	"has a secret shorter than 16 characters",
}

// FuzzParse: parse never panics. Accepted: the user is not empty, has no
// ':' (the first one ends it), no spaces around it and no line end or
// NUL; the secret has at least 16 characters and no line end or NUL;
// AuthData is USER:SECRET and is the file's one line (less an optional
// final \n, \r\n or \r); reading AuthData plus a newline, as create writes
// the file, gives the same credentials; and printing or logging them shows
// the user and the file but not the secret. Refused: ErrBadFile, and the
// message is the path and a fixed reason only, so it never holds the
// secret (the file is a secret).
func FuzzParse(f *testing.F) {
	long := strings.Repeat("s", 43)
	for _, s := range []string{
		"alice:" + long + "\n", "alice:" + long, "alice:" + long + "\r\n", "alice:" + long + "\r",
		"bob:0123456789abcdef", "bob:0123456789abcde", "alice:" + long + ":with:colons\n", "al ice:" + long,
		"alice\n", ":" + long, " alice:" + long, "alice :" + long, "\talice:" + long, "alice:short",
		"alice:" + long + "\n" + "alice:" + long + "\n", "alice:" + long + "\n\n", "alice:" + long + "\r\r\n",
		"alice:" + long[:20] + "\x00" + long[:20], "alice:" + long[:20] + "\r" + long[:20], "", "\n", ":", "::::::::::::::::::",
		"é:" + strings.Repeat("ü", 16), "\xff:\xfe" + long, "alice:" + strings.Repeat(" ", 16), "alice:\n" + long,
		"alice:" + strings.Repeat("x", maxFileBytes),
	} {
		f.Add([]byte(s))
	}
	const path = "/c"
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		c, err := parse(path, b)
		if !bytes.Equal(b, orig) {
			t.Fatalf("parse changed its input")
		}
		// The secret part of the input: after the first ':' of the first
		// line, up to its line end.
		first, _, _ := bytes.Cut(b, []byte("\n"))
		_, secretPart, _ := strings.Cut(strings.TrimSuffix(string(first), "\r"), ":")

		if err != nil {
			if c != (Credentials{}) {
				t.Fatalf("parse refused (%v) but returned %+v", err, c.User)
			}
			if !errors.Is(err, ErrBadFile) {
				t.Fatalf("parse(%q) = %v, want ErrBadFile", b, err)
			}
			msg := err.Error()
			if !slices.ContainsFunc(parseWhys, func(why string) bool {
				return msg == fmt.Sprintf("%v: %s %s; it holds one line USER:SECRET", ErrBadFile, path, why)
			}) {
				t.Fatalf("parse(%q) = %q: not the path and a fixed reason", b, msg)
			}
			fixed := ErrBadFile.Error() + path + strings.Join(parseWhys, "") + "it holds one line USER:SECRET"
			if len(secretPart) >= 8 && !strings.Contains(fixed, secretPart) && strings.Contains(msg, secretPart) {
				t.Fatalf("parse(%q) = %q: the error holds the secret", b, msg)
			}
			return
		}

		u, s := c.User, c.Secret()
		switch {
		case u == "" || strings.ContainsAny(u, ":\n\r\x00") || strings.TrimSpace(u) != u:
			t.Fatalf("parse(%q) accepted user %q", b, u)
		case len(s) < 16 || strings.ContainsAny(s, "\n\r\x00"):
			t.Fatalf("parse(%q) accepted a secret of %d bytes, or one with a line end or NUL", b, len(s))
		case c.Path != path:
			t.Fatalf("parse gave path %q, want %q", c.Path, path)
		case string(c.AuthData()) != u+":"+s:
			t.Fatalf("AuthData = %q, want USER:SECRET", c.AuthData())
		case s != secretPart:
			t.Fatalf("parse(%q) gave a secret other than the part after the first ':'", b)
		}
		line := string(c.AuthData())
		if !slices.Contains([]string{line, line + "\n", line + "\r\n", line + "\r"}, string(b)) {
			t.Fatalf("parse(%q) = %q: not the file's one line", b, line)
		}
		again, err := parse(path, append(c.AuthData(), '\n'))
		if err != nil || again != c {
			t.Fatalf("parse of AuthData plus a newline = %v, %v; want the same credentials", again.User, err)
		}

		// Printed or logged, the credentials look the same whatever the
		// secret: it is not in there, not even escaped.
		other := c
		other.secret = strings.Repeat("#", len(s)+1)
		if got, want := shown(c), shown(other); got != want {
			t.Fatalf("printing or logging credentials shows the secret:\n%s\nwith another secret:\n%s", got, want)
		}
		if !strings.Contains(c.String(), u) || !strings.Contains(c.String(), path) {
			t.Fatalf("String() = %q, want it to name the user and the file", c.String())
		}
	})
}

// shown is every way credentials get printed or logged.
func shown(c Credentials) string {
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})).Debug("c", "creds", c)
	slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})).Debug("c", "creds", c)
	// slog stamps the time; the rest of each line is what matters.
	var out strings.Builder
	for _, l := range strings.Split(logs.String(), "\n") {
		if i := strings.Index(l, "level="); i >= 0 {
			l = l[i:]
		} else if i := strings.Index(l, `"level"`); i >= 0 {
			l = l[i:]
		}
		out.WriteString(l + "\n")
	}
	return out.String() + fmt.Sprintf("%v %+v %#v %s %q", c, c, c, c, c) + c.String() + c.GoString()
}
