package protocol_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/zkdog/zkdog/internal/protocol"
)

func TestChunkRoundTrip(t *testing.T) {
	items := [][]byte{[]byte("a"), {}, []byte("line with\nnewline"), bytes.Repeat([]byte{0xff}, 300)}
	got, err := protocol.DecodeChunk(protocol.EncodeChunk(items))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(items) {
		t.Fatalf("%d items back, want %d", len(got), len(items))
	}
	for i := range items {
		if !bytes.Equal(got[i], items[i]) {
			t.Errorf("item %d: %q, want %q", i, got[i], items[i])
		}
	}
}

func TestDecodeChunkRefuses(t *testing.T) {
	good := protocol.EncodeChunk([][]byte{[]byte("abc")})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"version 3 item": []byte("/data/x.csv"),
		"cut off":        good[:len(good)-1],
		"bad length":     append(append([]byte{}, good[:len(good)-4]...), 0xff, 0xff, 0xff, 0xff, 0x0f),
	} {
		if _, err := protocol.DecodeChunk(b); err == nil {
			t.Errorf("%s: decoded, want an error", name)
		}
	}
}

// A bucket of short items is one chunk; long ones split so that no chunk
// passes MaxChunkBytes, and a chunk holds at least one item.
func TestChunkStarts(t *testing.T) {
	short := make([][]byte, 1000)
	for i := range short {
		short[i] = fmt.Appendf(nil, "/scratch/run42/input-%06d.dat%40s", i, "")
	}
	if got := protocol.ChunkStarts(short, 0, 1000); len(got) != 1 || got[0] != 0 {
		t.Errorf("1000 short items: chunks at %v, want one at 0", got)
	}
	long := make([][]byte, 2000)
	for i := range long {
		long[i] = bytes.Repeat([]byte("x"), protocol.MaxItemBytes)
	}
	starts := protocol.ChunkStarts(long, 1000, 2000)
	if starts[0] != 1000 {
		t.Fatalf("first chunk at %d, want 1000", starts[0])
	}
	for k, s := range starts {
		end := 2000
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		if n := len(protocol.EncodeChunk(long[s:end])); n > protocol.MaxChunkBytes || end <= s {
			t.Errorf("chunk %d..%d: %d bytes (limit %d)", s, end, n, protocol.MaxChunkBytes)
		}
	}
}

func TestDecodeItemBucket(t *testing.T) {
	ib, err := protocol.DecodeItemBucket(protocol.EncodeItemBucket([]int{2000, 2400}, nil), 2)
	if err != nil {
		t.Fatal(err)
	}
	for index, want := range map[int]int{2000: 2000, 2399: 2000, 2400: 2400, 2999: 2400} {
		if got := ib.ChunkOf(index); got != want {
			t.Errorf("ChunkOf(%d) = %d, want %d", index, got, want)
		}
	}
	for name, b := range map[string]string{
		"version 3":       `{"v":3,"chunks":[2000]}`,
		"no chunks":       `{"v":4}`,
		"wrong bucket":    `{"v":4,"chunks":[0]}`,
		"out of order":    `{"v":4,"chunks":[2000,2500,2400]}`,
		"past the bucket": `{"v":4,"chunks":[2000,3000]}`,
	} {
		_, err := protocol.DecodeItemBucket([]byte(b), 2)
		if err == nil {
			t.Errorf("%s: decoded, want an error", name)
		}
		if name == "version 3" && !errors.Is(err, protocol.ErrUnknownVersion) {
			t.Errorf("%s: %v, want ErrUnknownVersion", name, err)
		}
	}
}

func FuzzDecodeChunk(f *testing.F) {
	f.Add(protocol.EncodeChunk([][]byte{[]byte("a"), []byte("bc")}))
	f.Add([]byte("zkdog-items-4\n\x80"))
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := protocol.DecodeChunk(b)
		if err != nil {
			if !strings.Contains(err.Error(), "chunk") {
				t.Errorf("error %q does not say what was bad", err)
			}
			return
		}
		if again := protocol.EncodeChunk(items); !bytes.Equal(again, b) {
			// Varints have one shortest form; a longer one decodes too,
			// so compare what it decodes to instead.
			back, err := protocol.DecodeChunk(again)
			if err != nil || len(back) != len(items) {
				t.Fatalf("re-encoded chunk does not decode alike: %v", err)
			}
		}
	})
}
