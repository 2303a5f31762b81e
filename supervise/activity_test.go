package supervise

import (
	"flag"
	"strings"
	"testing"
)

func TestParseActivity(t *testing.T) {
	for in, want := range map[string]Activity{
		"cpu":                     ActivityCPU,
		"cpu,io,output,file,kick": ActivityAll,
		" CPU , io ":              ActivityCPU | ActivityIO,
		"alive":                   ActivityAlive,
		"all":                     ActivityAll,
		"all,alive":               ActivityAll | ActivityAlive,
		"kick,kick":               ActivityKick,
	} {
		got, err := ParseActivity(in)
		if err != nil || got != want {
			t.Errorf("ParseActivity(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "cpu,", "cpu,disk", "none"} {
		_, err := ParseActivity(in)
		if err == nil {
			t.Errorf("ParseActivity(%q) succeeded", in)
			continue
		}
		if !strings.Contains(err.Error(), "cpu, io, output, file, kick, alive, all") {
			t.Errorf("error %q does not list the valid kinds", err)
		}
	}
	if _, err := ParseActivity("cpu,disk"); !strings.Contains(err.Error(), `"disk"`) {
		t.Errorf("error %q does not name the bad word", err)
	}
}

func TestActivityString(t *testing.T) {
	for a, want := range map[Activity]string{
		0:                          "none",
		ActivityCPU:                "cpu",
		ActivityAll:                "cpu,io,output,file,kick",
		ActivityIO | ActivityAlive: "io,alive",
		1 << 7:                     "0x80",
	} {
		if got := a.String(); got != want {
			t.Errorf("%#x.String() = %q, want %q", uint8(a), got, want)
		}
	}
	for a := Activity(1); a < 1<<6; a++ {
		back, err := ParseActivity(a.String())
		if err != nil || back != a {
			t.Errorf("round trip of %v: %v, %v", a, back, err)
		}
	}
}

func TestActivityFlag(t *testing.T) {
	var a Activity
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Var(&a, "progress", "")
	if err := fs.Parse([]string{"-progress", "cpu,kick"}); err != nil {
		t.Fatal(err)
	}
	if a != ActivityCPU|ActivityKick {
		t.Fatalf("flag set %v", a)
	}
}
