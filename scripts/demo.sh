#!/usr/bin/env bash
# The one-command demo: installs what the simulator needs (a Python venv with
# moto, through scripts/test.sh), builds the simulator and replays the seed
# scenarios (Movies, foo/bar, inventory counter) on a local moto server,
# with Homeward's resolvers on and with plain last-writer-wins, side by side.
# Exits non-zero if any Region diverges with Homeward on.
#   bash scripts/demo.sh              the demo on moto
#   bash scripts/demo.sh --memory     the same, in memory (no moto needed)
#   HOMEWARD_DEMO_PROFILE=debug bash scripts/demo.sh   skip the release build
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ " $* " != *" --memory "* ]]; then
    bash scripts/test.sh venv
fi

# Release by default: the release build of the simulator takes a few minutes
# once (the AWS SDK), then the demo itself runs in seconds.
profile=(--release)
if [[ "${HOMEWARD_DEMO_PROFILE:-release}" == "debug" ]]; then
    profile=()
fi
cargo run "${profile[@]}" -q -p homeward-sim -- demo "$@"
