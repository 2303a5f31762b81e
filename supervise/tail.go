package supervise

import (
	"sync"
	"unicode/utf8"
)

// Tail keeps the last bytes written to it, at most its size, in memory
// of that size whatever passes through: the end of a command's standard
// error is what says why it failed, and a command may write gigabytes
// before it does. It is safe for concurrent use; a nil *Tail keeps
// nothing.
type Tail struct {
	mu    sync.Mutex
	ring  []byte // allocated on the first write, then never grown
	size  int
	start int   // where the oldest kept byte is in ring
	n     int   // bytes kept
	total int64 // bytes ever written
}

// NewTail returns a Tail keeping the last size bytes; nil for a size of
// zero or less.
func NewTail(size int) *Tail {
	if size <= 0 {
		return nil
	}
	return &Tail{size: size}
}

// Write keeps the end of p. It never fails, so that a Tail beside a
// destination that fails does not stop the copy.
func (t *Tail) Write(p []byte) (int, error) {
	if t == nil || len(p) == 0 {
		return len(p), nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ring == nil {
		t.ring = make([]byte, t.size)
	}
	t.total += int64(len(p))
	keep := p
	if len(keep) > t.size {
		keep = keep[len(keep)-t.size:]
	}
	end := (t.start + t.n) % t.size
	k := copy(t.ring[end:], keep)
	copy(t.ring, keep[k:])
	t.n += len(keep)
	if t.n > t.size {
		t.start = (t.start + t.n - t.size) % t.size
		t.n = t.size
	}
	return len(p), nil
}

// Bytes returns a copy of the bytes kept. When earlier bytes were
// dropped, the copy starts at the first character boundary: a character
// cut in two is no text, and would be replaced by U+FFFD in a JSON
// record anyway.
func (t *Tail) Bytes() []byte {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]byte, t.n)
	k := copy(out, t.ring[t.start:min(t.start+t.n, len(t.ring))])
	copy(out[k:], t.ring[:t.n-k])
	if t.total > int64(t.n) {
		// A character is at most utf8.UTFMax bytes; past that many
		// continuation bytes the text is not UTF-8 and is kept as it is.
		for i := 0; i < utf8.UTFMax-1 && len(out) > 0 && !utf8.RuneStart(out[0]); i++ {
			out = out[1:]
		}
	}
	return out
}

// String is Bytes as a string.
func (t *Tail) String() string { return string(t.Bytes()) }

// Written is how many bytes were written in all, kept or not.
func (t *Tail) Written() int64 {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}
