#!/usr/bin/env bash
# Homeward's checks, in order (CI runs them through .ci/run).
#   bash scripts/test.sh              every step
#   bash scripts/test.sh clippy test  only those steps
# To add a step: write a `step_<name>` function and add <name> to STEPS.
set -euo pipefail
cd "$(dirname "$0")/.."

# moto serves DynamoDB and DynamoDB Streams locally for the integration tests.
MOTO_VERSION=5.2.5
STEPS=(venv fmt clippy test python typescript local_invoke template)

header() {
    printf '\n==> %s\n' "$*"
}

step_venv() {
    header "python venv with moto[server]==$MOTO_VERSION (.venv)"
    if [[ ! -x .venv/bin/python ]]; then
        python3 -m venv .venv
    fi
    if [[ ! -x .venv/bin/moto_server ]]; then
        .venv/bin/pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    fi
    .venv/bin/python -c 'import moto; print("moto", moto.__version__)'
}

step_fmt() {
    header "cargo fmt --check"
    cargo fmt --all --check
}

step_clippy() {
    header "cargo clippy -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings
}

step_test() {
    header "cargo test (integration tests start moto from .venv)"
    cargo test --workspace
}

# The Python writer's tools, pinned; installed into .venv once per pin set.
PYTHON_TOOLS=(pytest==9.2.0 ruff==0.17.6 mypy==2.4.1)

step_python() {
    header "writers/python: install into .venv, ruff format --check, ruff check, mypy, pytest (conformance vectors, moto), homeward-sim conform"
    local marker=.venv/.homeward-python-tools
    if [[ ! -f $marker || "$(cat "$marker")" != "${PYTHON_TOOLS[*]}" ]] \
        || ! .venv/bin/python -c 'import homeward.writer' 2>/dev/null; then
        .venv/bin/pip install --quiet --disable-pip-version-check "${PYTHON_TOOLS[@]}" -e ./writers/python
        echo "${PYTHON_TOOLS[*]}" >"$marker"
    fi
    (
        cd writers/python
        ../../.venv/bin/ruff format --check .
        ../../.venv/bin/ruff check .
        ../../.venv/bin/mypy
        ../../.venv/bin/python -m pytest -q
    )
    # The writer at work: 5 random histories against moto, half of the
    # writes through it (conformance/README.md, "conform").
    cargo run -q -p homeward-sim -- conform --writer ".venv/bin/python -m homeward.conform" --histories 5 --seed 1300
}

step_typescript() {
    header "writers/typescript: npm ci, eslint, prettier --check, tsc build, node --test (conformance vectors, moto), homeward-sim conform"
    if [[ ! -x .venv/bin/moto_server ]]; then
        step_venv
    fi
    (
        cd writers/typescript
        npm ci --no-audit --no-fund
        npm run --silent lint
        npm run --silent format:check
        npm run --silent build
        npm test --silent
    )
    cargo run -q -p homeward-sim -- conform --writer "node writers/typescript/dist/conform.js" --histories 5 --seed 1400
}

step_local_invoke() {
    header "resolver and rehome under cargo lambda watch, invoked with events/foreign-write.json and events/rehome-*.json against moto"
    bash scripts/local-invoke.sh
}

step_template() {
    header "template.yaml: cfn-lint, SAM translation + cfn-lint, checkov, filters, broken copies, sam build"
    bash deploy/validate.sh
}

main() {
    local steps=("$@")
    if [[ ${#steps[@]} -eq 0 ]]; then
        steps=("${STEPS[@]}")
    fi
    local step start
    for step in "${steps[@]}"; do
        if ! declare -F "step_$step" >/dev/null; then
            echo "unknown step '$step' (known: ${STEPS[*]})" >&2
            exit 2
        fi
        start=$SECONDS
        "step_$step"
        echo "--- $step ok in $((SECONDS - start)) s"
    done
}

main "$@"
