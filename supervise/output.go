package supervise

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// Counter counts the bytes the child wrote to its stdout and stderr when
// they are passed through (Config.Output). Its zero value is ready to
// use; it is safe for concurrent use. Hand the same Counter to a Monitor
// to detect ActivityOutput.
type Counter struct {
	n atomic.Uint64
}

// Load returns the number of bytes counted so far.
func (c *Counter) Load() uint64 {
	if c == nil {
		return 0
	}
	return c.n.Load()
}

func (c *Counter) add(n int) {
	if c != nil && n > 0 {
		c.n.Add(uint64(n))
	}
}

// copier moves one stream from the child's pipe to its destination.
type copier struct {
	r     *os.File
	w     io.Writer
	count *Counter
	tail  *Tail
}

// run copies until EOF or until the read end is closed under it (drain
// timeout). Bytes are counted when read, not when written: the child made
// progress by producing them even if our own stdout is slow to take them.
//
// If writing fails (our stdout is a pipe whose reader went away), the read
// end is closed so that the child's next write fails with EPIPE/SIGPIPE,
// exactly what it would have got had it inherited the broken descriptor.
// Draining and discarding instead would keep a producer running for
// nothing.
func (c *copier) run() {
	defer c.r.Close()
	buf := make([]byte, 32*1024)
	for {
		n, rerr := c.r.Read(buf)
		if n > 0 {
			c.count.add(n)
			// The tail first: it keeps what the command said even when
			// the destination has gone.
			_, _ = c.tail.Write(buf[:n])
			if _, werr := c.w.Write(buf[:n]); werr != nil {
				return
			}
		}
		if rerr != nil {
			return
		}
	}
}

// lockedWriter serialises writes when stdout and stderr go to the same
// non-file writer (a bytes.Buffer is not safe for concurrent Writes).
// Each stream keeps its own order; between streams, interleaving is at
// the granularity of the child's writes as we read them.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// sameWriter reports whether a and b are the same writer. Interface
// comparison panics on uncomparable dynamic types (a struct holding a
// slice); those cannot be the same value as far as we can tell, which is
// what os/exec concludes too.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}
