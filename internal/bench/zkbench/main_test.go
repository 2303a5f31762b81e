package main

import (
	"testing"
	"time"
)

// The measurements need a ZooKeeper and a zkdog binary, and run for
// minutes: they are exercised by running the driver (scripts/bench.sh
// -quick). These tests cover the parts that decide what is run and how a
// server's distress is read.

func TestSelectSteps(t *testing.T) {
	all, err := selectSteps("")
	if err != nil || len(all) != len(steps)-len(optIn) {
		t.Fatalf("default selection = %d steps, %v; want all but the opt-in ones", len(all), err)
	}
	for _, s := range all {
		if optIn[s.name] {
			t.Errorf("opt-in step %q runs by default", s.name)
		}
	}
	if scale, err := selectSteps("scale"); err != nil || len(scale) != 1 {
		t.Errorf("-only scale = %v, %v", names(scale), err)
	}
	got, err := selectSteps("consume, fill,fill")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].name != "fill" || got[1].name != "consume" {
		t.Errorf("selection = %v, want fill then consume, once each", names(got))
	}
	if _, err := selectSteps("fill,nosuch"); err == nil {
		t.Error("an unknown step was accepted")
	}
}

func names(ss []step) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.name)
	}
	return out
}

func TestWithPreset(t *testing.T) {
	sz := withPreset(sizes{Fill: 5, Idle: time.Second, FallbackBig: -1}, full)
	if sz.Fill != 5 || sz.Idle != time.Second {
		t.Errorf("explicit sizes were overridden: %+v", sz)
	}
	if sz.Big != full.Big || sz.Runs != full.Runs || sz.FallbackBig != full.FallbackBig {
		t.Errorf("unset sizes were not taken from the preset: %+v", sz)
	}
	if sz := withPreset(sizes{FallbackBig: 0}, full); sz.FallbackBig != 0 {
		t.Errorf("-fallback-big 0 (no fallback) became %d", sz.FallbackBig)
	}
}

func TestParseHeap(t *testing.T) {
	out := `21762:
 def new generation   total 157248K, used 152380K [0x00000000e0000000, 0x00000000eaaa0000, 0x00000000eaaa0000)
  eden space 139776K, 100% used [0x00000000e0000000, 0x00000000e8880000, 0x00000000e8880000)
 tenured generation   total 349568K, used 349567K [0x00000000eaaa0000, 0x0000000100000000, 0x0000000100000000)
 Metaspace       used 5736K, committed 5888K, reserved 1114112K
`
	h, err := parseHeap(out)
	if err != nil {
		t.Fatal(err)
	}
	if h.OldUsed != 349567<<10 || h.OldTotal != 349568<<10 || h.YoungTotal != 157248<<10 {
		t.Errorf("heap = %+v", h)
	}
	if !h.oldFull(512<<20) || !h.oldFull(0) {
		t.Error("a full old generation at the limit is not reported full")
	}
	if h.oldFull(2 << 30) {
		t.Error("an old generation that can still grow is reported full")
	}
	h.OldUsed = h.OldTotal / 2
	if h.oldFull(512 << 20) {
		t.Error("a half-empty old generation is reported full")
	}
	if _, err := parseHeap("1234:\n garbage-first heap total 1024K, used 10K\n"); err == nil {
		t.Error("output without the serial collector's generations parsed")
	}
}

func TestParseJavaSize(t *testing.T) {
	for in, want := range map[string]int64{"512m": 512 << 20, "2G": 2 << 30, "65536k": 64 << 20, "1048576": 1 << 20, "": 0, "x": 0, "-1m": 0} {
		if got := parseJavaSize(in); got != want {
			t.Errorf("parseJavaSize(%q) = %d, want %d", in, got, want)
		}
	}
}
