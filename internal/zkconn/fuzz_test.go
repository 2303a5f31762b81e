package zkconn_test

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/zkdog/zkdog/internal/zkconn"
)

// FuzzParseServers: ParseServers never panics. What it accepts is one
// address per non-blank entry, in order, each host:port as net.Dial takes
// it: SplitHostPort splits it, JoinHostPort gives it back, the host is not
// empty and holds no bracket, comma, slash, space or control character, a
// host with a colon is an IP address, and the port is 1-65535 written in
// plain decimal; an entry without a port gets 2181. Joining the addresses
// with commas and parsing again gives the same addresses. A refusal wraps
// ErrBadServers and quotes the entry it refuses (or says no server was
// given).
func FuzzParseServers(f *testing.F) {
	for _, s := range []string{
		"zk1", "zk1:2182", "zk1:2181,zk2:2181,zk3:2181", "zk1,zk2:3000", " zk1 , zk2:3000 ", "zk1,,zk2,", "127.0.0.1",
		"[::1]", "[::1]:2182", "::1", "[fe80::1], [2001:db8::7]:2888", "[fe80::1%eth0]:2181", "fe80::1%eth0",
		"zk-1.example.org:2181", "localhost:1", "localhost:65535",
		"", " ", ",, ,", "zk1:2181/zkdog", "zk1:2181,zk2:2181/zkdog", "zk1/zkdog", "zk1:", "zk1:abc", "zk1:99999",
		"zk1:0", "zk1:65536", "zk1:-1", "zk1:+2181", "zk1:02181", "zk1:0x50", "zk1: 2181", "zk1 :2181", ":2181", "[]", "[]:2181",
		"[zk1]", "[zk1]:2181", "[zk1", "zk1]", "[[zk1]]", "a]:80", "a[b:80", "[a]b:80", "host:80:90", "[a:b]:80", "a:b:c",
		"::1:2181", "[::1]:", "[::1", "zk1:2181\n", "zk1\t:2181", "z k:2181", "zk1:2181:", "zk1::2181",
		"zk1:٢١٨١", "zk1:２１８１", "\u00a0zk1\u00a0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		var entries []string
		for _, e := range strings.Split(list, ",") {
			if e = strings.TrimSpace(e); e != "" {
				entries = append(entries, e)
			}
		}

		addrs, err := zkconn.ParseServers(list)
		if err != nil {
			if addrs != nil {
				t.Fatalf("ParseServers(%q) refused (%v) but returned %q", list, err, addrs)
			}
			if !errors.Is(err, zkconn.ErrBadServers) {
				t.Fatalf("ParseServers(%q) = %v, want it to wrap ErrBadServers", list, err)
			}
			if len(entries) == 0 {
				if !strings.Contains(err.Error(), "no servers") {
					t.Fatalf("ParseServers(%q) = %q, want it to say no server was given", list, err)
				}
				return
			}
			if !slices.ContainsFunc(entries, func(e string) bool { return strings.Contains(err.Error(), strconv.Quote(e)) }) {
				t.Fatalf("ParseServers(%q) = %q: quotes none of the entries %q", list, err, entries)
			}
			return
		}

		if len(addrs) != len(entries) {
			t.Fatalf("ParseServers(%q) = %q: %d addresses for %d entries %q", list, addrs, len(addrs), len(entries), entries)
		}
		for i, a := range addrs {
			host, port, err := net.SplitHostPort(a)
			if err != nil {
				t.Fatalf("ParseServers(%q) gave %q, not host:port: %v", list, a, err)
			}
			if net.JoinHostPort(host, port) != a {
				t.Fatalf("ParseServers(%q) gave %q, which is not written as JoinHostPort writes it", list, a)
			}
			if host == "" || strings.ContainsAny(host, "[],/") || strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
				t.Fatalf("ParseServers(%q) gave %q: bad host %q", list, a, host)
			}
			if strings.Contains(host, ":") {
				if _, err := netip.ParseAddr(host); err != nil {
					t.Fatalf("ParseServers(%q) gave %q: host %q has a colon but is no IP address", list, a, host)
				}
			}
			n, err := strconv.Atoi(port)
			if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
				t.Fatalf("ParseServers(%q) gave %q: port %q is not 1-65535 in decimal", list, a, port)
			}
			// The address comes from its entry: the host is in it, and an
			// entry without a colon (no port) gets the default.
			e := entries[i]
			if !strings.Contains(e, host) {
				t.Fatalf("ParseServers(%q) gave %q for entry %q", list, a, e)
			}
			if !strings.Contains(e, ":") && (host != strings.Trim(e, "[]") || port != "2181") {
				t.Fatalf("ParseServers(%q) gave %q for entry %q, want %s:2181", list, a, e, e)
			}
		}

		joined := strings.Join(addrs, ",")
		again, err := zkconn.ParseServers(joined)
		if err != nil || !slices.Equal(again, addrs) {
			t.Fatalf("ParseServers(%q) = %q, but ParseServers(%q) = %q, %v", list, addrs, joined, again, err)
		}
	})
}
