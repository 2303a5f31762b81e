#!/usr/bin/env bash
# make demo: a local ZooKeeper, then two jobs of a master and four workers
# each: one that finishes cleanly, and one where a worker hangs and the
# master catches it. Everything started here is stopped on the way out.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH=$PWD/bin:$PATH

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting a local ZooKeeper"
zkserve -tick 500ms >"$work/zk.addr" 2>"$work/zk.log" &
pids+=($!)
for _ in $(seq 300); do [ -s "$work/zk.addr" ] && break; sleep 0.1; done
[ -s "$work/zk.addr" ] || { cat "$work/zk.log"; echo "ZooKeeper did not start"; exit 1; }
export ZKDOG_ZK=$(cat "$work/zk.addr")
export ZKDOG_LOG_LEVEL=warn
# A short session, so that a timer's limit (never less than twice the
# worker's session timeout) is the 4 s the jobs ask for.
export ZKDOG_SESSION_TIMEOUT=2s
echo "ZooKeeper serves on $ZKDOG_ZK"

# workers ROOT N: N array tasks, each taking items until the queue is empty.
workers() {
	for i in $(seq "$2"); do
		zkdog run --root "$1" --id "task-$i" --loop --wait-for-job 30s \
			--sample-interval 250ms -- scripts/demo-work.sh {} &
		pids+=($!)
	done
}

say "1. A clean run: 12 items, 4 workers"
seq -f "sample-%02g" 1 12 >"$work/items"
echo "\$ zkdog master --root /demo/clean --items items --timer 4s"
echo "\$ zkdog run --root /demo/clean --loop -- scripts/demo-work.sh {}   # x4"
workers /demo/clean 4
set +e
zkdog master --root /demo/clean --items "$work/items" --timer 4s
status=$?
set -e
wait "${pids[@]:1}" 2>/dev/null || true
pids=("${pids[0]}")
echo "master exit status: $status (0: every item done)"

say "2. A hung worker: one item blocks for ever, alive but making no progress"
seq -f "sample-%02g" 1 8 | sed 's/sample-05/sample-05-hang/' >"$work/items"
echo "\$ zkdog master --root /demo/hung --items items --timer 4s"
workers /demo/hung 4
set +e
zkdog master --root /demo/hung --items "$work/items" --timer 4s
status=$?
set -e
wait "${pids[@]:1}" 2>/dev/null || true
echo "master exit status: $status (3: a worker hung; its task was named, and the running workers were stopped)"
say "Done; stopping ZooKeeper"
