package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ZooKeeper keeps every znode on its JVM's heap, so the heap, not the
// disk, bounds how large a queue one server can hold. zkserver fixes
// -Xmx; these helpers read how full it is, with the JDK's jcmd when it is
// installed (the Debian zookeeper package brings only a JRE, but
// default-jdk-headless is common).

var errNoHeapInfo = errors.New("no generation totals in jcmd's output")

// heapUse is the serial collector's two generations, in bytes.
type heapUse struct {
	YoungUsed, YoungTotal int64
	OldUsed, OldTotal     int64
}

func (h heapUse) String() string {
	return fmt.Sprintf("%d MiB used of %d MiB committed (young %d MiB, old %d of %d MiB)",
		(h.YoungUsed+h.OldUsed)>>20, (h.YoungTotal+h.OldTotal)>>20, h.YoungUsed>>20, h.OldUsed>>20, h.OldTotal>>20)
}

// oldFull says whether the old generation is full and can grow no more:
// the state in which the JVM does nothing but collect, then throws
// OutOfMemoryError. max is -Xmx, 0 if unknown.
func (h heapUse) oldFull(max int64) bool {
	if h.OldTotal == 0 || float64(h.OldUsed) < 0.99*float64(h.OldTotal) {
		return false
	}
	return max == 0 || float64(h.YoungTotal+h.OldTotal) >= 0.9*float64(max)
}

// generation matches the serial collector's lines of jcmd GC.heap_info:
//
//	def new generation   total 9792K, used 7595K [...]
//	tenured generation   total 21888K, used 3048K [...]
var generation = regexp.MustCompile(`(new|tenured) generation\s+total (\d+)K, used (\d+)K`)

func parseHeap(out string) (heapUse, error) {
	var h heapUse
	found := 0
	for _, m := range generation.FindAllStringSubmatch(out, -1) {
		total, _ := strconv.ParseInt(m[2], 10, 64)
		used, _ := strconv.ParseInt(m[3], 10, 64)
		if m[1] == "new" {
			h.YoungTotal, h.YoungUsed = total<<10, used<<10
		} else {
			h.OldTotal, h.OldUsed = total<<10, used<<10
		}
		found++
	}
	if found != 2 {
		return h, errNoHeapInfo
	}
	return h, nil
}

// readHeap asks the JVM for its heap occupancy. A JVM busy collecting
// answers slowly, hence the generous timeout.
func readHeap(ctx context.Context, pid int) (heapUse, error) {
	jcmd, err := exec.LookPath("jcmd")
	if err != nil {
		return heapUse{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, jcmd, strconv.Itoa(pid), "GC.heap_info").Output()
	if err != nil {
		return heapUse{}, fmt.Errorf("jcmd GC.heap_info: %w", err)
	}
	return parseHeap(string(out))
}

// liveHeap runs a full collection in the JVM and then reads its heap, so
// that what is left is the live set: what the data really needs, against
// the server's -Xmx.
func liveHeap(ctx context.Context, pid int) (heapUse, error) {
	jcmd, err := exec.LookPath("jcmd")
	if err != nil {
		return heapUse{}, err
	}
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := exec.CommandContext(gctx, jcmd, strconv.Itoa(pid), "GC.run").Run(); err != nil {
		return heapUse{}, fmt.Errorf("jcmd GC.run: %w", err)
	}
	return readHeap(ctx, pid)
}

// maxHeap is the -Xmx on the JVM's command line, in bytes; 0 if none.
func maxHeap(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return 0
	}
	var max int64
	for _, arg := range bytes.Split(b, []byte{0}) {
		if v, ok := strings.CutPrefix(string(arg), "-Xmx"); ok {
			max = parseJavaSize(v)
		}
	}
	return max // the last -Xmx wins, as in the JVM
}

// parseJavaSize reads a JVM size such as 512m, 2g, 65536k or 1048576.
func parseJavaSize(s string) int64 {
	shift := 0
	switch strings.ToLower(s[len(s)-min(len(s), 1):]) {
	case "k":
		shift = 10
	case "m":
		shift = 20
	case "g":
		shift = 30
	case "t":
		shift = 40
	}
	if shift > 0 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n << shift
}
