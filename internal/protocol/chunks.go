package protocol

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxChunkBytes bounds a chunk's data. Far below the 1 MiB a server takes
// in one request, and small enough that a worker reading the chunk of its
// next item waits milliseconds, not a transfer; large enough that a
// bucket of short items (file names, parameter lines, up to about 125
// bytes) is one chunk.
const MaxChunkBytes = 128 << 10

// chunkMark opens every chunk's data: the format, so that a reader of
// another version's chunk refuses it rather than misreading it.
const chunkMark = "zkdog-items-4\n"

// EncodeChunk packs items, in order, each as its length (an unsigned
// varint) followed by its bytes.
func EncodeChunk(items [][]byte) []byte {
	n := len(chunkMark)
	for _, it := range items {
		n += binary.MaxVarintLen32 + len(it)
	}
	b := make([]byte, 0, n)
	b = append(b, chunkMark...)
	for _, it := range items {
		b = binary.AppendUvarint(b, uint64(len(it)))
		b = append(b, it...)
	}
	return b
}

var errBadChunk = errors.New("bad chunk")

// DecodeChunk unpacks a chunk's items. The items share b's memory.
func DecodeChunk(b []byte) ([][]byte, error) {
	if len(b) < len(chunkMark) || string(b[:len(chunkMark)]) != chunkMark {
		return nil, fmt.Errorf("%w: it does not start with %q", errBadChunk, chunkMark[:len(chunkMark)-1])
	}
	b = b[len(chunkMark):]
	var items [][]byte
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) || n > MaxItemBytes {
			return nil, fmt.Errorf("%w: item %d's length is cut off or too large", errBadChunk, len(items))
		}
		items = append(items, b[k:k+int(n):k+int(n)])
		b = b[k+int(n):]
	}
	return items, nil
}

// ChunkStarts splits items[lo:hi], one bucket's, into chunks: each at
// most MaxChunkBytes of data, or one item. It returns the index of each
// chunk's first item, lo first.
func ChunkStarts(items [][]byte, lo, hi int) []int {
	starts := []int{lo}
	size := len(chunkMark)
	for i := lo; i < hi; i++ {
		n := binary.MaxVarintLen32 + len(items[i])
		if i > starts[len(starts)-1] && size+n > MaxChunkBytes {
			starts = append(starts, i)
			size = len(chunkMark)
		}
		size += n
	}
	return starts
}

// ItemBucket is the data of an item bucket: where its chunks start and,
// for a job re-running another's items, the items' origins (Origins).
// Sealing a job writes Unfinished, the items of the bucket left without a
// result, before it deletes the results and turn nodes that would tell.
type ItemBucket struct {
	V          int   `json:"v"`
	Chunks     []int `json:"chunks"`
	Index      []int `json:"index,omitempty"`
	Unfinished []int `json:"unfinished,omitempty"`
}

// EncodeItemBucket is the data of an item bucket.
func EncodeItemBucket(chunks, origins []int) []byte {
	return Encode(ItemBucket{V: Version, Chunks: chunks, Index: origins})
}

// DecodeItemBucket reads an item bucket's data, for bucket b.
func DecodeItemBucket(b []byte, bucket int) (ItemBucket, error) {
	var ib ItemBucket
	if err := json.Unmarshal(b, &ib); err != nil {
		return ib, fmt.Errorf("bad item bucket record: %v", err)
	}
	if ib.V != Version {
		return ib, fmt.Errorf("%w %d in an item bucket record", ErrUnknownVersion, ib.V)
	}
	lo, prev := bucket*BucketSize, -1
	for _, c := range ib.Chunks {
		if c <= prev || c < lo || c >= lo+BucketSize {
			return ib, fmt.Errorf("bad item bucket record: chunk %d of bucket %d", c, bucket)
		}
		prev = c
	}
	if len(ib.Chunks) == 0 || ib.Chunks[0] != lo {
		return ib, fmt.Errorf("bad item bucket record: bucket %d's chunks do not start at %d", bucket, lo)
	}
	for _, i := range ib.Index {
		if i < 0 {
			return ib, fmt.Errorf("bad item bucket record: index %d", i)
		}
	}
	for _, i := range ib.Unfinished {
		if i < lo || i >= lo+BucketSize {
			return ib, fmt.Errorf("bad item bucket record: unfinished item %d in bucket %d", i, bucket)
		}
	}
	return ib, nil
}

// ChunkOf is the first index of the chunk holding item index.
func (ib ItemBucket) ChunkOf(index int) int {
	first := ib.Chunks[0]
	for _, c := range ib.Chunks {
		if c > index {
			break
		}
		first = c
	}
	return first
}
