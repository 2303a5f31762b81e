package job

import (
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/protocol"
)

// Remove deletes the job tree, a batch of deletes per request. Nodes that
// vanish meanwhile (a worker's timer ending) are not an error. ZooKeeper
// lets any session delete another's ephemeral timer; its worker notices
// and stops its child.
func (j *Job) Remove() error {
	if err := j.removeTree(j.L.Root); err != nil {
		return fmt.Errorf("removing %s: %w", j.L.Root, err)
	}
	return nil
}

// removeTree deletes p and everything below it. Most nodes of a job are
// leaves, so children are deleted in batches first, and only the few that
// turn out to have children of their own (buckets, the fixed directories)
// are descended into; listing every leaf to learn it is a leaf would cost a
// round trip per item.
func (j *Job) removeTree(p string) error {
	kids, _, err := j.conn.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	paths := make([]string, len(kids))
	for i, k := range kids {
		paths[i] = p + "/" + k
		if err := j.noJobAt(paths[i], k); err != nil {
			return err
		}
	}
	if err := j.deleteAll(paths); err != nil {
		return err
	}
	err = j.conn.Delete(p, -1)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return nil
	case errors.Is(err, zk.ErrNotEmpty):
		// A late worker created a timer meanwhile: go again.
		return j.removeTree(p)
	}
	return err
}

func (j *Job) deleteAll(paths []string) error {
	var fns []func() error
	for start := 0; start < len(paths); start += batchOps {
		batch := paths[start:min(start+batchOps, len(paths))]
		fns = append(fns, func() error { return j.deleteBatch(batch) })
	}
	return parallel(fillPipelined, fns...)
}

// deleteBatch deletes batch in one request when its nodes are leaves, and
// otherwise one at a time, descending into the ones with children.
func (j *Job) deleteBatch(batch []string) error {
	ops := make([]any, len(batch))
	for i, p := range batch {
		ops[i] = &zk.DeleteRequest{Path: p, Version: -1}
	}
	_, err := j.multi(ops...)
	if err == nil {
		return nil
	}
	if !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrNotEmpty) {
		return err
	}
	fns := make([]func() error, len(batch))
	for i, p := range batch {
		fns[i] = func() error {
			err := j.conn.Delete(p, -1)
			switch {
			case errors.Is(err, zk.ErrNotEmpty):
				return j.removeTree(p)
			case errors.Is(err, zk.ErrNoNode):
				return nil
			}
			return err
		}
	}
	return parallel(fillPipelined, fns...)
}

// noJobAt refuses to delete p, named name, when it is a job someone made
// inside this one (by hand, or with a zkdog that did not check): deleting
// it would end that job silently. Only names the protocol never writes
// are read, so the check costs nothing for a job's own nodes.
func (j *Job) noJobAt(p, name string) error {
	if protocol.OwnName(name) {
		return nil
	}
	if b, _, err := j.conn.Get(p); err == nil && protocol.LooksLikeJob(b) {
		return fmt.Errorf("%w: the job at %s is inside %s; remove that one first (zkdog clear --root %s)", ErrNested, p, j.L.Root, p)
	}
	return nil
}
