#!/usr/bin/env bash
# Runs the functions locally under `cargo lambda watch`, against a moto server
# standing in for DynamoDB in two Regions: invokes the resolver with the
# seed's sample event (events/foreign-write.json: Jaws, homed in us-west-1,
# updated in us-east-1) and checks the response and the tables; then asks the
# rehome function for its report (events/rehome-report.json) and sends it a
# malformed request (events/rehome-malformed.json), which must be refused.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LAMBDA_VERSION=1.9.2
[[ -x .venv/bin/moto_server ]] || bash scripts/test.sh venv
if [[ ! -x .venv/bin/cargo-lambda ]]; then
    .venv/bin/pip install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi
export PATH="$PWD/.venv/bin:$PATH"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port)
LAMBDA_PORT=$(free_port)
ENDPOINT="http://127.0.0.1:$MOTO_PORT"
mkdir -p target/local-invoke
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

moto_server -H 127.0.0.1 -p "$MOTO_PORT" >target/local-invoke/moto.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "$ENDPOINT/moto-api/" >/dev/null 2>&1 && break; sleep 0.2; done
python3 scripts/local_invoke.py setup "$ENDPOINT"

cat >target/local-invoke/env <<ENV
AWS_ENDPOINT_URL=$ENDPOINT
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
AWS_REGION=us-east-1
TABLE_NAME=Movies
TABLE_KEY=year,title
HOME_STRATEGY=attribute:src_region
JOURNAL_TABLE=MoviesJournal
REGIONS=us-east-1,us-west-1
MERGE_RULES='{"attributes":{"plot":"longest"}}'
ENV
cargo lambda watch -A 127.0.0.1 -P "$LAMBDA_PORT" --timeout 60 --env-file target/local-invoke/env \
    >target/local-invoke/watch.log 2>&1 &
pids+=($!)
for _ in $(seq 300); do curl -s "http://127.0.0.1:$LAMBDA_PORT/" >/dev/null 2>&1 && break; sleep 0.2; done

cargo lambda invoke -A 127.0.0.1 -P "$LAMBDA_PORT" resolver --data-file events/foreign-write.json \
    | tee target/local-invoke/response.json
echo
python3 - <<'PY'
import json
response = json.load(open("target/local-invoke/response.json"))
assert response == {"batchItemFailures": []}, response
PY
python3 scripts/local_invoke.py check "$ENDPOINT"

cargo lambda invoke -A 127.0.0.1 -P "$LAMBDA_PORT" rehome --data-file events/rehome-report.json \
    | tee target/local-invoke/report.json
echo
python3 - <<'PY'
import json
report = json.load(open("target/local-invoke/report.json"))
assert report["homes"] == {"us-west-1": 1} and report["done"] and report["scanned"] == 1, report
print("ok: the rehome function reports us-west-1 homing Jaws")
PY
if cargo lambda invoke -A 127.0.0.1 -P "$LAMBDA_PORT" rehome --data-file events/rehome-malformed.json \
    >target/local-invoke/malformed.out 2>&1; then
    echo "the malformed request was accepted:"; cat target/local-invoke/malformed.out; exit 1
fi
grep -q "unknown field \`too\`" target/local-invoke/malformed.out \
    || { echo "no clear error for the malformed request:"; cat target/local-invoke/malformed.out; exit 1; }
echo "ok: the malformed request is refused: $(grep -o 'unknown field `too`[^"]*' target/local-invoke/malformed.out | head -1)"
