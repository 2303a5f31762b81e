package zkserver_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/zkdog/zkdog/internal/zkserver"
	"github.com/zkdog/zkdog/internal/zktest"
)

func start(t *testing.T, cfg zkserver.Config) *zkserver.Server {
	t.Helper()
	requireInstalled(t)
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	begin := time.Now()
	s, err := zkserver.Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("standalone %s (pid %d) serving %v after Start", s.Addr(), s.Pid(), time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestStandalone(t *testing.T) {
	s := start(t, zkserver.Config{})
	ctx := t.Context()

	if mode, err := s.Mode(ctx); err != nil || mode != zkserver.ModeStandalone {
		t.Fatalf("Mode() = %q, %v; want %q", mode, err, zkserver.ModeStandalone)
	}
	if reply, err := zkserver.FourLetter(ctx, s.Addr(), "ruok"); err != nil || reply != "imok\n" {
		t.Errorf("ruok: %q, %v", reply, err)
	}

	conn := zktest.Connect(t, s.Addr())
	if _, err := conn.Create("/job", []byte("payload"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if data, _, err := conn.Get("/job"); err != nil || string(data) != "payload" {
		t.Fatalf("Get = %q, %v", data, err)
	}
	conn.Close()

	pid, dir := s.Pid(), s.Dir()
	if !jvmAlive(pid) {
		t.Fatalf("Pid() = %d is not a running JVM", pid)
	}
	begin := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(begin).Round(time.Millisecond))
	// Stop has reaped the JVM, so it must be gone at once.
	if jvmAlive(pid) {
		t.Errorf("JVM %d alive after Stop", pid)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s after Stop: %v", dir, err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if s.Pid() != 0 {
		t.Errorf("Pid() = %d after Stop", s.Pid())
	}
	if _, err := s.Mode(ctx); !errors.Is(err, zkserver.ErrNotRunning) {
		t.Errorf("Mode after Stop: %v, want ErrNotRunning", err)
	}
	if err := s.Restart(ctx); !errors.Is(err, zkserver.ErrStopped) {
		t.Errorf("Restart after Stop: %v, want ErrStopped", err)
	}
}

func TestKillRestart(t *testing.T) {
	s := start(t, zkserver.Config{})
	ctx := t.Context()
	addr := s.Addr()
	conn := zktest.Connect(t, addr)
	if _, err := conn.Create("/kept", []byte("v1"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	pid := s.Pid()
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if jvmAlive(pid) {
		t.Fatalf("JVM %d alive after Kill", pid)
	}
	if s.Pid() != 0 {
		t.Errorf("Pid() = %d after Kill", s.Pid())
	}
	if _, err := s.Mode(ctx); !errors.Is(err, zkserver.ErrNotRunning) {
		t.Errorf("Mode after Kill: %v, want ErrNotRunning", err)
	}
	if err := s.Kill(); err != nil {
		t.Errorf("Kill of a killed server: %v", err)
	}

	begin := time.Now()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restarted, serving after %v", time.Since(begin).Round(time.Millisecond))
	if s.Addr() != addr || s.Pid() == 0 || s.Pid() == pid {
		t.Errorf("after Restart: Addr %s (was %s), Pid %d (was %d)", s.Addr(), addr, s.Pid(), pid)
	}
	conn = zktest.Connect(t, addr)
	if data, _, err := conn.Get("/kept"); err != nil || string(data) != "v1" {
		t.Fatalf("Get after restart = %q, %v", data, err)
	}

	// Restarting a running server restarts it.
	pid = s.Pid()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if jvmAlive(pid) || s.Pid() == pid {
		t.Errorf("Restart of a running server kept JVM %d", pid)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	requireInstalled(t)
	parent := t.TempDir()
	// A real jar without ZooKeeper in it: the JVM starts and dies at once.
	_, err := zkserver.Start(t.Context(), zkserver.Config{Dir: parent, Jar: "/usr/share/java/slf4j-api.jar"})
	if !errors.Is(err, zkserver.ErrExited) {
		t.Fatalf("Start: %v, want ErrExited", err)
	}
	if !strings.Contains(err.Error(), "QuorumPeerMain") {
		t.Errorf("error does not quote the log:\n%v", err)
	}
	assertEmpty(t, parent)
}

func TestStartNotInstalled(t *testing.T) {
	_, err := zkserver.Start(t.Context(), zkserver.Config{Jar: "/nonexistent/zookeeper.jar"})
	if !errors.Is(err, zkserver.ErrNotInstalled) || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("Start: %v, want ErrNotInstalled mentioning make deps", err)
	}
}

func TestStartCanceled(t *testing.T) {
	requireInstalled(t)
	parent := t.TempDir()
	// Long enough to launch the JVM, far too short for it to serve.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := zkserver.Start(ctx, zkserver.Config{Dir: parent})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start: %v, want DeadlineExceeded", err)
	}
	t.Log(err)
	assertEmpty(t, parent)
	if kids := children(); len(kids) > 0 {
		t.Errorf("children left after a canceled Start: %v", kids)
	}
}

func TestDataDirKept(t *testing.T) {
	dataDir := t.TempDir() + "/data"
	s := start(t, zkserver.Config{DataDir: dataDir})
	conn := zktest.Connect(t, s.Addr())
	if _, err := conn.Create("/kept", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	s = start(t, zkserver.Config{DataDir: dataDir})
	conn = zktest.Connect(t, s.Addr())
	if ok, _, err := conn.Exists("/kept"); err != nil || !ok {
		t.Fatalf("Exists after a new Start on the same DataDir = %v, %v", ok, err)
	}
}

// TestForkingThreadExit guards the reason launch forks from a goroutine
// locked to its thread for the JVM's whole life: a child with Pdeathsig
// dies when the thread that forked it exits, and the runtime exits the
// thread of any goroutine that returns while locked to it. Here the thread
// that called Start exits right after it, which would kill a JVM forked
// from the caller's goroutine, then many more threads do, in case the
// forking thread went back to the pool.
func TestForkingThreadExit(t *testing.T) {
	requireInstalled(t)
	var (
		s   *zkserver.Server
		err error
		tid int
	)
	dir := t.TempDir()
	onExitingThread(func(id int) {
		tid = id
		s, err = zkserver.Start(t.Context(), zkserver.Config{Dir: dir})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	pid := s.Pid()

	for range 32 * runtime.NumCPU() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread()
		}()
		<-done
	}
	// Thread exit is asynchronous; once the task is gone, any Pdeathsig it
	// triggered has been sent.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat("/proc/self/task/" + strconv.Itoa(tid)); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d still exists", tid)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A round trip takes far longer than a SIGKILLed JVM takes to die.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.Mode(ctx); err != nil || !jvmAlive(pid) || s.Pid() != pid {
		t.Fatalf("JVM %d died when the thread that started it exited (srvr: %v)", pid, err)
	}
	conn := zktest.Connect(t, s.Addr())
	if _, err := conn.Create("/alive", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
}

// onExitingThread runs fn on a thread that exits when fn returns, passing
// it the thread's id.
func onExitingThread(fn func(tid int)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // not undone, so that the thread exits
		if syscall.Gettid() == os.Getpid() {
			// The runtime never exits the main thread. Hold it, so that
			// the next goroutine gets another one, then let it go.
			onExitingThread(fn)
			runtime.UnlockOSThread()
			return
		}
		fn(syscall.Gettid())
	}()
	<-done
}

// TestJVMDiesWithParent kills a process that started a server, as a test
// timeout or crash would, and expects its JVM to follow.
func TestJVMDiesWithParent(t *testing.T) {
	requireInstalled(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanEnv+"="+t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := readPid(t, bufio.NewReader(out))
	if !jvmAlive(pid) {
		t.Fatalf("helper's JVM %d is not running", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	begin := time.Now()
	waitGone(t, pid, 10*time.Second)
	t.Logf("JVM gone %v after its parent was killed", time.Since(begin).Round(time.Millisecond))
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s/%s", dir, e.Name())
	}
}
