#!/usr/bin/python3
"""Kazoo LockingQueue consumer benchmark, the peer of `zkdog run --loop`.

Fills a LockingQueue with N items (put_all, in transactions of --chunk),
then one consumer takes items the way a Kazoo-based worker would: get()
(list the queue, lock and read the first free entry),
subprocess.run(["true"]), consume() (check the lock, then delete entry and
lock in one transaction). It consumes every item, or the first --consume
of them. Prints one JSON object on stdout:

    {"items": N, "consumed": C, "seconds": S, "items_per_s": R, "fill_seconds": F, ...}

where S covers the consumer loop only. The queue is deleted at the end.
Diagnostics go to stderr. Run it with the system Python, which has Kazoo
from Debian's python3-kazoo:

    /usr/bin/python3 scripts/kazoo_bench.py --zk 127.0.0.1:2181 --path /bench/q --items 2000
"""

import argparse
import json
import logging
import platform
import subprocess
import sys
import time

try:
    import kazoo
    from kazoo.client import KazooClient
    from kazoo.recipe.queue import LockingQueue
except ImportError as exc:  # pragma: no cover - depends on the machine
    sys.exit(f"kazoo_bench: {exc}; install Kazoo with: apt-get install python3-kazoo "
             "(and run this with /usr/bin/python3)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zk", required=True, help="ZooKeeper host:port")
    ap.add_argument("--path", required=True, help="queue path; must not exist")
    ap.add_argument("--items", type=int, required=True, help="items to put and consume")
    ap.add_argument("--consume", type=int, default=0,
                    help="consume only this many items (default all): get() lists the whole "
                         "queue, so its cost grows with the queue's length")
    ap.add_argument("--chunk", type=int, default=1000,
                    help="items per put_all transaction (the server refuses requests near 1 MiB)")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds a get() may wait before the run counts as failed")
    args = ap.parse_args()
    consume = args.consume if 0 < args.consume <= args.items else args.items
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    client = KazooClient(hosts=args.zk, timeout=30.0)
    client.start(timeout=30.0)
    try:
        if client.exists(args.path):
            sys.exit(f"kazoo_bench: {args.path} exists already")
        queue = LockingQueue(client, args.path)
        values = [f"/data/run42/input-{i:08d}.dat".encode() for i in range(args.items)]

        began = time.perf_counter()
        for start in range(0, len(values), args.chunk):
            queue.put_all(values[start:start + args.chunk])
        fill = time.perf_counter() - began

        began = time.perf_counter()
        for i in range(consume):
            item = queue.get(timeout=args.timeout)
            if item is None:
                sys.exit(f"kazoo_bench: get() found nothing after {i} items")
            subprocess.run(["true"], check=True)
            if not queue.consume():
                sys.exit(f"kazoo_bench: consume() lost the lock on item {i}")
        elapsed = time.perf_counter() - began

        json.dump({
            "items": args.items,
            "consumed": consume,
            "seconds": elapsed,
            "items_per_s": consume / elapsed if elapsed > 0 else 0,
            "fill_seconds": fill,
            "kazoo": getattr(kazoo, "__version__", "unknown"),
            "python": platform.python_version(),
        }, sys.stdout)
        sys.stdout.write("\n")
    finally:
        try:
            client.delete(args.path, recursive=True)
        finally:
            client.stop()
            client.close()


if __name__ == "__main__":
    main()
