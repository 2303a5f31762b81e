package bench

import (
	"bufio"
	"fmt"
	"os"
)

// Items returns n distinct work items shaped like the ones zkdog is fed:
// input file names, about 30 bytes each.
func Items(n int) [][]byte {
	items := make([][]byte, n)
	for i := range items {
		items[i] = fmt.Appendf(nil, "/data/run42/input-%08d.dat", i)
	}
	return items
}

// WriteItems writes items one per line, as zkdog master --items reads them.
func WriteItems(path string, items [][]byte) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	for _, it := range items {
		w.Write(it)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("bench: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: writing %s: %w", path, err)
	}
	return nil
}
