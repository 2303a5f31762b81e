package zkconn_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/internal/zktest"
)

// partitionTimeout is the session timeout of the partition tests: short,
// so that they are quick, and long enough that a loaded machine does not
// make a healthy session trip Endangered. With their 500ms lead and the
// 200ms margin, a ping (every second) may be answered 1.3s late.
const partitionTimeout = 3 * time.Second

// closedAt reports when ch closes, as seen by a goroutine waiting on it.
func closedAt(t *testing.T, ch <-chan struct{}) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		select {
		case <-ch:
			out <- time.Now()
		case <-t.Context().Done():
		}
	}()
	return out
}

func await(t *testing.T, what string, ch <-chan time.Time) time.Time {
	t.Helper()
	select {
	case at := <-ch:
		return at
	case <-time.After(hangGuard):
		t.Fatalf("%s: nothing after %v", what, hangGuard)
		return time.Time{}
	}
}

// TestSilentPartition: every byte between client and server is dropped
// and nothing is closed, so the client notices only by its read timeout
// (2/3 of the session timeout) and the server expires the session. What
// matters for safety is checked against the server itself, through a
// second connection that watches the session's ephemeral: Endangered must
// close at least the stop lead before the server deletes it, Lost before
// it. The regression: the old deadline, one session timeout after the
// client noticed, came after the deletion.
func TestSilentPartition(t *testing.T) {
	t.Parallel()
	// The server's default bounds grant what is asked, and the watcher's
	// own session the 10s it asks for, so that a loaded machine does not
	// take the witness's session too.
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	fw := newForwarder(t, srv.Addr())
	const lead = 500 * time.Millisecond
	s := dial(t, fw.Addr(), partitionTimeout, nil, zkconn.WithStopLead(lead))
	timeout := s.Timeout()
	if timeout != partitionTimeout {
		t.Fatalf("granted timeout %v, want %v", timeout, partitionTimeout)
	}
	if got := s.StopLead(); got != lead {
		t.Fatalf("StopLead() = %v, want the %v asked for (under a third of %v)", got, lead, timeout)
	}
	node, err := s.Conn().Create("/partitioned", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatal(err)
	}
	watcher := zktest.Connect(t, srv.Addr())
	ok, st, events, err := watcher.ExistsW(node)
	if err != nil || !ok || st.EphemeralOwner != s.ID() {
		t.Fatalf("ExistsW(%s) = %v, %+v, %v; want the ephemeral of %#x", node, ok, st, err, s.ID())
	}
	type event struct {
		at time.Time
		ev zk.Event
	}
	deleted := make(chan event, 1)
	go func() {
		select {
		case ev := <-events:
			deleted <- event{time.Now(), ev}
		case <-t.Context().Done():
		}
	}()
	select {
	case <-s.Endangered():
		t.Fatal("Endangered closed on a healthy session")
	default:
	}
	endangered, lost := closedAt(t, s.Endangered()), closedAt(t, s.Lost())

	fw.blackHole()

	var del event
	select {
	case del = <-deleted:
	case <-time.After(hangGuard):
		t.Fatalf("the server has not expired the session %v after the partition", hangGuard)
	}
	if del.ev.Type != zk.EventNodeDeleted {
		t.Fatalf("watch on %s: %+v, want its deletion", node, del.ev)
	}
	endAt := await(t, "Endangered", endangered)
	lostAt := await(t, "Lost", lost)
	select {
	case <-s.Endangered():
	default:
		t.Error("Lost closed, Endangered still open")
	}
	if err := s.Err(); !errors.Is(err, zkconn.ErrLost) {
		t.Errorf("Err() = %v, want ErrLost", err)
	}

	// Nothing arrives after the partition, so these are final.
	heard := s.LastHeard()
	expiry, _ := s.EarliestExpiry()
	margin := zkconn.ExpiryMargin(timeout)
	t.Logf("after the last data heard: Endangered %v, Lost %v, server deleted the ephemeral %v; EarliestExpiry %v (timeout %v, margin %v, lead %v)",
		endAt.Sub(heard), lostAt.Sub(heard), del.at.Sub(heard), expiry.Sub(heard), timeout, margin, lead)

	checkBeforeExpiry(t, endAt, lostAt, del.at, lead)
	// The regression. The client cannot notice the partition before its
	// read timeout (2/3 of the session timeout) after the last data it
	// read, and the old code closed Lost a whole timeout after noticing.
	if old := heard.Add(timeout*2/3 + timeout); !lostAt.Before(old) {
		t.Errorf("Lost closed %v after the last data heard, no sooner than the old notice-based deadline (%v)", lostAt.Sub(heard), old.Sub(heard))
	}
	// Neither signal comes before its own deadline.
	if endAt.Before(expiry.Add(-lead)) || lostAt.Before(expiry) {
		t.Errorf("Endangered %v and Lost %v before EarliestExpiry %v (lead %v)", endAt.Sub(heard), lostAt.Sub(heard), expiry.Sub(heard), lead)
	}
}

// checkBeforeExpiry checks what safety needs against the instant the
// server was seen to expire the session: the command is given the lead
// before it, and the session is given up before it.
func checkBeforeExpiry(t *testing.T, endangered, lost, expired time.Time, lead time.Duration) {
	t.Helper()
	switch {
	case endangered.After(expired):
		t.Errorf("Endangered closed %v after the server expired the session; want at least the %v lead before it", endangered.Sub(expired), lead)
	case endangered.Add(lead).After(expired):
		t.Errorf("Endangered closed only %v before the server expired the session; want at least the %v lead", expired.Sub(endangered), lead)
	}
	if !lost.Before(expired) {
		t.Errorf("Lost closed %v after the server expired the session", lost.Sub(expired))
	}
}

// TestOneWayPartitionWithWatchEvents: what the client sends is dropped,
// while the server goes on sending it watch events, often enough that the
// client's read timeout never fires: it never notices a disconnection,
// and data keeps arriving until the server expires the session. A deadline
// counted from a disconnection, or from the last data heard, would come
// after the expiry; one counted from the last answered request does not.
func TestOneWayPartitionWithWatchEvents(t *testing.T) {
	t.Parallel()
	// The server's default bounds grant what is asked, and the watcher's
	// own session the 10s it asks for, so that a loaded machine does not
	// take the witness's session too.
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	fw := newForwarder(t, srv.Addr())
	const lead = 500 * time.Millisecond
	s := dial(t, fw.Addr(), partitionTimeout, nil, zkconn.WithStopLead(lead))
	timeout := s.Timeout()
	if timeout != partitionTimeout {
		t.Fatalf("granted timeout %v, want %v", timeout, partitionTimeout)
	}
	const n = 8 // watch events, one every timeout/6: past the expiry
	var watched []string
	for i := range n {
		p, err := s.Conn().Create(fmt.Sprintf("/w%d", i), nil, 0, zk.WorldACL(zk.PermAll))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := s.Conn().ExistsW(p); err != nil {
			t.Fatal(err)
		}
		watched = append(watched, p)
	}
	node, err := s.Conn().Create("/mine", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatal(err)
	}
	watcher := zktest.Connect(t, srv.Addr())
	ok, _, events, err := watcher.ExistsW(node)
	if err != nil || !ok {
		t.Fatalf("ExistsW(%s) = %v, %v", node, ok, err)
	}
	endangered, lost := closedAt(t, s.Endangered()), closedAt(t, s.Lost())

	fw.blackHoleToServer()
	cut := time.Now()
	go func() {
		tick := time.NewTicker(timeout / 6)
		defer tick.Stop()
		for _, p := range watched {
			select {
			case <-tick.C:
			case <-t.Context().Done():
				return
			}
			if _, err := watcher.Set(p, []byte("x"), -1); err != nil {
				// A stimulus lost; the premise check below tells
				// whether enough of them arrived.
				t.Logf("set %s: %v", p, err)
			}
		}
	}()

	var deletedAt time.Time
	select {
	case ev := <-events:
		deletedAt = time.Now()
		if ev.Type != zk.EventNodeDeleted {
			t.Fatalf("watch on %s: %+v, want its deletion", node, ev)
		}
	case <-time.After(hangGuard):
		t.Fatalf("the server has not expired the session %v after the cut", hangGuard)
	}
	endAt := await(t, "Endangered", endangered)
	lostAt := await(t, "Lost", lost)
	heard := s.LastHeard()
	t.Logf("after the cut: last data heard %v, Endangered %v, Lost %v, server deleted the ephemeral %v",
		heard.Sub(cut), endAt.Sub(cut), lostAt.Sub(cut), deletedAt.Sub(cut))
	if !heard.After(cut.Add(timeout / 3)) {
		// The premise, not the code: the events must have kept coming.
		t.Fatalf("data heard only %v after the cut; the watch events did not arrive", heard.Sub(cut))
	}
	checkBeforeExpiry(t, endAt, lostAt, deletedAt, lead)
}

// TestBriefDisconnectRiddenOut: every connection is closed; the client
// reconnects with the same session, and neither Endangered nor Lost
// closes, even with the greatest lead, past the instant both would have
// closed had the connection not come back.
func TestBriefDisconnectRiddenOut(t *testing.T) {
	t.Parallel()
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	fw := newForwarder(t, srv.Addr())
	// The client waits a second before it redials its only server; the
	// timeout leaves that second well inside T - margin - lead.
	const timeout = 4 * time.Second
	s := dial(t, fw.Addr(), timeout, nil, zkconn.WithStopLead(time.Hour))
	if got := s.Timeout(); got != timeout {
		t.Fatalf("granted timeout %v, want %v", got, timeout)
	}
	if got := s.StopLead(); got != zkconn.StopLeadFor(timeout, time.Hour) || got != timeout/3 {
		t.Fatalf("StopLead() = %v, want the cap, a third of %v", got, timeout)
	}
	id := s.ID()
	node, err := s.Conn().Create("/blip", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatal(err)
	}
	// Close just after an answer, so that nothing but the reconnection
	// decides.
	h := s.LastHeard()
	eventually(t, "hearing from the server", func() bool { return s.LastHeard().After(h) })
	before, _ := s.EarliestExpiry()
	closed := time.Now()
	fw.closeAll()

	eventually(t, "reconnected", func() bool {
		return fw.connections() >= 2 && s.Conn().State() == zk.StateHasSession
	})
	if got := s.Conn().SessionID(); got != id {
		t.Fatalf("after the reconnection the client has session %#x, want the same %#x", got, id)
	}
	eventually(t, "EarliestExpiry moving on with the reconnection", func() bool {
		after, ok := s.EarliestExpiry()
		return ok && after.After(before)
	})
	// A negative check needs a wait: without the reconnection both would
	// have closed by before, which is earlier than closed+timeout.
	select {
	case <-s.Endangered():
		t.Fatalf("Endangered closed after the session was restored (Err %v)", s.Err())
	case <-s.Lost():
		t.Fatalf("Lost closed after the session was restored: %v", s.Err())
	case <-time.After(time.Until(closed.Add(timeout + 500*time.Millisecond))):
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err() = %v after a brief disconnection", err)
	}
	_, st, err := s.Conn().Exists(node)
	if err != nil || st == nil || st.EphemeralOwner != id {
		t.Errorf("ephemeral %s after the reconnection: %+v, %v; want it still owned by %#x", node, st, err, id)
	}
}

// TestLastHeardAdvancesWhenIdle: with no requests at all, the client's
// pings (every third of the timeout) are answered, so LastHeard and
// EarliestExpiry keep moving and, over more than a whole session timeout,
// even the greatest stop lead never closes Endangered.
func TestLastHeardAdvancesWhenIdle(t *testing.T) {
	t.Parallel()
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	// With the greatest lead (a third) and the 200ms margin, a ping may
	// be answered T/3 - 200ms late; 4s leaves a loaded machine 1.1s.
	const timeout = 4 * time.Second
	s := dial(t, srv.Addr(), timeout, nil, zkconn.WithStopLead(time.Hour))
	if got := s.Timeout(); got != timeout {
		t.Fatalf("granted timeout %v, want %v", got, timeout)
	}
	heard := s.LastHeard()
	expiry, ok := s.EarliestExpiry()
	if heard.IsZero() || !ok {
		t.Fatalf("LastHeard() = %v, EarliestExpiry() ok = %v right after Dial", heard, ok)
	}
	start := time.Now()
	for n := 0; n < 3 || time.Since(start) < timeout+timeout/4; n++ {
		eventually(t, "hearing from the server again", func() bool { return s.LastHeard().After(heard) })
		heard = s.LastHeard()
		eventually(t, "EarliestExpiry moving on", func() bool {
			e, _ := s.EarliestExpiry()
			return e.After(expiry)
		})
		expiry, _ = s.EarliestExpiry()
		select {
		case <-s.Endangered():
			t.Fatalf("Endangered closed on a healthy idle session (lead %v, Err %v)", s.StopLead(), s.Err())
		default:
		}
	}
	select {
	case <-s.Lost():
		t.Fatalf("Lost closed on a healthy idle session: %v", s.Err())
	default:
	}
}
