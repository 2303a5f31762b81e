# zkdog: `make demo` shows it working, `make test` proves it. Both install
# what is missing first (ZooKeeper from Debian's packages, Go modules).
# `make build` and `make install` need only Go (the version go.mod names);
# git is optional, for the version stamp.

GO       ?= go
BIN      := bin
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# No cgo in what is built to be installed: one static binary that runs on
# any Linux of the same architecture, whatever its C library (RHEL/Rocky 8,
# CentOS 7). Only there: the race detector of make test needs cgo.
STATIC   := CGO_ENABLED=0
# make install needs no root: PREFIX=~/.local (the default) or any
# directory of the user's; DESTDIR is prepended, for packagers.
PREFIX   ?= $(HOME)/.local
DESTDIR  ?=
# apt-get needs root; use sudo when not root and sudo exists.
SUDO     := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)
ZK_JAR   := /usr/share/java/zookeeper.jar
# The scheduler tests run a real single-node Slurm, and its Torque-style qsub.
SLURM_PKGS := slurmctld slurmd slurm-client slurm-wlm-torque

.PHONY: all deps test-deps build man completions install uninstall test test-short fuzz bench bench-scale demo clean

# How long make fuzz runs each fuzz target; make test runs each for 3s.
FUZZTIME ?= 60s

all: build

## deps: install ZooKeeper (Debian package) when absent, and download Go modules.
deps:
	@if [ ! -f $(ZK_JAR) ] || ! command -v java >/dev/null 2>&1; then \
		echo "installing ZooKeeper (apt-get install zookeeper)"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y zookeeper; \
	fi
	$(GO) mod download

## test-deps: deps, and Slurm for the scheduler tests.
test-deps: deps
	@if [ ! -x /usr/sbin/slurmctld ] || [ ! -x /usr/sbin/slurmd ] || ! command -v sbatch >/dev/null 2>&1 || ! command -v qsub >/dev/null 2>&1; then \
		echo "installing Slurm for the scheduler tests ($(SLURM_PKGS))"; \
		$(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $(SLURM_PKGS); \
	fi

## build: the zkdog binary (static), and zkserve (a throw-away local ZooKeeper) for the demo.
build:
	$(STATIC) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/zkdog ./cmd/zkdog
	$(STATIC) $(GO) build -trimpath -o $(BIN)/zkserve ./internal/zkserver/zkserve

## man: the manual page, bin/zkdog.1, made from the same definitions as --help.
man: build
	$(BIN)/zkdog man >$(BIN)/zkdog.1

## completions: the bash, zsh and fish completion scripts, in bin/completion/.
completions: build
	mkdir -p $(BIN)/completion
	$(BIN)/zkdog completion bash >$(BIN)/completion/zkdog
	$(BIN)/zkdog completion zsh >$(BIN)/completion/_zkdog
	$(BIN)/zkdog completion fish >$(BIN)/completion/zkdog.fish

## install: zkdog, its manual page and completions under PREFIX (default ~/.local; no root needed).
install: man completions
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 755 $(BIN)/zkdog $(DESTDIR)$(PREFIX)/bin/zkdog
	install -m 644 $(BIN)/zkdog.1 $(DESTDIR)$(PREFIX)/share/man/man1/zkdog.1
	install -m 644 $(BIN)/completion/zkdog $(DESTDIR)$(PREFIX)/share/bash-completion/completions/zkdog
	install -m 644 $(BIN)/completion/_zkdog $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_zkdog
	install -m 644 $(BIN)/completion/zkdog.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/zkdog.fish

## uninstall: remove what install put under PREFIX.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/zkdog $(DESTDIR)$(PREFIX)/share/man/man1/zkdog.1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/zkdog \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_zkdog \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/zkdog.fish

## test: vet, then every test with the race detector, against real ZooKeeper,
## then every fuzz target briefly.
test: test-deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...
	./scripts/fuzz.sh 3s

## fuzz: every fuzz target for FUZZTIME each; commit what it finds (testdata/fuzz).
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

## test-short: unit tests only, no ZooKeeper needed.
test-short:
	$(GO) test -short -count=1 ./...

## bench: the benchmarks, printing their figures.
bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./supervise/
	$(GO) test -run '^$$' -bench TakeRecord -benchtime 2000x -count 1 ./internal/job/
	$(GO) test -run '^$$' -bench SealFootprint -benchtime 1x -count 1 ./internal/job/
	$(GO) test -run '^$$' -bench JoblogReads -benchtime 4000x -count 1 ./master/
	./scripts/bench.sh

## bench-scale: ten thousand in-process workers on a 3-member ensemble (opt-in, 10 to 20 minutes).
bench-scale: deps build
	./scripts/bench.sh -only scale10k -zk-heap 768 -step-timeout 24m

## demo: a local ZooKeeper, a master and workers; a clean run, then a hung worker caught.
demo: deps build
	./scripts/demo.sh

clean:
	rm -rf $(BIN)
