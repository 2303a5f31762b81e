// Command zkbench measures zkdog against baselines on one local ZooKeeper
// that it starts on loopback and stops at the end, and prints one table:
// metric, zkdog's figure, the baseline's, their ratio, the goal and
// whether it was met. Goals are informational; the exit status is non-zero
// only when a measurement could not be taken at all.
//
//	go run ./internal/bench/zkbench -zkdog bin/zkdog            # full run, 3 to 5 minutes
//	go run ./internal/bench/zkbench -zkdog bin/zkdog -quick     # smoke run, under a minute
//	go run ./internal/bench/zkbench -zkdog bin/zkdog -only idle -idle 10s
//
// scripts/bench.sh builds bin/zkdog and runs this; `make bench` runs that.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zkdog/zkdog/internal/bench"
	"github.com/zkdog/zkdog/internal/creds"
	"github.com/zkdog/zkdog/internal/job"
	"github.com/zkdog/zkdog/internal/protocol"
	"github.com/zkdog/zkdog/internal/zkconn"
	"github.com/zkdog/zkdog/internal/zkserver"
)

// step is one measurement; it returns its rows, including failed ones.
type step struct {
	name string
	what string
	run  func(*env) []bench.Row
}

// Steps in the order they run. The million-item queue comes last: it is
// the one that may exhaust the server's heap, and it leaves the server
// too large to be a fair ground for anything after it.
var steps = []step{
	{"fill", "filling a job: job.Create vs raw Multi; zkdog init; removal", (*env).fill},
	{"overhead", "zkdog run -- true, one item per run, vs bare true", (*env).overhead},
	{"exit", "master exit latency after the last worker", (*env).exitLatency},
	{"loop", "one looping worker vs Kazoo LockingQueue", (*env).loop},
	{"pool", "a pool of looping workers vs raw concurrent creates", (*env).pool},
	{"idle", "idle supervision cost: CPU, RSS, writes", (*env).idle},
	{"heap", "ZooKeeper heap per queued item vs one znode per item", (*env).heap},
	{"consume", "consume rate from a large queue vs a small one", (*env).consume},
	{"scale", "a large job worked by many concurrent workers and reported (opt-in: -only scale)", (*env).scale},
	{"scale10k", "ten thousand workers on a 3-member ensemble, a few hung: the master's cost (opt-in: -only scale10k)", (*env).scale10k},
}

// optIn steps run only when named with -only: they take minutes.
var optIn = map[string]bool{"scale": true, "scale10k": true}

// sizes are the knobs of every measurement; full and quick presets, each
// overridable by its flag.
type sizes struct {
	Fill            int           // items per fill
	FillReps        int           // rounds of zkdog and raw fills
	Runs            int           // zkdog run -- true repetitions
	ExitRuns        int           // master exit repetitions
	LoopItems       int           // items for the single looping worker (and Kazoo)
	PoolItems       int           // items for the pool
	Workers         int           // pool size
	RawCreates      int           // creates of the concurrent-create baseline
	Big             int           // items in the large queue
	Small           int           // items in the small queue
	Consumes        int           // consumes from each queue
	FallbackBig     int           // large queue on a fresh server when Big does not fit; 0: none
	HeapItems       int           // items of the heap step's job
	HeapRawItems    int           // znodes of the heap step's baseline
	KazooBig        int           // items queued for Kazoo's large-queue run
	KazooBigConsume int           // items consumed in that run
	Idle            time.Duration // measured window of each idle run
	IdleTimer       time.Duration // the job's timer limit in idle runs
	SettleDelay     time.Duration // pause between a worker's start and the idle window
	ScaleItems      int           // items of the scale job
	ScaleWorkers    int           // concurrent workers of the scale job
	Fleet           int           // workers of the scale10k step, hung ones included
	FleetFirst      int           // workers of its first window
	FleetHung       int           // hung workers among them
	FleetItems      int           // items of its job
	FleetTimer      time.Duration // its job's timer
	FleetWork       time.Duration // the mean time a worker spends on an item
}

var (
	full = sizes{
		Fill: 100_000, FillReps: 3, Runs: 50, ExitRuns: 10, LoopItems: 2000,
		PoolItems: 4000, Workers: 16, RawCreates: 20_000, Big: 1_000_000, Small: 1000,
		Consumes: 1000, FallbackBig: 250_000, HeapItems: 1_000_000, HeapRawItems: 100_000, KazooBig: 20_000, KazooBigConsume: 200,
		Idle: time.Minute, IdleTimer: 30 * time.Second, SettleDelay: 2 * time.Second,
		ScaleItems: 1_000_000, ScaleWorkers: 1000,
		Fleet: 10_000, FleetFirst: 1000, FleetHung: 5, FleetItems: 100_000, FleetTimer: 30 * time.Second, FleetWork: 25 * time.Second,
	}
	quick = sizes{
		Fill: 10_000, FillReps: 1, Runs: 10, ExitRuns: 3, LoopItems: 200,
		PoolItems: 400, Workers: 16, RawCreates: 2000, Big: 20_000, Small: 1000,
		Consumes: 200, FallbackBig: 10_000, HeapItems: 100_000, HeapRawItems: 20_000, KazooBig: 2000, KazooBigConsume: 50,
		Idle: 5 * time.Second, IdleTimer: 4 * time.Second, SettleDelay: time.Second,
		ScaleItems: 20_000, ScaleWorkers: 100,
		Fleet: 500, FleetFirst: 50, FleetHung: 2, FleetItems: 20_000, FleetTimer: 30 * time.Second, FleetWork: 5 * time.Second,
	}
)

// env is what every step works with.
// userAccess is the identity zkdog itself uses by default.
func userAccess() (job.Access, error) {
	path, err := creds.DefaultPath()
	if err != nil {
		return job.Access{}, err
	}
	c, _, err := creds.LoadOrCreate(path)
	if err != nil {
		return job.Access{}, err
	}
	return job.Access{DigestUser: c.User, DigestSecret: c.Secret(), From: c.Path}, nil
}

type env struct {
	ctx    context.Context
	srv    *zkserver.Server
	addr   string
	sess   *zkconn.Session
	zkdog  string
	python string
	kazoo  string // script path; "" skips the Kazoo comparison
	work   string // directory for items files and process logs
	sz     sizes
	log    *slog.Logger

	cleanups *cleanups
	restarts int // servers replaced by restartServer
	// access is the identity of the zkdog processes the bench runs (the
	// user's credentials file): in-process handles use it too, so that
	// both work on the same jobs.
	access job.Access
}

func main() {
	os.Exit(run())
}

func run() int {
	var (
		sz       sizes
		zkdog    = flag.String("zkdog", "bin/zkdog", "the zkdog `binary` to measure")
		kazoo    = flag.String("kazoo", "scripts/kazoo_bench.py", "the Kazoo benchmark `script`; empty skips the Kazoo comparison")
		python   = flag.String("python", "/usr/bin/python3", "the `python` that has Kazoo (the system one: python3-kazoo)")
		isQuick  = flag.Bool("quick", false, "small sizes, for a smoke run of under a minute")
		only     = flag.String("only", "", "comma-separated `steps` to run (default all): "+stepNames())
		jsonPath = flag.String("json", "", "also write the rows as JSON to `file`")
		keep     = flag.Bool("keep", false, "keep the work directory (items files, process logs)")
		verbose  = flag.Bool("v", false, "log each phase's details to stderr")

		stepTimeout = flag.Duration("step-timeout", 15*time.Minute, "abandon a step, and the run, after this long")
	)
	flag.IntVar(&sz.Fill, "fill", 0, "items per fill (default 100000; 10000 with -quick)")
	flag.IntVar(&sz.FillReps, "fill-reps", 0, "rounds of each fill; the median is reported (default 3; 1 with -quick)")
	flag.IntVar(&sz.Runs, "runs", 0, "repetitions of zkdog run -- true (default 50; 10 with -quick)")
	flag.IntVar(&sz.ExitRuns, "exit-runs", 0, "repetitions of the master exit measurement (default 10; 3 with -quick)")
	flag.IntVar(&sz.LoopItems, "loop-items", 0, "items for one looping worker and for Kazoo (default 2000; 200 with -quick)")
	flag.IntVar(&sz.PoolItems, "pool-items", 0, "items for the pool of workers (default 4000; 400 with -quick)")
	flag.IntVar(&sz.Workers, "workers", 0, "looping workers in the pool (default 16)")
	flag.IntVar(&sz.RawCreates, "raw-creates", 0, "creates in the concurrent-create baseline (default 20000; 2000 with -quick)")
	flag.IntVar(&sz.Big, "big", 0, "items in the large queue (default 1000000; 20000 with -quick)")
	flag.IntVar(&sz.Small, "small", 0, "items in the small queue (default 1000)")
	flag.IntVar(&sz.Consumes, "consumes", 0, "consumes measured from each queue (default 1000; 200 with -quick)")
	flag.IntVar(&sz.HeapItems, "heap-items", 0, "items of the heap step's job (default 1000000; 100000 with -quick)")
	flag.IntVar(&sz.HeapRawItems, "heap-raw-items", 0, "one-znode-per-item baseline of the heap step (default 100000; 20000 with -quick)")
	flag.IntVar(&sz.FallbackBig, "fallback-big", -1, "if the large queue does not fit in ZooKeeper's heap, restart it and use this many items instead; 0 gives up (default 250000; 10000 with -quick)")
	flag.IntVar(&sz.KazooBig, "kazoo-big", 0, "items queued for Kazoo's large-queue run; at most -loop-items skips it (default 20000; 2000 with -quick)")
	flag.IntVar(&sz.KazooBigConsume, "kazoo-big-consume", 0, "items Kazoo consumes from its large queue (default 200; 50 with -quick)")
	flag.IntVar(&sz.ScaleItems, "scale-items", 0, "items of the scale step's job (default 1000000; 20000 with -quick)")
	flag.IntVar(&sz.ScaleWorkers, "scale-workers", 0, "concurrent in-process workers of the scale step (default 1000; 100 with -quick)")
	flag.IntVar(&sz.Fleet, "scale10k-workers", 0, "concurrent in-process workers of the scale10k step, hung ones included (default 10000; 500 with -quick)")
	flag.IntVar(&sz.FleetFirst, "scale10k-first", 0, "workers of the scale10k step's first window, its baseline (default 1000; 50 with -quick)")
	flag.IntVar(&sz.FleetHung, "scale10k-hung", 0, "hung workers of the scale10k step (default 5; 2 with -quick)")
	flag.IntVar(&sz.FleetItems, "scale10k-items", 0, "items of the scale10k step's job (default 100000; 20000 with -quick)")
	flag.DurationVar(&sz.FleetTimer, "scale10k-timer", 0, "the scale10k job's timer (default 30s)")
	flag.DurationVar(&sz.FleetWork, "scale10k-work", 0, "the mean time a scale10k worker spends on an item (default 25s; 5s with -quick); the first window's workers take scale10k-first/scale10k-workers of it per item while they run alone, so that both windows see the same rate of results")
	flag.DurationVar(&sz.Idle, "idle", 0, "measured window of each idle-supervision run (default 1m; 5s with -quick)")
	flag.DurationVar(&sz.IdleTimer, "idle-timer", 0, "the job's timer limit in the idle runs; workers kick at most every quarter of it (default 30s; 4s with -quick)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: zkbench [flags]\n\n"+
			"Measures zkdog on a local ZooKeeper it starts itself, and prints a table of\n"+
			"figures against baselines and goals. Goals are informational.\n\nflags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		return 2
	}
	preset := full
	if *isQuick {
		preset = quick
	}
	sz = withPreset(sz, preset)
	selected, err := selectSteps(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zkbench:", err)
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	e := &env{sz: sz, log: log, python: *python}
	if e.zkdog, err = executable(*zkdog); err != nil {
		fmt.Fprintf(os.Stderr, "zkbench: -zkdog: %v (build it with make build)\n", err)
		return 2
	}
	if *kazoo != "" {
		e.kazoo, err = filepath.Abs(*kazoo)
		if err == nil {
			_, err = os.Stat(e.kazoo)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "zkbench: -kazoo: %v\n", err)
			return 2
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	e.ctx = ctx
	e.cleanups = new(cleanups)

	began := time.Now()
	rows, err := e.runAll(selected, *keep, *stepTimeout)
	// A partial table is still worth printing after an interruption or a
	// server that stopped answering.
	if len(rows) > 0 {
		fmt.Printf("\nzkdog benchmarks: %s (%s), %d CPUs, wall time %v%s\n\n",
			e.zkdog, e.version(), numCPU(), time.Since(began).Round(time.Second), quickNote(*isQuick))
		if werr := bench.WriteTable(os.Stdout, rows); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if *jsonPath != "" && len(rows) > 0 {
		err = errors.Join(err, writeJSON(*jsonPath, rows))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "zkbench:", err)
		return 1
	}
	if slices.ContainsFunc(rows, func(r bench.Row) bool { return r.Err != "" }) {
		return 1
	}
	return 0
}

// cleanups are the servers and sessions to close at the end, shared by
// every copy of env: a step may replace the server (see restartServer),
// and a step that overran is abandoned with whatever it had started.
type cleanups struct {
	mu  sync.Mutex
	fns []func()
}

func (c *cleanups) add(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, fn)
}

// run calls the functions, latest first, once each.
func (c *cleanups) run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// zkHeap is the benchmark server's heap: a million-item queue needs about
// 840 MiB of it live.
var zkHeap = flag.Int64("zk-heap", 1536, "ZooKeeper's maximum heap, in MiB")

// startServer starts a ZooKeeper and opens the driver's session on it.
func (e *env) startServer() error {
	srv, err := zkserver.Start(e.ctx, zkserver.Config{Heap: *zkHeap << 20})
	if err != nil {
		return err
	}
	e.cleanups.add(func() { srv.Stop() })
	// A long session timeout: the driver's own session must outlive the
	// pauses of a server busy with a large queue.
	dctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	sess, err := zkconn.Dial(dctx, srv.Addr(), 30*time.Second, nil)
	if err != nil {
		return err
	}
	e.cleanups.add(sess.Close)
	if e.access, err = userAccess(); err != nil {
		return err
	}
	if err := job.New(sess.Conn(), protocol.Layout{}, job.WithAccess(e.access)).Authenticate(); err != nil {
		return err
	}
	e.srv, e.addr, e.sess = srv, srv.Addr(), sess
	e.log.Info("ZooKeeper serves", "addr", e.addr, "pid", srv.Pid(), "dir", srv.Dir())
	return nil
}

// restartServer replaces the server with a fresh, empty one, for a step
// whose server died (out of heap). The old one is stopped at once: only
// one ZooKeeper runs at a time.
func (e *env) restartServer() error {
	e.sess.Close()
	if err := e.srv.Stop(); err != nil {
		e.log.Warn("stopping ZooKeeper", "err", err)
	}
	e.log.Info("starting a fresh ZooKeeper")
	e.restarts++
	return e.startServer()
}

// runAll starts the server, runs the steps and stops the server.
//
// Each step runs on a copy of env with its own context, bounded by
// stepTimeout: go-zookeeper waits for ever for a reply from a server that
// stopped answering, and a benchmark must end. A step that overruns, or
// is interrupted, is abandoned (its child processes are killed with its
// context) and no later step runs.
func (e *env) runAll(selected []step, keep bool, stepTimeout time.Duration) (rows []bench.Row, err error) {
	e.work, err = os.MkdirTemp("", "zkbench-*")
	if err != nil {
		return nil, err
	}
	defer func() {
		failed := err != nil || slices.ContainsFunc(rows, func(r bench.Row) bool { return r.Err != "" })
		if keep || failed {
			e.log.Info("work directory kept", "dir", e.work)
			return
		}
		os.RemoveAll(e.work)
	}()
	defer e.cleanups.run()

	e.log.Info("starting ZooKeeper")
	if err := e.startServer(); err != nil {
		return nil, err
	}
	base := e.ctx
	for i, s := range selected {
		if err := base.Err(); err != nil {
			return rows, err
		}
		e.log.Info(fmt.Sprintf("[%d/%d] %s: %s", i+1, len(selected), s.name, s.what))
		began := time.Now()
		ctx, cancel := context.WithTimeout(base, stepTimeout)
		se := *e
		se.ctx = ctx
		done := make(chan []bench.Row, 1)
		go func() { done <- s.run(&se) }()
		select {
		case r := <-done:
			cancel()
			rows = append(rows, r...)
			*e = se // the step may have replaced the server
			e.ctx = base
		case <-ctx.Done():
			cancel()
			if base.Err() != nil {
				return rows, fmt.Errorf("interrupted during %s", s.name)
			}
			return append(rows, bench.Failed(s.name, fmt.Errorf("abandoned after %v (-step-timeout)", stepTimeout))), nil
		}
		e.log.Info(fmt.Sprintf("[%d/%d] %s done", i+1, len(selected), s.name), "in", time.Since(began).Round(100*time.Millisecond))
		if e.srv.Pid() == 0 || e.sess.Err() != nil {
			// Every later step would fail the same way; say why once.
			return append(rows, bench.Failed("remaining steps",
				fmt.Errorf("ZooKeeper stopped serving during %s; its log ends:\n%s", s.name, e.srv.LogTail(15)))), nil
		}
	}
	return append(rows, e.serverRow()), nil
}

// serverRow reports the server's own footprint over the whole run: the
// cost side of every figure above.
func (e *env) serverRow() bench.Row {
	row := bench.Row{Metric: "ZooKeeper JVM peak RSS" + xmxNote(e.srv.Pid())}
	m, err := bench.ProcMemory(e.srv.Pid())
	if err != nil {
		row.Err = err.Error()
		return row
	}
	f := bench.MiB(m.HWM)
	row.Zkdog = &f
	if e.restarts > 0 {
		row.Notes = append(row.Notes, fmt.Sprintf("of the last server only: %d earlier one(s) ran out of heap and were replaced", e.restarts))
	}
	if c, err := bench.Mntr(e.ctx, e.addr); err == nil {
		row.Notes = append(row.Notes, fmt.Sprintf("at the end: %s znodes, about %s of data, RSS %s",
			bench.Count(int(c[bench.ZnodeCount])), bench.Bytes(int64(c[bench.DataSize])), bench.MiB(m.RSS)))
	}
	if h, err := readHeap(e.ctx, e.srv.Pid()); err == nil {
		row.Notes = append(row.Notes, "heap at the end: "+h.String())
	}
	return row
}

// version is what the measured binary says it is, for telling runs apart.
func (e *env) version() string {
	out, err := exec.Command(e.zkdog, "--version").Output()
	if err != nil {
		return "version unknown"
	}
	return strings.TrimSpace(string(out))
}

// xmxNote names the server's heap limit, which bounds the largest queue.
func xmxNote(pid int) string {
	if max := maxHeap(pid); max > 0 {
		return fmt.Sprintf(" (-Xmx%dm)", max>>20)
	}
	return ""
}

func withPreset(sz, p sizes) sizes {
	set := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&sz.Fill, p.Fill)
	set(&sz.FillReps, p.FillReps)
	set(&sz.Runs, p.Runs)
	set(&sz.ExitRuns, p.ExitRuns)
	set(&sz.LoopItems, p.LoopItems)
	set(&sz.PoolItems, p.PoolItems)
	set(&sz.Workers, p.Workers)
	set(&sz.RawCreates, p.RawCreates)
	set(&sz.Big, p.Big)
	set(&sz.Small, p.Small)
	set(&sz.Consumes, p.Consumes)
	set(&sz.KazooBig, p.KazooBig)
	set(&sz.KazooBigConsume, p.KazooBigConsume)
	set(&sz.ScaleItems, p.ScaleItems)
	set(&sz.ScaleWorkers, p.ScaleWorkers)
	set(&sz.HeapItems, p.HeapItems)
	set(&sz.HeapRawItems, p.HeapRawItems)
	set(&sz.Fleet, p.Fleet)
	set(&sz.FleetFirst, p.FleetFirst)
	set(&sz.FleetHung, p.FleetHung)
	set(&sz.FleetItems, p.FleetItems)
	setD(&sz.FleetTimer, p.FleetTimer)
	setD(&sz.FleetWork, p.FleetWork)
	if sz.FallbackBig < 0 {
		sz.FallbackBig = p.FallbackBig
	}
	setD(&sz.Idle, p.Idle)
	setD(&sz.IdleTimer, p.IdleTimer)
	setD(&sz.SettleDelay, p.SettleDelay)
	return sz
}

func selectSteps(only string) ([]step, error) {
	if strings.TrimSpace(only) == "" {
		var out []step
		for _, s := range steps {
			if !optIn[s.name] {
				out = append(out, s)
			}
		}
		return out, nil
	}
	var out []step
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(steps, func(s step) bool { return s.name == name })
		if i < 0 {
			return nil, fmt.Errorf("-only: no step %q; the steps are %s", name, stepNames())
		}
		out = append(out, steps[i])
	}
	// Run in the canonical order whatever order they were named in, for
	// the reason given at steps.
	slices.SortFunc(out, func(a, b step) int { return stepIndex(a.name) - stepIndex(b.name) })
	return slices.CompactFunc(out, func(a, b step) bool { return a.name == b.name }), nil
}

func stepIndex(name string) int {
	return slices.IndexFunc(steps, func(s step) bool { return s.name == name })
}

func stepNames() string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.name
	}
	return strings.Join(names, ",")
}

func executable(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file", abs)
	}
	return abs, nil
}

func writeJSON(path string, rows []bench.Row) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := bench.WriteJSON(f, rows); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func quickNote(q bool) string {
	if q {
		return " (-quick: small sizes, figures are indicative only)"
	}
	return ""
}
