package master

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
)

// A joblog keeps every item's exact bytes: tabs, newlines, backslashes
// and bytes that are not UTF-8 come back from --from-joblog as they were.
func TestJoblogRoundTrip(t *testing.T) {
	items := [][]byte{[]byte("plain"), []byte("tab\there"), []byte(`back\slash`), []byte("cr\rlf\n"), []byte("bad \xff\xfe utf-8"), []byte("ünï")}
	var buf bytes.Buffer
	buf.WriteString(JoblogHeader())
	for i, it := range items {
		r := rowOf(job.Row{Origin: i, Item: it, Outcome: protocol.Failed, Result: protocol.Result{Exit: 3, Reason: "a\tb", Stderr: "x\ny"}})
		buf.WriteString(r.TSV())
	}
	if n := strings.Count(buf.String(), "\n"); n != len(items)+1 {
		t.Fatalf("%d lines for %d items:\n%s", n, len(items), buf.String())
	}
	rows, err := ReadJoblog(&buf, "test")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if !bytes.Equal(r.Bytes(), items[i]) || r.Index != i+1 || r.Outcome != protocol.Failed {
			t.Errorf("row %d = %q (index %d, %s), want %q", i, r.Bytes(), r.Index, r.Outcome, items[i])
		}
	}
	rerun, err := RerunOf(rows, []protocol.Outcome{protocol.Failed}, "test")
	if err != nil || len(rerun.Items) != len(items) || rerun.Origins[5] != 5 {
		t.Errorf("RerunOf = %+v, %v", rerun, err)
	}
	if _, err := RerunOf(rows, []protocol.Outcome{protocol.OK}, "test"); !errors.Is(err, ErrNothingToRerun) {
		t.Errorf("RerunOf with no ok rows = %v, want ErrNothingToRerun", err)
	}
}

func TestReadJoblogRefuses(t *testing.T) {
	for _, bad := range []string{"", "not a header\n", JoblogHeader() + "1\tx\n", JoblogHeader() + "0\tx\tok\t0\t0\t1\tw\th\t\t0\t\t\n",
		JoblogHeader() + "1\tx\\q\tok\t0\t0\t1\tw\th\t\t0\t\t\n", JoblogHeader() + "1\tx\tbogus\t0\t0\t1\tw\th\t\t0\t\t\n",
		JoblogHeader() + "1\tx\\x4\tok\t0\t0\t1\tw\th\t\t0\t\t\n"} {
		if _, err := ReadJoblog(strings.NewReader(bad), "f"); !errors.Is(err, ErrBadJoblog) {
			t.Errorf("ReadJoblog(%q) = %v, want ErrBadJoblog", bad, err)
		}
	}
	// A later row for an item replaces an earlier one.
	rows, err := ReadJoblog(strings.NewReader(JoblogHeader()+"1\tx\tunfinished\t-1\t0\t0\t\t\t\t0.000\t\t\n1\tx\tok\t0\t0\t1\tw\th\t\t0.001\t\t\n"), "f")
	if err != nil || len(rows) != 1 || rows[0].Outcome != protocol.OK {
		t.Errorf("rows %+v, %v; want the later row only", rows, err)
	}
}

func TestParseOutcomes(t *testing.T) {
	got, err := ParseOutcomes("failed, lost,failed")
	if err != nil || len(got) != 2 {
		t.Errorf("ParseOutcomes = %v, %v", got, err)
	}
	if _, err := ParseOutcomes("failed,oops"); !errors.Is(err, ErrBadOutcome) {
		t.Errorf("an unknown outcome: %v", err)
	}
}
