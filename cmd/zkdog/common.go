package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/duration"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
)

// Flags every command takes, and their environment variables.
const (
	flagZK             = "zk"
	flagRoot           = "root"
	flagSessionTimeout = "session-timeout"
	flagLogLevel       = "log-level"
	flagLogFormat      = "log-format"

	envZK             = "ZKDOG_ZK"
	envRoot           = "ZKDOG_ROOT"
	envSessionTimeout = "ZKDOG_SESSION_TIMEOUT"
	envLogLevel       = "ZKDOG_LOG_LEVEL"
	envLogFormat      = "ZKDOG_LOG_FORMAT"

	defaultZK = "127.0.0.1:2181"
)

func commonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagZK, EnvVars: []string{envZK}, Value: defaultZK,
			Usage: "ZooKeeper servers as host:port, comma-separated."},
		&cli.StringFlag{Name: flagRoot, EnvVars: []string{envRoot},
			Usage: "The job's path in ZooKeeper, such as /zkdog/myjob."},
		durationFlag(flagSessionTimeout, envSessionTimeout, zkconn.DefaultSessionTimeout,
			"How long ZooKeeper keeps a silent client's session, and so how soon a dead worker's timer vanishes. Seconds or a Go duration."),
		&cli.StringFlag{Name: flagLogLevel, EnvVars: []string{envLogLevel}, Value: "info",
			Usage: "Log level: debug, info, warn or error."},
		&cli.StringFlag{Name: flagLogFormat, EnvVars: []string{envLogFormat}, Value: "text",
			Usage: "Log format: text or json."},
	}
}

func durationFlag(name, env string, def time.Duration, usage string) *cli.GenericFlag {
	return &cli.GenericFlag{Name: name, EnvVars: envs(env), Value: &duration.Value{D: def}, Usage: usage}
}

func envs(env string) []string {
	if env == "" {
		return nil
	}
	return []string{env}
}

func durationOf(c *cli.Context, name string) time.Duration {
	if v, ok := c.Generic(name).(*duration.Value); ok {
		return v.D
	}
	return 0
}

// newLogger builds the logger from the common flags. Logs go to standard
// error so that standard output stays the command's own.
func newLogger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String(flagLogLevel))); err != nil {
		return nil, fmt.Errorf("--%s %q: give debug, info, warn or error", flagLogLevel, c.String(flagLogLevel))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.String(flagLogFormat)) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--%s %q: give text or json", flagLogFormat, c.String(flagLogFormat))
}

// target is what every ZooKeeper command starts from: the checked flags.
type target struct {
	servers string
	layout  protocol.Layout
	timeout time.Duration
	log     *slog.Logger
}

func parseTarget(c *cli.Context) (target, error) {
	log, err := newLogger(c)
	if err != nil {
		return target{}, err
	}
	if c.String(flagRoot) == "" {
		return target{}, fmt.Errorf("--%s is required (or set %s): the job's path in ZooKeeper, such as /zkdog/myjob", flagRoot, envRoot)
	}
	l, err := protocol.NewLayout(c.String(flagRoot))
	if err != nil {
		return target{}, fmt.Errorf("--%s: %w", flagRoot, err)
	}
	if _, err := zkconn.ParseServers(c.String(flagZK)); err != nil {
		return target{}, fmt.Errorf("--%s: %w", flagZK, err)
	}
	timeout := durationOf(c, flagSessionTimeout)
	if timeout < time.Second {
		return target{}, fmt.Errorf("--%s %v is too short; ZooKeeper grants at least two ticks (4s by default)", flagSessionTimeout, timeout)
	}
	return target{servers: c.String(flagZK), layout: l, timeout: timeout, log: log}, nil
}

// dial opens the session. The first connection is bounded by the session
// timeout: a ZooKeeper that cannot grant a session in that time would not
// keep one alive either.
func (t target) dial(ctx context.Context) (*zkconn.Session, *job.Job, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	sess, err := zkconn.Dial(ctx, t.servers, t.timeout, t.log)
	if err != nil {
		return nil, nil, err
	}
	return sess, job.New(sess.Conn(), t.layout), nil
}

// openJob is the start of every operator command: checked flags and a
// session, with errors already carrying their exit codes (2 for flags, 6
// for ZooKeeper). The caller closes the session.
func openJob(c *cli.Context, ctx context.Context) (target, *zkconn.Session, *job.Job, error) {
	t, err := parseTarget(c)
	if err != nil {
		return t, nil, nil, exitWith(exitUsage, err)
	}
	sess, j, err := t.dial(ctx)
	if err != nil {
		return t, nil, nil, exitWith(exitZooKeeper, err)
	}
	return t, sess, j, nil
}

func hostPid() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", h, os.Getpid())
}

// interruptible returns a context cancelled by SIGINT or SIGTERM, and a
// function saying which signal it was, for the 128+N exit code.
func interruptible(parent context.Context) (context.Context, func() syscall.Signal, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	var got atomic.Int32
	go func() {
		select {
		case s := <-sigs:
			got.Store(int32(s.(syscall.Signal)))
			cancel()
		case <-ctx.Done():
		}
	}()
	caught := func() syscall.Signal { return syscall.Signal(got.Load()) }
	return ctx, caught, func() { signal.Stop(sigs); cancel() }
}

// jobErrorCode maps an error reading a job to an exit code: a missing or
// foreign job is the caller's input, anything else is ZooKeeper's.
func jobErrorCode(err error) int {
	if errors.Is(err, job.ErrNoJob) || errors.Is(err, protocol.ErrUnknownVersion) || errors.Is(err, protocol.ErrNotAJob) {
		return exitUsage
	}
	return exitZooKeeper
}

// isTerminal reports whether f is a terminal, for the live progress line.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printJSON prints v on standard output when --json was given.
func printJSON(c *cli.Context, v any) error {
	if !c.Bool(flagJSON) {
		return nil
	}
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		return exitWith(exitUsage, err)
	}
	return nil
}
