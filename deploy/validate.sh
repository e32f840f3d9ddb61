#!/usr/bin/env bash
# Offline validation of template.yaml:
#   1. cfn-lint on the SAM template;
#   2. the template translated to plain CloudFormation (deploy/translate.py,
#      samtranslator from the SAM CLI) and linted again: plain cfn-lint does
#      not check the properties inside a function's `Events:` block;
#   3. checkov on the translated template, skips only as listed with reasons
#      in deploy/checkov-skips.txt;
#   4. the FilterCriteria against the sample events (deploy/test_filters.py);
#   5. broken copies of the template must fail 1-3 (deploy/negative.sh),
#      and deploy/deploy.sh calls sam and aws in order (deploy/test_deploy.sh);
#   6. `sam build` for x86_64, and arm64 when the aarch64 target is installed.
# Usage: bash deploy/validate.sh            everything
#        bash deploy/validate.sh check FILE  steps 1-3 on FILE (exit 1 if it fails)
set -euo pipefail
cd "$(dirname "$0")/.."

SAM_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
CARGO_LAMBDA_VERSION=1.9.2
CHECKOV_VERSION=3.3.30

install() {
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    if [[ ! -x .venv/bin/sam || ! -x .venv/bin/cargo-lambda ]]; then
        .venv/bin/pip install --quiet --disable-pip-version-check \
            "aws-sam-cli==$SAM_VERSION" "cfn-lint==$CFN_LINT_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION"
    fi
    # checkov pins versions that clash with the SAM CLI's: its own venv.
    [[ -x .venv-checkov/bin/python ]] || python3 -m venv .venv-checkov
    if [[ ! -x .venv-checkov/bin/checkov ]]; then
        .venv-checkov/bin/pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
    fi
}

# Steps 1-3 on one template; prints what failed and returns non-zero.
check() {
    local template=$1 out
    out=$(mktemp -d)
    .venv/bin/cfn-lint -- "$template" || { echo "cfn-lint failed on $template"; return 1; }
    .venv/bin/python deploy/translate.py "$template" "$out/template.json" || { echo "SAM translation failed"; return 1; }
    # W1030: the StreamArn parameter defaults to "" (the primary Region's
    # stack reads the table's own stream); resolved, it is not an ARN.
    .venv/bin/cfn-lint --ignore-checks W1030 -- "$out/template.json" \
        || { echo "cfn-lint failed on the translated template"; return 1; }
    local skips
    skips=$(grep -v '^#' deploy/checkov-skips.txt | awk 'NF {print $1}' | paste -sd, -)
    .venv-checkov/bin/checkov --quiet --compact --skip-download --framework cloudformation \
        --skip-check "$skips" -f "$out/template.json" || { echo "checkov failed"; return 1; }
    cp "$out/template.json" "${CHECKED_JSON:-/dev/null}"
    rm -rf "$out"
}

build() {
    export PATH="$PWD/.venv/bin:$PATH" SAM_CLI_TELEMETRY=0
    sam build --parameter-overrides Architecture=x86_64
    test -s .aws-sam/build/ResolverFunction/bootstrap
    test -s .aws-sam/build/RehomeFunction/bootstrap
    echo "sam build x86_64: .aws-sam/build/{ResolverFunction,RehomeFunction}/bootstrap"
    if rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu; then
        sam build --parameter-overrides Architecture=arm64 --build-dir .aws-sam/build-arm64
        test -s .aws-sam/build-arm64/ResolverFunction/bootstrap
        test -s .aws-sam/build-arm64/RehomeFunction/bootstrap
    else
        echo "sam build arm64: skipped (rustup target aarch64-unknown-linux-gnu is not installed)"
    fi
}

main() {
    install
    if [[ "${1:-}" == "check" ]]; then
        check "$2"
        return
    fi
    mkdir -p target/deploy
    CHECKED_JSON=target/deploy/template.json check template.yaml
    .venv/bin/python deploy/test_filters.py target/deploy/template.json
    bash deploy/negative.sh
    bash deploy/test_deploy.sh
    build
}

main "$@"
