#!/usr/bin/env bash
# The main job on the bundled default model (tests/data/models/stories260K.bin, a llama2.c
# TinyStories model): generate a story in one process, then start a troupe (single
# process, or the topology given as $1), ask it for health and a greedy completion over
# the client socket, and stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin/troupe
echo '== troupe generate "Once upon a time" --max-tokens 100'
"$BIN" generate "Once upon a time" --max-tokens 100
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
echo "== a generate request from Python (pyzmq + msgpack), streamed"
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
"$PY" - "$ENDPOINT" <<'PYEOF'
import sys, zmq, msgpack
s = zmq.Context().socket(zmq.DEALER)
s.connect(sys.argv[1])
s.send(msgpack.packb({"type": "generate", "id": 1, "prompt": "The cat", "max_tokens": 40,
                      "temperature": 0}))
while True:
    if not s.poll(30000):
        sys.exit("demo: no reply")
    r = msgpack.unpackb(s.recv())
    if r["type"] != "output":
        sys.exit("demo: %s" % r)
    print(r.get("text", ""), end="", flush=True)
    if r.get("finish_reason"):
        print("\n[%s, %s]" % (r["finish_reason"], r["metrics"]))
        break
PYEOF
