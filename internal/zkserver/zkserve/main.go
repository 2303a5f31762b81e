// Command zkserve runs a throw-away ZooKeeper server or ensemble for scripts
// and demos. It prints the client address (or, with -ensemble, the
// connection string) on one line to stdout once ZooKeeper serves, then runs
// until SIGINT or SIGTERM and stops it. The first line is printed only once
// ZooKeeper serves, so a script can wait for it:
//
//	zkserve >zk.addr & pid=$!
//	until [ -s zk.addr ]; do sleep 0.1; done
//	... use "$(cat zk.addr)" ...
//	kill $pid; wait $pid
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/zkdog/zkdog/internal/zkserver"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "zkserve:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		dir      = flag.String("dir", "", "keep ZooKeeper's data, config and log in `DIR` (kept on exit); default a temporary directory, removed on exit")
		tick     = flag.Duration("tick", zkserver.DefaultTickTime, "ZooKeeper tickTime")
		ensemble = flag.Int("ensemble", 0, "run an ensemble of `N` members instead of a standalone server")
		verbose  = flag.Bool("v", false, "copy ZooKeeper's log, at info level, to stderr")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: zkserve [flags]\n\n"+
			"Runs ZooKeeper on loopback, prints its address (or connection string) and\n"+
			"runs until SIGINT or SIGTERM.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}

	cfg := zkserver.Config{TickTime: *tick, DataDir: *dir}
	if *verbose {
		cfg.Log, cfg.LogLevel = os.Stderr, "info"
	}

	// Registered before starting, so that a signal during start-up is not
	// lost; it then cancels the start.
	ctx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()

	var stop func() error
	if *ensemble > 0 {
		e, err := zkserver.StartEnsemble(ctx, *ensemble, cfg)
		if err != nil {
			return err
		}
		stop = e.Stop
		fmt.Println(e.ConnString())
	} else {
		s, err := zkserver.Start(ctx, cfg)
		if err != nil {
			return err
		}
		stop = s.Stop
		fmt.Println(s.Addr())
	}
	<-ctx.Done()
	// A second signal now gets the default action; the JVMs still die
	// with us through Pdeathsig.
	stopSignals()
	return stop()
}
