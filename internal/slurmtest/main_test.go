package slurmtest

import (
	"flag"
	"os"
	"testing"
)

// TestMain lets more tests run in parallel than go test's default of
// GOMAXPROCS, unless -parallel says otherwise: these tests spend their time
// waiting for Slurm's scheduler and for KillWait, not on the CPU, and on a
// two-core machine the default would run them two at a time.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "16")
	}
	os.Exit(m.Run())
}
