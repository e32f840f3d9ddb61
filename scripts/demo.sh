#!/usr/bin/env bash
# The one-command demo: installs what the simulator needs (a Python venv with
# moto, through scripts/test.sh), builds the simulator and replays the seed
# scenarios (Movies, foo/bar, inventory counter) on a local moto server,
# with Homeward's resolvers on and with plain last-writer-wins, side by side.
# Exits non-zero if any Region diverges with Homeward on.
#   bash scripts/demo.sh              the demo on moto
#   bash scripts/demo.sh --memory     the same, in memory (no moto needed)
#   HOMEWARD_DEMO_PROFILE=release bash scripts/demo.sh   an optimized build
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ " $* " != *" --memory "* ]]; then
    bash scripts/test.sh venv
fi

# Debug by default: measured on 2 cores, a clean debug build takes about
# 1.5 min and the demo then 4 s; a clean release build (LTO, one codegen
# unit) about 3.5 min for a 1.5 s demo. The debug build is also the one
# `bash scripts/test.sh` leaves behind.
profile=()
if [[ "${HOMEWARD_DEMO_PROFILE:-debug}" == "release" ]]; then
    profile=(--release)
fi
cargo run "${profile[@]}" -q -p homeward-sim -- demo "$@"
