#!/usr/bin/env bash
# The resolver at the Lambda level (a benchmark, run by hand; not part of
# scripts/test.sh): builds the release bootstrap and the harness
# (bench/lambda), starts moto from .venv, serves a loopback Lambda Runtime
# API and prints one table: init time, peak RSS on ~5.6 MB events, time and
# CPU per 1,000-record invocation, the bootstrap's size, and the pure path
# against the Python reference (bench/python_reference.py) on the same
# event file. See bench/README.md.
#
#   bash scripts/bench-lambda.sh [bench-lambda flags: --cold-starts N --invocations N --pure-runs N]
set -euo pipefail
cd "$(dirname "$0")/.."

[[ -x .venv/bin/moto_server ]] || bash scripts/test.sh venv
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# Two builds on purpose: the bootstrap with the resolver's own features only,
# as `cargo lambda build --release` builds it.
cargo build --release -p resolver
cargo build --release -p homeward-bench
"$CARGO_TARGET_DIR/release/bench-lambda" \
    --bootstrap "$CARGO_TARGET_DIR/release/resolver" \
    --moto .venv/bin/moto_server \
    --python .venv/bin/python \
    --reference bench/python_reference.py \
    --out "$CARGO_TARGET_DIR/bench" \
    "$@"
