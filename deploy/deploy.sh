#!/usr/bin/env bash
# Deploys Homeward to every Region of the global table, in order:
#   1. the primary Region (the first one named): creates the global table
#      with a replica in each Region, and the resolver there;
#   2. waits until every replica is ACTIVE (each then has its stream);
#   3. every other Region: its stack finds its replica's stream itself.
# Usage: bash deploy/deploy.sh REGION [REGION [REGION]] [-- EXTRA SAM DEPLOY ARGS]
#   e.g. bash deploy/deploy.sh us-east-1 us-west-1 -- --parameter-overrides TableName=Orders
# Environment: STACK_NAME (homeward), TABLE_NAME (Movies), WAIT_SECONDS (600).
# Needs `sam` and `aws` on PATH, credentials, and a `sam build` done.
set -euo pipefail

regions=()
while [[ $# -gt 0 && "$1" != "--" ]]; do
    regions+=("$1")
    shift
done
[[ "${1:-}" == "--" ]] && shift
extra=("$@")
if [[ ${#regions[@]} -lt 2 || ${#regions[@]} -gt 3 ]]; then
    echo "usage: deploy.sh REGION REGION [REGION] [-- sam deploy args]: the first is the primary; 2 or 3 Regions" >&2
    exit 2
fi
for r in "${regions[@]}"; do
    [[ "$r" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] || { echo "deploy.sh: \`$r\` is not a Region name" >&2; exit 2; }
done

stack=${STACK_NAME:-homeward}
table=${TABLE_NAME:-Movies}
wait_seconds=${WAIT_SECONDS:-600}
primary=${regions[0]}
params=("PrimaryRegion=$primary" "TableName=$table")
for i in "${!regions[@]}"; do
    params+=("ReplicaRegion$((i + 1))=${regions[$i]}")
done
if [[ ${#regions[@]} -eq 2 ]]; then
    params+=("ReplicaRegion3=")
fi

deploy() {
    local region=$1
    echo "==> sam deploy in $region"
    sam deploy --region "$region" --stack-name "$stack" --capabilities CAPABILITY_IAM \
        --resolve-s3 --no-confirm-changeset --no-fail-on-empty-changeset \
        --parameter-overrides "${params[@]}" "${extra[@]}"
}

deploy "$primary"

echo "==> waiting for the replicas of $table to be ACTIVE"
deadline=$((SECONDS + wait_seconds))
while :; do
    statuses=$(aws dynamodb describe-table --region "$primary" --table-name "$table" \
        --query 'Table.Replicas[].ReplicaStatus' --output text)
    active=$(tr -s '[:space:]' '\n' <<<"$statuses" | grep -c '^ACTIVE$' || true)
    if [[ "$active" -ge ${#regions[@]} ]]; then
        break
    fi
    if [[ $SECONDS -ge $deadline ]]; then
        echo "deploy.sh: replicas not ACTIVE after ${wait_seconds} s: $statuses" >&2
        exit 1
    fi
    sleep 10
done

for region in "${regions[@]:1}"; do
    deploy "$region"
done
echo "==> deployed in ${regions[*]}"
