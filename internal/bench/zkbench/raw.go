package main

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// The baselines below use go-zookeeper directly, with nothing of zkdog's
// protocol: what the same client library and server do when nothing else
// is asked of them.

var openACL = zk.WorldACL(zk.PermAll)

// rawFill creates items as znodes with the same paths and data as a
// zkdog job's (buckets of 1,000 under root/items), in Multis of perMulti
// creates with inflight of them outstanding at once: the raw rate of the
// client and server at that batch size. The time covers the buckets and
// the items; root must not exist.
func rawFill(conn *zk.Conn, root string, items [][]byte, perMulti, inflight int) (time.Duration, error) {
	l, err := protocol.NewLayout(root)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for _, p := range []string{root, l.Items()} {
		if _, err := conn.Create(p, nil, 0, openACL); err != nil {
			return 0, fmt.Errorf("raw fill: creating %s: %w", p, err)
		}
	}
	// Buckets first, and waited for, as the items' parents.
	b := newPipeline(conn, perMulti, inflight)
	for i := range protocol.Buckets(len(items)) {
		b.create(l.ItemBucket(i), nil)
	}
	if err := b.wait(); err != nil {
		return 0, fmt.Errorf("raw fill: buckets: %w", err)
	}
	for i, it := range items {
		b.create(l.Item(i), it)
	}
	if err := b.wait(); err != nil {
		return 0, fmt.Errorf("raw fill: items: %w", err)
	}
	return time.Since(start), nil
}

// pipeline sends creates in Multis of size ops, at most inflight at once.
type pipeline struct {
	conn *zk.Conn
	size int
	ops  []any
	sem  chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
}

func newPipeline(conn *zk.Conn, size, inflight int) *pipeline {
	return &pipeline{conn: conn, size: size, sem: make(chan struct{}, inflight)}
}

func (p *pipeline) create(path string, data []byte) {
	p.ops = append(p.ops, &zk.CreateRequest{Path: path, Data: data, Acl: openACL})
	if len(p.ops) == p.size {
		p.flush()
	}
}

func (p *pipeline) flush() {
	if len(p.ops) == 0 {
		return
	}
	ops := p.ops
	p.ops = nil
	p.sem <- struct{}{}
	p.wg.Add(1)
	go func() {
		defer func() { <-p.sem; p.wg.Done() }()
		res, err := p.conn.Multi(ops...)
		if err != nil {
			for _, r := range res {
				if r.Error != nil {
					err = r.Error
					break
				}
			}
			p.mu.Lock()
			p.err = errors.Join(p.err, err)
			p.mu.Unlock()
		}
	}()
}

func (p *pipeline) wait() error {
	p.flush()
	p.wg.Wait()
	return p.err
}

// rawConcurrentCreates has goroutines goroutines each create its share
// of total znodes, one synchronous Create after another, on one
// connection: the rate of plain writes when many clients each wait for
// their reply, as workers do. Each goroutine has its own parent, so no
// parent grows large.
func rawConcurrentCreates(conn *zk.Conn, root string, goroutines, total int, data []byte) (time.Duration, error) {
	if _, err := conn.Create(root, nil, 0, openACL); err != nil {
		return 0, err
	}
	for g := range goroutines {
		if _, err := conn.Create(fmt.Sprintf("%s/g%03d", root, g), nil, 0, openACL); err != nil {
			return 0, err
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	start := time.Now()
	for g := range goroutines {
		n := total / goroutines
		if g < total%goroutines {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if _, err := conn.Create(fmt.Sprintf("%s/g%03d/n%08d", root, g, i), data, 0, openACL); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), first
}
