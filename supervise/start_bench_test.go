//go:build linux

package supervise

import (
	"io"
	"syscall"
	"testing"
	"time"
)

// BenchmarkStartTrue starts and waits for `true` as a looping zkdog run
// does for each item: output counted, the end of stderr kept. It reports
// the CPU this process spent per run, its children's left out: what
// zkdog itself costs an item beyond the command.
func BenchmarkStartTrue(b *testing.B) {
	for _, hold := range []bool{false, true} {
		b.Run(map[bool]string{false: "each", true: "held"}[hold], func(b *testing.B) {
			if hold {
				defer HoldSignals()()
			}
			benchmarkStartTrue(b)
		})
	}
}

// benchmarkStartTrue is BenchmarkStartTrue's loop; "held" keeps the
// signal subscription from one start to the next (HoldSignals).
func benchmarkStartTrue(b *testing.B) {
	var counter Counter
	before := selfCPU(b)
	for b.Loop() {
		c, err := Start(Config{Path: "true", Stdout: io.Discard, Stderr: io.Discard, Output: &counter, StderrTail: NewTail(4096)})
		if err != nil {
			b.Fatal(err)
		}
		if e := c.Wait(); !e.Success() {
			b.Fatal(e)
		}
	}
	b.ReportMetric(float64((selfCPU(b)-before).Microseconds())/float64(b.N), "cpu-µs/op")
}

func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
