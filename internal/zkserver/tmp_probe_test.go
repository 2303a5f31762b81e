package zkserver

import (
	"context"
	"testing"
)

func TestTmpProbe(t *testing.T) {
	e, err := StartEnsemble(context.Background(), 3, Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	for _, m := range e.Members() {
		out, err := FourLetter(context.Background(), m.Addr(), "srvr")
		t.Logf("%v\n%s", err, out)
	}
	t.Logf("log of zk1:\n%s", e.Member(0).LogTail(50))
	t.Logf("log of zk2:\n%s", e.Member(1).LogTail(50))
}
