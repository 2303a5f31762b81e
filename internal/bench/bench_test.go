package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestNumber(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{0.0123, "0.0123"},
		{0.2, "0.200"},
		{3.14159, "3.14"},
		{12.34, "12.3"},
		{123.4, "123"},
		{999.6, "1,000"},
		{1234.5, "1,235"},
		{1234567, "1,234,567"},
		{-45678, "-45,678"},
		{math.NaN(), "NaN"},
	} {
		if got := Number(c.v); got != c.want {
			t.Errorf("Number(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}

func TestFigures(t *testing.T) {
	if got := Rate(1000, 2*time.Second, "items/s").String(); got != "500 items/s" {
		t.Errorf("Rate = %q", got)
	}
	if got := Rate(1, 0, "items/s").String(); got != "n/a" {
		t.Errorf("Rate over no time = %q, want n/a", got)
	}
	if got := Millis(1500 * time.Microsecond).String(); got != "1.50 ms" {
		t.Errorf("Millis = %q", got)
	}
	if got := MiB(20 << 20).String(); got != "20.0 MiB" {
		t.Errorf("MiB = %q", got)
	}
	for n, want := range map[int64]string{52: "52.0 B", 3 << 10: "3.00 KiB", 5 << 20: "5.00 MiB"} {
		if got := Bytes(n).String(); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int]string{6: "6", 250000: "250,000", -1234: "-1,234"} {
		if got := Count(n); got != want {
			t.Errorf("Count(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestQuantile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	for _, c := range []struct{ q, want float64 }{{0, 1}, {0.5, 3}, {1, 5}, {0.9, 4.6}, {0.25, 2}} {
		if got := Quantile(xs, c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if xs[0] != 5 {
		t.Error("Quantile sorted its argument in place")
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
	if got := Median([]float64{1, 2, 3, 10}); got != 2.5 {
		t.Errorf("Median of four = %v, want 2.5", got)
	}
}

func TestGoals(t *testing.T) {
	f := func(v float64) *Figure { return &Figure{Value: v, Unit: "ms"} }
	for _, c := range []struct {
		name     string
		row      Row
		met, ok  bool
		goalText string
	}{
		{"ratio at least, met", Row{Ratio: 0.8, Goal: RatioAtLeast(0.7)}, true, true, "≥ 0.7×"},
		{"ratio at least, missed", Row{Ratio: 0.5, Goal: RatioAtLeast(0.7)}, false, true, "≥ 0.7×"},
		{"ratio at most", Row{Ratio: 1.1, Goal: RatioAtMost(1.2)}, true, true, "≤ 1.2×"},
		{"no ratio", Row{Goal: RatioAtLeast(5)}, false, false, "≥ 5×"},
		{"figure at most", Row{Zkdog: f(16), Goal: AtMost(15, "ms")}, false, true, "≤ 15 ms"},
		{"failed row", Row{Zkdog: f(1), Goal: AtMost(15, "ms"), Err: "boom"}, false, false, "≤ 15 ms"},
		{"no goal", Row{Zkdog: f(1)}, false, false, ""},
	} {
		met, ok := c.row.Met()
		if met != c.met || ok != c.ok {
			t.Errorf("%s: Met() = %v, %v; want %v, %v", c.name, met, ok, c.met, c.ok)
		}
		if c.row.Goal != nil && c.row.Goal.String() != c.goalText {
			t.Errorf("%s: goal prints %q, want %q", c.name, c.row.Goal.String(), c.goalText)
		}
	}
}

func TestWriteTable(t *testing.T) {
	rate := Figure{Value: 41234, Unit: "items/s"}
	base := Figure{Value: 50000, Unit: "znodes/s"}
	rows := []Row{
		{Metric: "fill", Zkdog: &rate, Baseline: &base, Ratio: rate.Value / base.Value, Goal: RatioAtLeast(0.7), Notes: []string{"a note"}},
		{Metric: "broken", Err: "it failed\nwith detail", Goal: AtMost(15, "ms")},
		{Metric: "plain", Zkdog: &Figure{Value: 3, Unit: "ms"}},
	}
	var b bytes.Buffer
	if err := WriteTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"41,234 items/s", "50,000 znodes/s", "0.82×", "≥ 0.7×", "yes",
		"FAILED", "[1] fill", "    a note", "[2] broken", "error: it failed\n      with detail"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "[3]") {
		t.Errorf("a row without notes got a notes section:\n%s", out)
	}
}

func TestWriteJSONDropsNaN(t *testing.T) {
	nan := Figure{Value: math.NaN(), Unit: "items/s"}
	var b bytes.Buffer
	if err := WriteJSON(&b, []Row{{Metric: "m", Zkdog: &nan, Ratio: math.NaN()}}); err != nil {
		t.Fatal(err)
	}
	var back []map[string]any
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if _, ok := back[0]["zkdog"]; ok || len(back) != 1 {
		t.Errorf("NaN figure written: %s", b.String())
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses, as a process may set.
	stat := "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 12345 1000000 200 18446744073709551615"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; got != want {
		t.Errorf("CPU = %v, want %v (300 ticks at %d Hz)", got, want, userHZ)
	}
	if _, err := parseStatCPU("1234 (x) S 1"); err == nil {
		t.Error("a short stat line parsed")
	}
}

func TestParseStatus(t *testing.T) {
	m, err := parseStatusMemory("Name:\tzkdog\nVmHWM:\t   12000 kB\nVmRSS:\t    9000 kB\nThreads:\t5\n")
	if err != nil {
		t.Fatal(err)
	}
	if m.HWM != 12000<<10 || m.RSS != 9000<<10 {
		t.Errorf("memory = %+v", m)
	}
	if _, err := parseStatusMemory("Name:\tkthreadd\n"); err == nil {
		t.Error("a status without memory lines parsed")
	}
}

func TestProcSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	cpu, err := ProcCPU(os.Getpid())
	if err != nil || cpu < 0 {
		t.Fatalf("ProcCPU(self) = %v, %v", cpu, err)
	}
	m, err := ProcMemory(os.Getpid())
	if err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Fatalf("ProcMemory(self) = %+v, %v", m, err)
	}
}

func TestParseMntr(t *testing.T) {
	c := parseMntr("zk_version\t3.8.0-abc, built on x\nzk_cnt_updatelatency\t12\nzk_sum_updatelatency\t30\nzk_avg_latency\t0.5\n")
	if _, ok := c["zk_version"]; ok {
		t.Error("a text value was kept")
	}
	later := Counters{Writes: 20, WriteMsSum: 46, "zk_avg_latency": 0.4}
	d := later.Since(c)
	if d[Writes] != 8 || d.MeanLatency(Writes, WriteMsSum) != 2 {
		t.Errorf("delta = %v", d)
	}
	if !math.IsNaN(Counters{}.MeanLatency(Writes, WriteMsSum)) {
		t.Error("mean of no requests is not NaN")
	}
}

func TestParseCons(t *testing.T) {
	out := " /127.0.0.1:41234[1](queued=0,recved=12,sent=11,sid=0x1000a3c0f0000,lop=PING,est=1700000000000,to=10000)\n" +
		" /127.0.0.1:41240[0](queued=0,recved=1,sent=0)\n\n"
	cs := parseCons(out)
	if len(cs) != 1 {
		t.Fatalf("clients = %+v, want one (the sessionless cons connection skipped)", cs)
	}
	if c := cs[0]; c.Session != 0x1000a3c0f0000 || c.Received != 12 || c.Sent != 11 {
		t.Errorf("client = %+v", c)
	}
}

func TestItems(t *testing.T) {
	items := Items(3)
	if len(items) != 3 || string(items[2]) != "/data/run42/input-00000002.dat" {
		t.Fatalf("items = %q", items)
	}
	p := t.TempDir() + "/items"
	if err := WriteItems(p, items); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || strings.Count(string(b), "\n") != 3 || !strings.HasPrefix(string(b), "/data/run42/input-00000000.dat\n") {
		t.Fatalf("file = %q, %v", b, err)
	}
}

func TestProcRunAndExitStatus(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("uses sh")
	}
	log := t.TempDir() + "/p.log"
	t.Setenv("ZKDOG_ZK", "elsewhere:2181")
	p, err := Run(t.Context(), Spec{Path: "sh", Args: []string{"-c", `echo "zk=${ZKDOG_ZK-unset} x=$X" >&2`}, Env: []string{"X=1"}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if p.Elapsed() <= 0 || p.ExitCode() != 0 {
		t.Errorf("elapsed %v, exit %d", p.Elapsed(), p.ExitCode())
	}
	if b, _ := os.ReadFile(log); string(b) != "zk=unset x=1\n" {
		t.Errorf("log = %q: ZKDOG_* must be removed and Env added", b)
	}
	_, err = Run(t.Context(), Spec{Path: "sh", Args: []string{"-c", "echo oops >&2; exit 3"}, Log: log})
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "oops") {
		t.Errorf("failing run: %v; want the status and the log's tail", err)
	}
}
