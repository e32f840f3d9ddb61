#!/usr/bin/env bash
# The long randomized checks (a benchmark, not part of the test command):
# the convergence checker with the platform's faults, skewed clocks, the
# template's filters and concurrent resolvers on (its defaults), over
# 10,000 in-memory and 200 moto histories: 3 and 5 Regions, with and
# without `--rehome always`. Prints each run's summary line and the
# injected faults. Usage: bash scripts/check-long.sh [SCALE]
#   SCALE divides the counts (e.g. 10 for a quick look).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-1}
bash scripts/test.sh venv >/dev/null
cargo build --release -q -p homeward-sim
sim=target/release/homeward-sim
failed=0
run() {
    local name=$1
    shift
    local start=$SECONDS
    echo "==> $name: homeward-sim check $*"
    # Its summary, injected faults and any violation (a failing run does
    # not stop the others).
    "$sim" check "$@" >target/check-long.out 2>&1 || failed=1
    grep -E "histories \(|^injected|^[0-9]+ plain writes" target/check-long.out
    grep -E -A3 "^VIOLATION" target/check-long.out | head -40 || true
    echo "    wall $((SECONDS - start)) s"
}
mem=$((2500 / scale))
moto=$((50 / scale))
run "memory, 3 Regions" --memory --histories "$mem" --regions 3 --seed 100000
run "memory, 3 Regions, rehome always" --memory --histories "$mem" --regions 3 --seed 200000 --rehome always
run "memory, 5 Regions" --memory --histories "$mem" --regions 5 --seed 300000
run "memory, 5 Regions, rehome always" --memory --histories "$mem" --regions 5 --seed 400000 --rehome always
run "moto, 3 Regions" --histories "$moto" --regions 3 --seed 500000
run "moto, 3 Regions, rehome always" --histories "$moto" --regions 3 --seed 600000 --rehome always
run "moto, 5 Regions" --histories "$moto" --regions 5 --seed 700000
run "moto, 5 Regions, rehome always" --histories "$moto" --regions 5 --seed 800000 --rehome always
exit "$failed"
