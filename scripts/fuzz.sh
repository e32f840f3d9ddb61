#!/usr/bin/env bash
# Fuzzes the resolver's pure path with cargo-fuzz (libFuzzer), then reports,
# per target, the inputs tried, the rate and the crashes found.
#   bash scripts/fuzz.sh            300 s, split over the targets
#   bash scripts/fuzz.sh 3600       one hour
#   FUZZ_TARGETS="stamp" bash scripts/fuzz.sh 600    one target only
#   FUZZ_JOBS=2 bash scripts/fuzz.sh                 parallel workers per target
#
# Targets (fuzz/fuzz_targets/, both calling resolver::fuzzing):
#   event   bytes -> StreamEvent (the one pass, checked against serde_json)
#           -> every image read as a version from its text and from its
#           item (they must agree) -> triage() per record -> the versions
#           -> merge, restamp, encode
#   stamp   bytes -> DynamoDB JSON item -> Schema::decode -> merge, restamp,
#           encode, decode again
# Built with debug assertions (so integer overflow panics, as wrapping would
# go unseen in release) and no sanitizer (safe Rust; ~2x the executions).
# The corpus (fuzz/corpus/<target>/, not committed) starts from events/*.json
# and fuzz/regressions/<target>/ (committed: crash reproducers and seeds,
# replayed by `cargo test -p resolver --test fuzz_regressions`). A crash
# lands in fuzz/artifacts/<target>/: minimize it with
#   cargo +nightly fuzz tmin -s none -a <target> <file>
# fix it, and commit the minimized input into fuzz/regressions/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-300}"
targets=(${FUZZ_TARGETS:-event stamp})
jobs="${FUZZ_JOBS:-1}"
per_target=$((seconds / ${#targets[@]}))
flags=(-s none -a)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

cd fuzz
cargo +nightly fuzz build "${flags[@]}"

for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target" "regressions/$target"
    cp ../events/*.json "corpus/$target/"
    cp regressions/"$target"/* "corpus/$target/" 2>/dev/null || true
done

declare -A tried rate crashes
for target in "${targets[@]}"; do
    log="artifacts/$target.log"
    echo "== $target: ${per_target}s, $jobs worker(s)"
    before=$(find "artifacts/$target" -type f | wc -l)
    start=$(date +%s)
    # -fork keeps going after a crash (each crash is saved, the run goes on);
    # with one job, a plain run (faster) that stops at the first crash.
    if [[ "$jobs" -gt 1 ]]; then
        mode=(-fork="$jobs" -ignore_crashes=1)
    else
        mode=()
    fi
    set +e
    cargo +nightly fuzz run "${flags[@]}" "$target" "corpus/$target" -- \
        -max_total_time="$per_target" -print_final_stats=1 -max_len=65536 \
        -timeout=10 -rss_limit_mb=2048 -dict=dynamodb.dict "${mode[@]}" \
        -artifact_prefix="artifacts/$target/" >"$log" 2>&1
    status=$?
    set -e
    elapsed=$(($(date +%s) - start))
    # Plain runs print stat::number_of_executed_units; fork mode, `#N` lines.
    n=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
    if [[ -z "$n" || "$n" == 0 ]]; then
        n=$(grep -oE '^#[0-9]+' "$log" | tr -d '#' | sort -n | tail -1)
    fi
    after=$(find "artifacts/$target" -type f | wc -l)
    tried[$target]="${n:-0}"
    rate[$target]=$(( ${n:-0} / (elapsed > 0 ? elapsed : 1) ))
    crashes[$target]=$((after - before))
    [[ $status -eq 0 ]] || echo "   libFuzzer exited $status (see fuzz/$log)"
done

echo
printf '%-8s %14s %10s %8s %8s\n' target inputs exec/s seconds crashes
total=0
for target in "${targets[@]}"; do
    printf '%-8s %14s %10s %8s %8s\n' "$target" "${tried[$target]}" "${rate[$target]}" "$per_target" "${crashes[$target]}"
    total=$((total + crashes[$target]))
done
find artifacts -mindepth 2 -type f -printf 'crash: fuzz/%p\n'
[[ $total -eq 0 ]]
