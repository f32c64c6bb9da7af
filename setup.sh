#!/usr/bin/env bash
# One command on a fresh Debian machine: install what is missing, build, and run the main job
# (generate text with the bundled model; until the serving path lands, start the troupe and
# ask it for its health).
set -euo pipefail
cd "$(dirname "$0")"
tools/install-deps.sh
scons -j"$(nproc)" -Q
exec tools/demo.sh "$@"
