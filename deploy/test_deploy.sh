#!/usr/bin/env bash
# Checks deploy/deploy.sh with stub `sam` and `aws` on PATH that record
# their calls: the primary first, a wait for ACTIVE replicas (the stub says
# CREATING once), then the other Regions, each with the same parameters and
# no stream ARN copied by hand; bad arguments are refused before any call.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
cat >"$tmp/bin/sam" <<'STUB'
#!/usr/bin/env bash
echo "sam $*" >>"$CALLS"
STUB
cat >"$tmp/bin/aws" <<'STUB'
#!/usr/bin/env bash
echo "aws $*" >>"$CALLS"
n=$(grep -c '^aws dynamodb describe-table' "$CALLS")
if [[ $n -lt 2 ]]; then echo "ACTIVE CREATING"; else echo "ACTIVE	ACTIVE"; fi
STUB
chmod +x "$tmp/bin/sam" "$tmp/bin/aws"
export CALLS="$tmp/calls" PATH="$tmp/bin:$PATH" WAIT_SECONDS=60
# The stub's first answer is "not yet": skip the real 10 s pause.
sleep() { :; }
export -f sleep

bash deploy/deploy.sh us-east-1 us-west-1 -- --tags team=data >/dev/null
mapfile -t calls <"$CALLS"
fail() { echo "test_deploy: $*" >&2; printf '  %s\n' "${calls[@]}" >&2; exit 1; }
[[ ${#calls[@]} -eq 4 ]] || fail "expected 4 calls, got ${#calls[@]}"
[[ "${calls[0]}" == "sam deploy --region us-east-1 "* ]] || fail "the primary first"
[[ "${calls[1]}" == "aws dynamodb describe-table --region us-east-1 --table-name Movies"* ]] || fail "then the replicas' status"
[[ "${calls[2]}" == "aws dynamodb describe-table"* ]] || fail "asked again while one was CREATING"
[[ "${calls[3]}" == "sam deploy --region us-west-1 "* ]] || fail "then the other Region"
for c in 0 3; do
    for p in PrimaryRegion=us-east-1 ReplicaRegion1=us-east-1 ReplicaRegion2=us-west-1 "--tags team=data"; do
        [[ "${calls[$c]}" == *"$p"* ]] || fail "call $c lacks $p"
    done
    [[ "${calls[$c]}" != *StreamArn* ]] || fail "no stream ARN is passed by hand"
done

: >"$CALLS"
if bash deploy/deploy.sh us-east-1 Mars-1 >/dev/null 2>"$tmp/err"; then fail "a bad Region was accepted"; fi
grep -q 'Mars-1' "$tmp/err" || fail "the error names the bad Region"
[[ ! -s "$CALLS" ]] || fail "nothing is called for bad arguments"
echo "deploy.sh: primary, wait for ACTIVE replicas, then the others; bad arguments refused"
