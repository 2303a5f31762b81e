package zkproxy

import "time"

// Partition black-holes all traffic until Heal. Nothing more is forwarded
// in either direction, not even the close of a connection, as a network
// that carries nothing would; messages wait, whole, in the sockets and in
// the proxy, and are delivered after the partition, as TCP would
// retransmit them. New connections are accepted but not connected to the
// server until the partition heals. Partitioning a partitioned proxy does
// nothing.
func (p *Proxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partitionLocked()
}

// Heal ends the partition, if any.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.healLocked(p.healed)
}

// PartitionFor partitions the proxy and heals it after d, unless Heal
// (or Close) heals it first. The channel is closed when the partition
// heals, however it does; if the proxy was already partitioned, that
// partition is the one that heals after d.
func (p *Proxy) PartitionFor(d time.Duration) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return p.healed
	}
	p.partitionLocked()
	healed := p.healed
	p.wg.Add(1)
	go p.healAfter(d, healed)
	return healed
}

func (p *Proxy) healAfter(d time.Duration, healed chan struct{}) {
	defer p.wg.Done()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		p.mu.Lock()
		defer p.mu.Unlock()
		p.healLocked(healed)
	case <-healed:
	case <-p.quit:
	}
}

func (p *Proxy) partitionLocked() {
	if p.partitioned || p.closed {
		return
	}
	p.partitioned = true
	p.healed = make(chan struct{})
	p.log("partitioned")
}

// healLocked heals the partition that healed belongs to, and not a later
// one that a stale timer would otherwise end early.
func (p *Proxy) healLocked(healed chan struct{}) {
	if !p.partitioned || p.healed != healed {
		return
	}
	p.partitioned = false
	close(p.healed)
	p.log("healed")
}

// waitHealed blocks while the proxy is partitioned. It reports false if
// done closed first.
func (p *Proxy) waitHealed(done <-chan struct{}) bool {
	p.mu.Lock()
	healed := p.healed
	p.mu.Unlock()
	select {
	case <-healed:
		return true
	case <-done:
		return false
	}
}
