package master_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zktest"
	"github.com/zkdog/zkdog/master"
)

// TestReportJSONNames: the JSON says what the text says, in its words.
func TestReportJSONNames(t *testing.T) {
	r := master.Report{Root: "/j", End: master.EndHung, Items: 3, Unfinished: 2, Retried: 1,
		Problems: []master.ItemReport{{Index: 1, Item: "in/a", Outcome: protocol.Unfinished, Exit: -1, Reason: "never ran"}},
		Expired:  []master.TimerReport{{Timer: "t-1", Index: 3, Item: "in/c"}},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{"unfinished": 2.0, "retried": 1.0} {
		if got[key] != want {
			t.Errorf("JSON %s = %v, want %v: %s", key, got[key], want, b)
		}
	}
	if _, ok := got["missing"]; ok {
		t.Errorf("JSON still has \"missing\": %s", b)
	}
	exp := got["expired"].([]any)[0].(map[string]any)
	if exp["item"] != "in/c" || exp["index"] != 3.0 {
		t.Errorf("expired timer JSON %v, want item the text \"in/c\" and index 3", exp)
	}
	p := got["problems"].([]any)[0].(map[string]any)
	if p["outcome"] != "unfinished" || p["item"] != "in/a" || p["index"] != 1.0 {
		t.Errorf("problem JSON %v, want the unfinished item 1 \"in/a\"", p)
	}
	if _, ok := p["item_base64"]; ok {
		t.Errorf("a UTF-8 item got item_base64: %v", p)
	}
	var out bytes.Buffer
	r.Print(&out)
	for _, want := range []string{"unfinished 2", "retried 1", `unfinished item 1 "in/a": never ran`, `item 3 "in/c"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed report lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(out.String(), "... and 1 more") {
		t.Errorf("2 unfinished, 1 named: the report lacks \"... and 1 more\":\n%s", out.String())
	}
}

// TestReportInvalidUTF8Item: JSON turns bytes that are not UTF-8 into
// U+FFFD, so a failed item's exact bytes come beside its text, for a
// re-run built from the report.
func TestReportInvalidUTF8Item(t *testing.T) {
	srv := zktest.Standalone(t, zktest.WithTickTime(100*time.Millisecond))
	raw := "in/caf\xe9.dat"
	j := newJob(t, srv, protocol.Job{TimerMillis: 60_000}, "ok.dat", raw)
	w := startWait(t, j, master.WaitConfig{})
	wj, _ := workerOn(t, srv, j)
	record(t, wj, take(t, wj, "w1"), protocol.OK, 0, "w1")
	record(t, wj, take(t, wj, "w1"), protocol.Failed, 1, "w1")
	wj.exit(t)
	r := w.result(t)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back master.Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Problems) != 1 || back.Problems[0].Index != 2 {
		t.Fatalf("problems %+v, want item 2", back.Problems)
	}
	p := back.Problems[0]
	exact, err := base64.StdEncoding.DecodeString(p.ItemBase64)
	if err != nil || string(exact) != raw {
		t.Errorf("item_base64 %q gives %q, %v; want the exact bytes %q (JSON: %s)", p.ItemBase64, exact, err, raw, b)
	}
	if !strings.Contains(p.Item, "\ufffd") {
		t.Errorf("item %q, want the text with U+FFFD for the invalid byte", p.Item)
	}
	if bytes.Contains(b, []byte(`"item":"ok.dat","item_base64"`)) || bytes.Count(b, []byte("item_base64")) != 1 {
		t.Errorf("item_base64 on an item that is valid UTF-8, or missing: %s", b)
	}
}
