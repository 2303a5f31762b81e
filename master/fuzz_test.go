package master_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/master"
)

// itemsModel is what ReadItems is documented to return, written without
// bufio: the lines of in (split at \n), each without the CRs that end it
// (its CRLF, and any CR before that), blank ones (empty, or spaces and
// tabs only) left out. bad is the number of the first line, counting from
// 1 and counting blank lines, that holds a NUL or is over MaxItemBytes,
// with the error it gets; 0 if none.
func itemsModel(in []byte) (items [][]byte, bad int, badErr error) {
	for i, line := range bytes.Split(in, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if bytes.IndexByte(line, 0) >= 0 {
			return nil, i + 1, master.ErrNUL
		}
		if len(line) > protocol.MaxItemBytes {
			return nil, i + 1, job.ErrTooLarge
		}
		if len(bytes.Trim(line, " \t")) > 0 {
			items = append(items, line)
		}
	}
	return items, 0, nil
}

// FuzzReadItems: ReadItems returns exactly the non-blank lines in order,
// every one non-empty, without \n or a line end's \r, and at most
// MaxItemBytes; however the reader hands out the bytes. A line over the
// limit is refused with job.ErrTooLarge, one with a NUL with ErrNUL, naming
// the file and that line's number; a file without items with ErrNoItems
// naming the file.
func FuzzReadItems(f *testing.F) {
	for _, s := range []string{
		"a\nb\nc\n", "a\r\nb\r\nc\r\n", "a\r\nb\nc\r\n", "a\nb\nc", "a\r\nb", "\n\na\n\n\nb\n\n", "\r\na\r\n\r\nb\r\n",
		"only", " a b \n\tc\n", "a\rb\n", "x\nx\n", "données/été.txt\n", "", "\n", "\n\n\r\n", "\r\n", "\r", "\r\r\n",
		"a\r\r\n", "a\r", "a\n\r", "\ra\n", "a\x00b\n", " \t\na\n", "a\n \n\t\t\n", "\x00", " \n\x00\n", "\xff\xfe\n", "a\n\n\n", "\n\n\nz", "a\r\n\r\r\nb",
		"in/file-0001.dat\nin/file-0002.dat\nin/file-0003.dat\n", "--input=x --seed 4\n--input=y --seed 5\n",
	} {
		f.Add([]byte(s), false, uint16(0), int8(0))
	}
	// A line near MaxItemBytes, built in the fuzz body (the fuzzer's own
	// inputs stay small): exactly at it, one over, with a CRLF after it.
	f.Add([]byte("a\n\nb\n"), true, uint16(2), int8(3))
	f.Add([]byte("a\n\nb\n"), true, uint16(3), int8(4))
	f.Add([]byte("a\r\n"), true, uint16(3), int8(3))
	f.Add([]byte("a\nb"), true, uint16(2), int8(4))
	f.Add([]byte("\r\r\n"), true, uint16(0), int8(5))
	f.Fuzz(func(t *testing.T, in []byte, big bool, at uint16, size int8) {
		if big {
			pos := int(at) % (len(in) + 1)
			long := bytes.Repeat([]byte("x"), protocol.MaxItemBytes-3+int(size&7))
			in = append(append(append([]byte(nil), in[:pos]...), long...), in[pos:]...)
		}
		const name = "items.txt"
		want, tooLong, badErr := itemsModel(in)

		got, err := master.ReadItems(bytes.NewReader(in), name)
		switch {
		case tooLong > 0:
			if !errors.Is(err, badErr) {
				t.Fatalf("ReadItems(%.200q...) = %d items, %v; want %v for line %d", in, len(got), err, badErr, tooLong)
			}
			if msg := err.Error(); !strings.Contains(msg, name) || !strings.Contains(msg, fmt.Sprintf("line %d:", tooLong)) {
				t.Fatalf("ReadItems: %q does not name %s and line %d", msg, name, tooLong)
			}
		case len(want) == 0:
			if !errors.Is(err, master.ErrNoItems) || !strings.Contains(err.Error(), name) {
				t.Fatalf("ReadItems(%q) = %q, %v; want ErrNoItems naming %s", in, got, err, name)
			}
		case err != nil:
			t.Fatalf("ReadItems(%.200q...) = %v, want %d items", in, err, len(want))
		}
		if err != nil {
			if got != nil {
				t.Fatalf("ReadItems refused (%v) but returned %d items", err, len(got))
			}
		} else {
			for i, it := range got {
				if len(it) == 0 || len(it) > protocol.MaxItemBytes || bytes.IndexByte(it, '\n') >= 0 || it[len(it)-1] == '\r' {
					t.Fatalf("item %d of %q is %q: empty, too long, or holding a line end", i, in, it)
				}
			}
			if !equalItems(got, want) {
				t.Fatalf("ReadItems(%.200q...) = %.200q, want the non-empty lines %.200q", in, got, want)
			}
		}

		// The same however the reader splits its data (byte by byte only
		// for short inputs: it is slow).
		readers := []io.Reader{iotest.DataErrReader(bytes.NewReader(in)), iotest.HalfReader(bytes.NewReader(in))}
		if len(in) <= 4<<10 {
			readers = append(readers, iotest.OneByteReader(bytes.NewReader(in)))
		}
		for _, r := range readers {
			again, err2 := master.ReadItems(r, name)
			if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || !equalItems(got, again) {
				t.Fatalf("ReadItems of %.200q through a splitting reader = %.200q, %v; want %.200q, %v", in, again, err2, got, err)
			}
		}
	})
}

func equalItems(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
