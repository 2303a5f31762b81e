package zkproxy

import "testing"

func TestMatch(t *testing.T) {
	create := Request{Op: OpCreate, Path: "/job/leases/7"}
	multi := Request{Op: OpMulti, Ops: []SubOp{{OpSetData, "/job/cursor"}, {OpCreate, "/job/leases/8"}}}
	ping := Request{Op: OpPing, Xid: XidPing}
	connect := Request{Op: OpConnect, SessionID: 1}
	tests := []struct {
		name string
		m    Match
		req  Request
		want bool
	}{
		{"prefix", Match{Path: "/job/leases/"}, create, true},
		{"prefix is not the parent", Match{Path: "/job/leases/"}, Request{Op: OpCreate, Path: "/job/leases"}, false},
		{"other op", Match{Op: OpDelete, Path: "/job/"}, create, false},
		{"exact", Match{Path: "/job/leases/7", PathMode: Exact}, create, true},
		{"exact, longer path", Match{Path: "/job/leases/", PathMode: Exact}, create, false},
		{"contains", Match{Path: "leases", PathMode: Contains}, create, true},
		{"sub-op by path", Match{Path: "/job/leases/"}, multi, true},
		{"sub-op by op and path", Match{Op: OpCreate, Path: "/job/leases/"}, multi, true},
		{"sub-op op and path must agree", Match{Op: OpSetData, Path: "/job/leases/"}, multi, false},
		{"multi by op", Match{Op: OpMulti}, multi, true},
		{"multi by op and sub-op path", Match{Op: OpMulti, Path: "/job/cursor"}, multi, true},
		{"multi without the path", Match{Op: OpMulti, Path: "/other"}, multi, false},
		{"any op, empty path, pathless request", Match{}, ping, true},
		{"path never matches a pathless request", Match{Path: "/"}, ping, false},
		{"catch-all spares connect", Match{}, connect, false},
		{"connect by name", Match{Op: OpConnect}, connect, true},
		{"connect rule spares requests", Match{Op: OpConnect}, create, false},
	}
	for _, tt := range tests {
		if got := tt.m.matches(tt.req); got != tt.want {
			t.Errorf("%s: %+v matches %v: got %v, want %v", tt.name, tt.m, tt.req, got, tt.want)
		}
	}
}

func TestJudgeOrderAndTimes(t *testing.T) {
	p := &Proxy{}
	seen := p.Observe(Match{Times: Forever})
	first := p.DropConnection(Match{Path: "/a", Times: 2})
	second := p.DropReply(Match{Path: "/a"})
	req := Request{Op: OpGetData, Path: "/a"}

	for i, want := range []*Rule{first, first, second, nil} {
		if got := p.judge(req); got != want {
			t.Fatalf("request %d: got rule %p, want %p", i+1, got, want)
		}
	}
	if n := seen.Count(); n != 4 {
		t.Errorf("observer saw %d requests, want 4", n)
	}
	select {
	case <-first.Fired():
		t.Error("a fault rule fired when it was chosen, before its fault took effect")
	default:
	}
	if len(p.rules) != 1 {
		t.Errorf("%d rules left, want only the observer", len(p.rules))
	}
	seen.Remove()
	if p.judge(req) != nil || seen.Count() != 4 || len(p.rules) != 0 {
		t.Error("a removed rule still matched")
	}
}
