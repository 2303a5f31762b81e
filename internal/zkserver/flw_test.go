package zkserver

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// A srvr reply of ZooKeeper 3.8 as packaged by Debian, which go-zookeeper's
// FLWSrvr rejects: its "built on" date is not in the format it expects.
const srvrLeader = `Zookeeper version: 3.8.0-${mvngit.commit.id}, built on 2024-12-29 17:54 UTC
Latency min/avg/max: 0/0.0/0
Received: 2
Sent: 1
Connections: 1
Outstanding: 0
Zxid: 0x100000000
Mode: leader
Node count: 5
Proposal sizes last/min/max: -1/-1/-1
`

// fakeServer answers every connection with reply and, like ZooKeeper right
// after start-up, leaves the connection open.
func fakeServer(t *testing.T, reply string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 4)
				if _, err := c.Read(buf); err == nil {
					c.Write([]byte(reply))
				}
				// Hold the connection until the client gives up on it.
				c.Read(buf)
				c.Close()
			}()
		}
	}()
	return l.Addr().String()
}

func TestQueryMode(t *testing.T) {
	for _, tc := range []struct {
		name, reply, mode string
		err               error
	}{
		{"leader", srvrLeader, ModeLeader, nil},
		{"not serving", notServingReply + "\n", "", ErrNotServing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, tc.reply)
			begin := time.Now()
			mode, err := queryMode(t.Context(), addr)
			if mode != tc.mode || !errors.Is(err, tc.err) {
				t.Fatalf("queryMode = %q, %v; want %q, %v", mode, err, tc.mode, tc.err)
			}
			// Stopping at the line that answers must not wait for EOF.
			if d := time.Since(begin); d > time.Second {
				t.Errorf("queryMode took %v", d)
			}
		})
	}
}

func TestFourLetterOpenConnection(t *testing.T) {
	addr := fakeServer(t, "imok")
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	reply, err := FourLetter(ctx, addr, "ruok")
	if reply != "imok\n" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("FourLetter = %q, %v; want the reply and DeadlineExceeded", reply, err)
	}
}

func TestFourLetterCanceled(t *testing.T) {
	addr := fakeServer(t, "")
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := FourLetter(ctx, addr, "srvr"); !errors.Is(err, context.Canceled) {
		t.Fatalf("FourLetter = %v; want Canceled", err)
	}
}
