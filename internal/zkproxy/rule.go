package zkproxy

import (
	"slices"
	"strings"
)

// PathMode says how Match.Path is compared with a request's path.
type PathMode int

const (
	// Prefix matches paths that start with Match.Path, so "/job/leases/"
	// matches the leases but not "/job/leases" itself.
	Prefix PathMode = iota
	// Exact matches Match.Path only.
	Exact
	// Contains matches paths that contain Match.Path anywhere.
	Contains
)

// Forever, as Match.Times, keeps a rule firing until it is removed.
const Forever = -1

// Match selects requests.
type Match struct {
	// Op is the request's opcode, or for a multi the type of one of its
	// sub-operations: OpCreate matches a plain create and a multi that
	// contains one. OpAny (the zero value) matches every op but
	// OpConnect.
	Op Op
	// Path selects requests by path, compared as PathMode says; a multi
	// matches when one of its sub-operations does. "" matches every
	// request of the Op, including those that have no path (pings).
	Path     string
	PathMode PathMode
	// Times is how many requests the rule fires on before it is spent: 0
	// means once, the common need, and Forever means until removed.
	Times int
}

func (m Match) matches(req Request) bool {
	if (req.Op == OpConnect) != (m.Op == OpConnect) {
		return false
	}
	if m.Op == OpAny || m.Op == req.Op {
		switch {
		case m.Path == "":
			return true
		case req.Op.isMulti():
			return m.anySub(req, OpAny)
		}
		return m.pathMatches(req.Path)
	}
	return req.Op.isMulti() && m.anySub(req, m.Op)
}

func (m Match) anySub(req Request, op Op) bool {
	for _, s := range req.Ops {
		if (op == OpAny || s.Op == op) && (m.Path == "" || m.pathMatches(s.Path)) {
			return true
		}
	}
	return false
}

func (m Match) pathMatches(path string) bool {
	switch m.PathMode {
	case Exact:
		return path == m.Path
	case Contains:
		return strings.Contains(path, m.Path)
	}
	return strings.HasPrefix(path, m.Path)
}

type action int

const (
	observe action = iota
	dropConnection
	dropReply
)

// Rule is a fault, or an observation, that a test has added to a proxy.
type Rule struct {
	p     *Proxy
	m     Match
	act   action
	fired chan struct{}

	// Guarded by p.mu, which also orders rules against each other.
	left  int // firings left; negative for Forever
	count int
	reqs  []Request
}

// Fired is closed once the rule has fired for the first time, and only
// after the fault has taken effect: for DropConnection and DropReply the
// connection is closed by then.
func (r *Rule) Fired() <-chan struct{} { return r.fired }

// Count is how many times the rule has fired.
func (r *Rule) Count() int {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return r.count
}

// Requests are the requests the rule fired on, in order.
func (r *Rule) Requests() []Request {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return slices.Clone(r.reqs)
}

// Remove stops the rule from matching further requests. A DropReply
// whose request was already forwarded still withholds its reply: the
// server has the request, and the fault is half done.
func (r *Rule) Remove() {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	r.left = 0
	r.p.rules = slices.DeleteFunc(r.p.rules, func(x *Rule) bool { return x == r })
}

// DropConnection adds a rule that closes both sides of the connection a
// matching request comes on, without forwarding the request: the server
// never sees it, and the client sees its connection drop with the request
// outstanding.
func (p *Proxy) DropConnection(m Match) *Rule { return p.addRule(m, dropConnection) }

// DropReply adds a rule that forwards a matching request and closes the
// connection when the server's reply to it arrives, instead of forwarding
// the reply; what the server sent before it reaches the client. The
// server has applied the request, yet the client is told the connection
// closed. Should the connection end before the reply comes, the rule
// fires then, since the client lost the reply all the same.
func (p *Proxy) DropReply(m Match) *Rule { return p.addRule(m, dropReply) }

// Observe adds a rule that only records the matching requests, when they
// are about to be forwarded; it records requests that fault rules act on
// too. Like every rule it fires once unless Match.Times says otherwise:
// give Forever to record them all.
func (p *Proxy) Observe(m Match) *Rule { return p.addRule(m, observe) }

func (p *Proxy) addRule(m Match, act action) *Rule {
	left := m.Times
	if left == 0 {
		left = 1
	}
	r := &Rule{p: p, m: m, act: act, left: left, fired: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
	return r
}

// judge returns the fault rule that takes req, if any. Every matching
// observer records it; of the fault rules only the first added that
// matches takes it, and only that one spends a firing.
func (p *Proxy) judge(req Request) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	var fault *Rule
	kept := p.rules[:0]
	for _, r := range p.rules {
		if r.m.matches(req) && (r.act == observe || fault == nil) {
			if r.act == observe {
				r.fireLocked(req)
			} else {
				fault = r
			}
			if r.left > 0 {
				r.left--
			}
		}
		if r.left != 0 {
			kept = append(kept, r)
		}
	}
	clear(p.rules[len(kept):])
	p.rules = kept
	return fault
}

// fire records that r's fault has taken effect on req.
func (p *Proxy) fire(r *Rule, req Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r.fireLocked(req)
}

func (r *Rule) fireLocked(req Request) {
	r.count++
	r.reqs = append(r.reqs, req)
	if r.count == 1 {
		close(r.fired)
	}
}
