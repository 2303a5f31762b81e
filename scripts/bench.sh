#!/usr/bin/env bash
# Benchmarks: builds bin/zkdog, then measures it against baselines on a
# local ZooKeeper that the driver starts and stops itself, and prints one
# table. Goals are informational: a missed goal does not fail the run;
# a measurement that cannot be taken does.
#
#   scripts/bench.sh            # full run, 3 to 5 minutes (2 of them idle)
#   scripts/bench.sh -quick     # smoke run, under a minute
#   scripts/bench.sh -only idle -idle 10s
#
# Any argument goes to the driver (go run ./internal/bench/zkbench -h).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
PYTHON=/usr/bin/python3 # Debian's python3-kazoo is for the system Python

# Stamped as `make build` stamps it, so the table names what it measured.
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
"$GO" build -ldflags "-X main.version=$version -X main.commit=$commit" -o bin/zkdog ./cmd/zkdog

# The Kazoo peer needs python3-kazoo. Install it as `make deps` installs
# ZooKeeper, when possible; otherwise run without the comparison.
kazoo=scripts/kazoo_bench.py
if ! "$PYTHON" -c 'import kazoo' 2>/dev/null; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=$(command -v sudo || true)
	if [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; then
		echo "installing Kazoo (apt-get install python3-kazoo)" >&2
		$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-kazoo >&2 || true
	fi
	if ! "$PYTHON" -c 'import kazoo' 2>/dev/null; then
		echo "bench.sh: Kazoo is not available to $PYTHON; the Kazoo comparison is skipped" >&2
		kazoo=""
	fi
fi

exec "$GO" run ./internal/bench/zkbench -zkdog "$PWD/bin/zkdog" -python "$PYTHON" -kazoo "$kazoo" "$@"
