package zkserver

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"time"
)

// Default locations of the Debian "zookeeper" package (apt-get install -y
// zookeeper), which is what `make deps` installs.
const (
	DefaultJava = "/usr/bin/java"
	DefaultJar  = "/usr/share/java/zookeeper.jar"

	// slf4jSimpleJar is the SLF4J binding shipped by libslf4j-java, a
	// dependency of the zookeeper package. Without a binding ZooKeeper logs
	// nothing at all, not even the exception it dies of.
	slf4jSimpleJar = "/usr/share/java/slf4j-simple.jar"
)

// Defaults applied by Start and StartEnsemble to zero Config fields.
const (
	// DefaultTickTime is ZooKeeper's time unit, a tenth of the usual 2s so
	// that tests can have sessions expire quickly: the minimum session
	// timeout is 2 ticks and expiry is checked once a tick. Start-up and
	// leader election take as long whatever the tick.
	DefaultTickTime = 200 * time.Millisecond

	// DefaultMaxSessionTimeout replaces ZooKeeper's own default of 20 ticks
	// (4s at DefaultTickTime), which would silently clamp the session
	// timeouts that production-like clients ask for.
	DefaultMaxSessionTimeout = time.Minute

	// DefaultLogLevel keeps the log file small while still recording the
	// errors a failed start dies of.
	DefaultLogLevel = "warn"
)

// StartTimeout bounds how long Start, StartEnsemble, Restart and WaitLeader
// wait for ZooKeeper when their context has no deadline of its own.
const StartTimeout = 30 * time.Second

// ErrNotInstalled is wrapped by errors about a missing java binary or
// ZooKeeper jar.
var ErrNotInstalled = errors.New("ZooKeeper is not installed")

// Config describes how to run ZooKeeper. The zero value is ready to use.
type Config struct {
	// TickTime is ZooKeeper's basic time unit; 0 means DefaultTickTime. It
	// is rounded down to whole milliseconds.
	TickTime time.Duration

	// MinSessionTimeout and MaxSessionTimeout bound the session timeouts
	// that the server grants to clients. 0 means 2*TickTime (ZooKeeper's
	// default) and DefaultMaxSessionTimeout respectively.
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration

	// Log, if set, also receives the JVM's stdout and stderr; ensemble
	// members' lines are prefixed with "zkN| ". The output always goes to
	// the zookeeper.log file in the server's directory as well, so that a
	// failed start can be explained.
	Log io.Writer

	// LogLevel is the SLF4J level (trace, debug, info, warn, error, off);
	// "" means DefaultLogLevel.
	LogLevel string

	// Dir is the parent of the temporary directories that hold ZooKeeper's
	// data, config and log; "" means os.TempDir(). The temporary
	// directories are removed by Stop.
	Dir string

	// DataDir, if set, is used as the server's directory as is (an ensemble
	// uses DataDir/zk1 ... DataDir/zkN) and is kept by Stop, so data
	// survives from one run to the next. Dir is then ignored.
	DataDir string

	// Java is the java binary; "" means DefaultJava, or java from PATH when
	// DefaultJava does not exist.
	Java string

	// Jar is the ZooKeeper server jar; "" means DefaultJar. Its manifest
	// must reference the jars it depends on, as Debian's does.
	Jar string

	// Heap is the JVM's maximum heap in bytes; 0 means DefaultHeap. A
	// znode costs ZooKeeper about 400 bytes of live heap: a queued item
	// (protocol 4) about 75, a finished one a turn node and a result.
	Heap int64

	// TLS, if set, adds a TLS client port (Server.SecureAddr) to the plain
	// one; see TLSConfig.
	TLS *TLSConfig
}

// DefaultHeap fits the jobs of the tests (a hundred thousand items need
// about 90 MiB) with room to spare, without a big JVM on a small machine.
const DefaultHeap = 512 << 20

// withDefaults returns c with its zero fields filled in. It does not check
// that the binaries exist: see installed.
func (c Config) withDefaults() Config {
	if c.TickTime <= 0 {
		c.TickTime = DefaultTickTime
	}
	if c.MinSessionTimeout <= 0 {
		c.MinSessionTimeout = 2 * c.TickTime
	}
	if c.MaxSessionTimeout <= 0 {
		c.MaxSessionTimeout = max(DefaultMaxSessionTimeout, c.MinSessionTimeout)
	}
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	if c.Dir == "" {
		c.Dir = os.TempDir()
	}
	if c.Java == "" {
		c.Java = DefaultJava
		if _, err := os.Stat(DefaultJava); err != nil {
			if p, err := exec.LookPath("java"); err == nil {
				c.Java = p
			}
		}
	}
	if c.Jar == "" {
		c.Jar = DefaultJar
	}
	if c.Heap <= 0 {
		c.Heap = DefaultHeap
	}
	c.TLS = c.TLS.withDefaults()
	return c
}

func (c Config) validate() error {
	if c.TickTime < time.Millisecond {
		return fmt.Errorf("zkserver: TickTime %v is below 1ms", c.TickTime)
	}
	if c.MaxSessionTimeout < c.MinSessionTimeout {
		return fmt.Errorf("zkserver: MaxSessionTimeout %v is below MinSessionTimeout %v",
			c.MaxSessionTimeout, c.MinSessionTimeout)
	}
	if err := c.TLS.validate(); err != nil {
		return err
	}
	return c.installed()
}

func (c Config) installed() error {
	for _, f := range []struct{ what, path string }{{"java", c.Java}, {"ZooKeeper jar", c.Jar}} {
		var problem string
		fi, err := os.Stat(f.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			problem = "does not exist"
		case err != nil:
			problem = err.Error()
		case !fi.Mode().IsRegular():
			problem = "is not a regular file"
		default:
			continue
		}
		return fmt.Errorf("zkserver: %w: %s %s %s; run `make deps` (apt-get install -y zookeeper)",
			ErrNotInstalled, f.what, f.path, problem)
	}
	return nil
}

// Installed reports whether java and the ZooKeeper jar exist at their
// default locations. The error wraps ErrNotInstalled and tells how to
// install them.
func Installed() error {
	return Config{}.withDefaults().installed()
}
