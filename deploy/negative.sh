#!/usr/bin/env bash
# The validation must catch a broken template: each broken copy below has to
# FAIL `deploy/validate.sh check`. Exits non-zero if one passes.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A misspelt property inside the function's Events: block (plain cfn-lint
# does not look there; the translated template's lint does).
sed 's/^            BatchSize: !Ref BatchSize/            BatchSizee: !Ref BatchSize/' template.yaml >"$work/events.yaml"
# A value inside Events: that samtranslator passes through and only the
# translated template's lint rejects.
sed 's/^            StartingPosition: TRIM_HORIZON/            StartingPosition: OLDEST/' template.yaml >"$work/position.yaml"
# A policy that allows every action.
sed 's/^                Action: \[sqs:SendMessage\]/                Action: "*"/' template.yaml >"$work/star.yaml"

status=0
for broken in events position star; do
    if cmp -s template.yaml "$work/$broken.yaml"; then
        echo "negative test '$broken': the template did not change (fix the sed)"; status=1; continue
    fi
    if bash deploy/validate.sh check "$work/$broken.yaml" >"$work/$broken.log" 2>&1; then
        echo "negative test '$broken': the broken template PASSED validation"; status=1
    else
        echo "negative test '$broken': rejected as it should be ($(grep -m1 -E 'failed|FAILED|E[0-9]{4}' "$work/$broken.log" || true))"
    fi
done
exit $status
