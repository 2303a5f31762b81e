#!/usr/bin/env bash
# Run every Go fuzz target of the module for a bounded time each:
#   scripts/fuzz.sh 60s   (make fuzz)
#   scripts/fuzz.sh 3s    (make test: a short run keeps the targets honest)
# A failing input is written under the package's testdata/fuzz/ by go test;
# commit it, so that every later `go test` runs it as a seed.
set -uo pipefail
cd "$(dirname "$0")/.."
time=${1:-60s}
status=0
while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	echo "== $pkg $name ($time)"
	# A short minimization keeps the time for new inputs (the default, a
	# minute per interesting input, would take all of a short run).
	out=$(mktemp)
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$time" -fuzzminimizetime 5s -parallel 1 "$pkg" 2>&1 | tee "$out"; then
		# Go's fuzzer can end a run that was minimizing a new input at
		# the deadline with "context deadline exceeded", a fault of its coordinator:
		# no input failed, so it is not a finding. A real one writes its
		# failing input under testdata/fuzz.
		if grep -q 'Failing input written' "$out" || ! grep -q 'context deadline exceeded' "$out"; then
			status=1
		else
			echo "(the fuzzer ended at its deadline while minimizing; no input failed)"
		fi
	fi
	rm -f "$out"
done < <(grep -HoE '^func (Fuzz[A-Za-z0-9_]+)\(' --include='*_test.go' -r . | sed -E 's/^\.\///; s/:func (Fuzz[A-Za-z0-9_]+)\($/:\1/' | sort)
exit $status
