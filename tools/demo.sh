#!/usr/bin/env bash
# The main job, as far as it goes today: start a troupe (single process, or the topology
# given as $1), wait until it is ready, ask it for health and stats, and stop it.
# When the serving path lands this becomes `troupe generate` on the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin/troupe
ENDPOINT=${TROUPE_ENDPOINT:-tcp://127.0.0.1:5555}
args=(serve --listen "$ENDPOINT")
[ $# -gt 0 ] && args+=(-c "$1")
out=$(mktemp)
"$BIN" "${args[@]}" >"$out" &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q "troupe: ready" "$out" && break; sleep 0.1; done
grep -q "troupe: ready" "$out" || { echo "demo: the troupe did not start" >&2; exit 1; }
echo "== troupe health --endpoint $ENDPOINT"
"$BIN" health --endpoint "$ENDPOINT"
echo "== troupe stats --endpoint $ENDPOINT (frontend)"
"$BIN" stats --endpoint "$ENDPOINT" | sed -n '/"frontend"/,/^    }/p'
