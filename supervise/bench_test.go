//go:build linux

package supervise

import (
	"os"
	"testing"
)

// BenchmarkSample measures one sample of a small idle tree (a shell and
// two sleeping jobs) with every kind of evidence enabled, as zkdog takes
// it once per Interval. "steady" is the usual sample, which reads only
// the tree and the pids new since the last one; "rescan" is the one in
// rescanEvery that reads every process on the machine (it scales with
// procs, reported per op).
func BenchmarkSample(b *testing.B) {
	out := newOutput()
	c := startSh(b, "sleep 1000 & echo $!; sleep 1000 & echo $!; wait", Config{Stdout: out})
	for _, l := range out.lines(b, 2) {
		waitAsleep(b, atoiT(b, l), "sleep")
	}
	kick := b.TempDir() + "/kick"
	for name, src := range sources() {
		for _, mode := range []string{"steady", "rescan"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				var counter Counter
				m := NewMonitor(c.Pid(), MonitorConfig{
					Kinds: ActivityAll, Output: &counter, KickFile: kick, Files: []string{os.DevNull},
				})
				m.src = src()
				m.sample() // baseline
				b.ReportAllocs()
				for b.Loop() {
					if mode == "rescan" {
						clear(m.foreign)
					}
					if act, alive := m.sample(); !alive || act != 0 {
						b.Fatalf("sample = %v, %v", act, alive)
					}
				}
				b.ReportMetric(float64(len(m.pidBuf)), "procs")
				b.ReportMetric(float64(len(m.procs)), "members")
			})
		}
	}
}
