package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zkdog/zkdog/internal/creds"
	"github.com/zkdog/zkdog/internal/duration"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/tty"
	"github.com/zkdog/zkdog/internal/zkconn"
)

// Flags every command takes, and their environment variables.
const (
	flagZK             = "zk"
	flagRoot           = "root"
	flagSessionTimeout = "session-timeout"
	flagLogLevel       = "log-level"
	flagLogFormat      = "log-format"
	flagAuthFile       = "auth-file"
	flagTLSCA          = "tls-ca"
	flagTLSCert        = "tls-cert"
	flagTLSKey         = "tls-key"

	envZK             = "ZKDOG_ZK"
	envRoot           = "ZKDOG_ROOT"
	envSessionTimeout = "ZKDOG_SESSION_TIMEOUT"
	envLogLevel       = "ZKDOG_LOG_LEVEL"
	envLogFormat      = "ZKDOG_LOG_FORMAT"
	envAuthFile       = "ZKDOG_AUTH_FILE"
	envTLSCA          = "ZKDOG_TLS_CA"
	envTLSCert        = "ZKDOG_TLS_CERT"
	envTLSKey         = "ZKDOG_TLS_KEY"

	defaultZK = "127.0.0.1:2181"
)

func commonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagZK, EnvVars: []string{envZK}, Value: defaultZK,
			Usage: "ZooKeeper servers as `HOST:PORT,...`; to try zkdog, start one with bin/zkserve (README: First steps)."},
		&cli.StringFlag{Name: flagRoot, EnvVars: []string{envRoot},
			Usage: "The job's `PATH` in ZooKeeper, such as /zkdog/myjob."},
		durationFlag(flagSessionTimeout, envSessionTimeout, zkconn.DefaultSessionTimeout,
			"How long ZooKeeper keeps a silent client's session (a `DURATION`: seconds or a Go duration), so how soon a dead worker's timer vanishes; also the bound on connecting. ZooKeeper grants it within its own bounds (4s to 40s by default); zkdog says when it differs."),
		&cli.StringFlag{Name: flagLogLevel, EnvVars: []string{envLogLevel}, Value: "info",
			Usage: "Log `LEVEL`: debug, info, warn or error."},
		&cli.StringFlag{Name: flagLogFormat, EnvVars: []string{envLogFormat}, Value: "text",
			Usage: "Log `FORMAT`, on standard error: text or json (every line a JSON object)."},
		&cli.StringFlag{Name: flagAuthFile, EnvVars: []string{envAuthFile}, TakesFile: true,
			Usage: "The credentials `FILE`, one line USER:SECRET (mode 600, or 640 for a group's copy); default ~/.zkdog/credentials, which zkdog init creates."},
		&cli.StringFlag{Name: flagTLSCA, EnvVars: []string{envTLSCA}, TakesFile: true,
			Usage: "Connect to ZooKeeper's secure port with TLS, checking the servers' certificates against this CA `FILE` (PEM)."},
		&cli.StringFlag{Name: flagTLSCert, EnvVars: []string{envTLSCert}, TakesFile: true,
			Usage: "With --tls-ca: this client certificate `FILE` (PEM); its subject becomes an identity that owns the jobs created."},
		&cli.StringFlag{Name: flagTLSKey, EnvVars: []string{envTLSKey}, TakesFile: true,
			Usage: "With --tls-cert: its private key `FILE` (PEM, unencrypted)."},
	}
}

func durationFlag(name, env string, def time.Duration, usage string) *cli.GenericFlag {
	return &cli.GenericFlag{Name: name, EnvVars: envs(env), Value: &duration.Value{D: def}, Usage: usage,
		DefaultText: durationText(def)}
}

// durationText writes a default as the README does: whole seconds as
// seconds (120s, not 2m0s), since a plain number is seconds to zkdog.
func durationText(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

// withDefaultText replaces the default shown in the help, for a flag
// whose zero value means something worked out later.
func withDefaultText(f *cli.GenericFlag, text string) *cli.GenericFlag {
	f.DefaultText = text
	return f
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
		return slog.New(slog.NewTextHandler(tty.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(tty.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--%s %q: give text or json", flagLogFormat, c.String(flagLogFormat))
}

// target is what every ZooKeeper command starts from: the checked flags.
type target struct {
	servers  string
	layout   protocol.Layout
	timeout  time.Duration
	log      *slog.Logger
	authFile string      // "" for the default
	tls      *tls.Config // nil for a plain connection
	x509     string      // the client certificate's identity, "" for none
}

// use is what a command does with a job, which decides the credentials it
// needs and the access it checks before anything else.
type use int

const (
	useCreate use = iota // init, master: makes the credentials file on first use
	useWork              // run, wait, consume, kick, clear: needs write
	useRead              // status, timers: a public job needs no credentials
	useList              // jobs, clear --finished: many jobs, each checked on its own
)

func parseTarget(c *cli.Context) (target, error) {
	if c.String(flagRoot) == "" {
		if _, err := newLogger(c); err != nil {
			return target{}, usagef("%v", err)
		}
		return target{}, usagef("--%s is required (or set %s): the job's path in ZooKeeper, such as /zkdog/myjob", flagRoot, envRoot)
	}
	l, err := protocol.NewLayout(c.String(flagRoot))
	if err != nil {
		return target{}, fmt.Errorf("--%s: %w", flagRoot, err)
	}
	return parseServerTarget(c, l)
}

// parseServerTarget is parseTarget with the layout given: the commands
// that look at every job under a prefix have no --root.
func parseServerTarget(c *cli.Context, l protocol.Layout) (target, error) {
	log, err := newLogger(c)
	if err != nil {
		return target{}, usagef("%v", err)
	}
	if _, err := zkconn.ParseServers(c.String(flagZK)); err != nil {
		return target{}, fmt.Errorf("--%s: %w", flagZK, err)
	}
	timeout := durationOf(c, flagSessionTimeout)
	if timeout < time.Second {
		return target{}, usagef("--%s %v is too short; ZooKeeper grants at least two ticks (4s by default)", flagSessionTimeout, timeout)
	}
	t := target{servers: c.String(flagZK), layout: l, timeout: timeout, log: log, authFile: c.String(flagAuthFile)}
	if err := t.loadTLS(c); err != nil {
		return target{}, err
	}
	return t, nil
}

// loadTLS reads the TLS files, if any: a CA makes the connection TLS, a
// certificate adds its identity.
func (t *target) loadTLS(c *cli.Context) error {
	ca, cert, key := c.String(flagTLSCA), c.String(flagTLSCert), c.String(flagTLSKey)
	if ca == "" && cert == "" && key == "" {
		return nil
	}
	cfg, err := zkconn.LoadTLS(ca, cert, key)
	if err != nil {
		return fmt.Errorf("--%s/--%s/--%s: %w", flagTLSCA, flagTLSCert, flagTLSKey, err)
	}
	if t.x509, err = zkconn.X509Identity(cfg); err != nil {
		return err
	}
	t.tls = cfg
	return nil
}

// access loads the credentials for u: created on first use by the
// commands that make jobs, required by those that change one, optional
// for those that only read (a public job).
func (t target) access(u use, publicRead bool) (job.Access, error) {
	a := job.Access{X509: t.x509, PublicRead: publicRead}
	path := t.authFile
	if path == "" {
		var err error
		if path, err = creds.DefaultPath(); err != nil {
			return job.Access{}, err
		}
	}
	c, err := t.loadCreds(u, path)
	switch {
	case errors.Is(err, creds.ErrMissing) && (u == useRead || u == useList || t.x509 != "" && t.authFile == ""):
		// A reader of a public job needs no identity; a certificate's
		// identity can own a job instead of a digest one.
		return a, nil
	case errors.Is(err, creds.ErrMissing):
		return job.Access{}, fmt.Errorf("%w: zkdog init makes one for the job's owner; tasks under another account need a copy of the owner's, given with --%s", err, flagAuthFile)
	case err != nil:
		return job.Access{}, err
	}
	a.DigestUser, a.DigestSecret, a.From = c.User, c.Secret(), c.Path
	return a, nil
}

// loadCreds loads the credentials file; the commands that make jobs
// create it on first use, unless a client certificate is the identity.
func (t target) loadCreds(u use, path string) (creds.Credentials, error) {
	if u != useCreate || t.x509 != "" && t.authFile == "" {
		return creds.Load(path)
	}
	c, created, err := creds.LoadOrCreate(path)
	if created {
		t.log.Info("created a credentials file; the array's tasks find it in the same home directory", "file", path)
	}
	return c, err
}

// dial opens the session, authenticates it and, for an existing job,
// checks the access u needs before anything is taken or changed; a
// command that waits for its job (zkdog run) checks once it is there. The
// first connection is bounded by the session timeout: a ZooKeeper that
// cannot grant a session in that time would not keep one alive either.
func (t target) dial(ctx context.Context, a job.Access, u use, waits bool, opts ...zkconn.Option) (*zkconn.Session, *job.Job, error) {
	dctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	if t.tls != nil {
		opts = append(opts, zkconn.WithTLS(t.tls))
	}
	sess, err := zkconn.Dial(dctx, t.servers, t.timeout, t.log, opts...)
	if err != nil {
		return nil, nil, err
	}
	t.noteGranted(sess.Timeout())
	j := job.New(sess.Conn(), t.layout, job.WithAccess(a), job.WithLog(t.log))
	err = j.Authenticate()
	if err == nil && u != useCreate && u != useList && !waits {
		err = j.CheckAccess(u == useWork)
	}
	if err != nil {
		sess.Close()
		return nil, nil, err
	}
	return sess, j, nil
}

// noteGranted says when the server granted another session timeout than
// --session-timeout asked for: ZooKeeper clamps it to its own range, and
// the granted one is what decides how soon a dead worker's timer
// vanishes, and a timer's limit (never under twice the session timeout).
func (t target) noteGranted(granted time.Duration) {
	if granted == t.timeout {
		return
	}
	t.log.Warn("ZooKeeper granted another session timeout than --"+flagSessionTimeout+" asked for (its servers' minSessionTimeout and maxSessionTimeout bound it); zkdog uses the granted one",
		"asked", t.timeout, "granted", granted)
}

// openJob is the start of every operator command: checked flags,
// credentials, and a session with the access u needs. The caller closes
// the session.
func openJob(c *cli.Context, ctx context.Context, u use) (target, *zkconn.Session, *job.Job, error) {
	if c.Args().Len() > 0 {
		return target{}, nil, nil, usagef("zkdog %s takes no arguments, got %q", c.Command.Name, c.Args().First())
	}
	t, err := parseTarget(c)
	if err != nil {
		return t, nil, nil, err
	}
	a, err := t.access(u, false)
	if err != nil {
		return t, nil, nil, err
	}
	sess, j, err := t.dial(ctx, a, u, false)
	return t, sess, j, err
}

func hostPid() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", h, os.Getpid())
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
	return writeJSON(v, false)
}

func writeJSON(v any, indent bool) error {
	enc := json.NewEncoder(os.Stdout)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return outputf("writing the output: %w", err)
	}
	return nil
}
