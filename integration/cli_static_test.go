package integration

import (
	"debug/elf"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"testing"
)

// TestStaticBinaryWorks: the binary make build makes (CGO_ENABLED=0) needs
// no C library, so it runs on nodes whose glibc is older than the build
// machine's (RHEL/Rocky 8, CentOS 7); and what cgo would otherwise do
// (the user name for a new credentials file, name lookups) still works.
func TestStaticBinaryWorks(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "zkdog")
	build := exec.Command("go", "build", "-o", bin, "../cmd/zkdog")
	// TestMain moved HOME; the build needs the user's module and build
	// caches.
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "HOME="+u.HomeDir)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, err := f.ImportedLibraries()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Fatalf("the static build needs %v", libs)
	}
	// A home without credentials, as on a user's first job: init makes
	// the file under the account's name, and the workers use it.
	home := t.TempDir()
	o := opts{bin: bin, env: []string{"HOME=" + home}, zk: "localhost:" + portOf(t, shared.Addr())}
	// A root of the new identity's own: /it belongs to the tests' one.
	// The master removes the job when it is done.
	root := "/cli-static/job"
	expectExit(t, run(t, o, "init", "--root", root, "--items", writeFile(t, "items", "a\nb\n")), exitOK)
	if _, err := os.Stat(filepath.Join(home, ".zkdog", "credentials")); err != nil {
		t.Fatalf("init made no credentials file: %v", err)
	}
	m := start(t, o, "wait", "--root", root)
	expectExit(t, run(t, o, "run", "--root", root, "--loop", "--", "true"), exitOK)
	expectExit(t, m, exitOK)
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}
