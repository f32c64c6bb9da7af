#!/usr/bin/env bash
# tests/gpu/run.sh - the whole GPU check in one device call: build with CUDA, run the op
# tests and the end-to-end test (GPU against CPU logits, decode graphs against eager steps),
# the serving tests on cuda:0 (tests/gpu/test_gpu_serving.py: graphs on and off, KV sized
# from kv.memory_fraction; then every tests/serving/ test with TROUPE_TEST_DEVICE=cuda:0),
# compute-sanitizer memcheck over the op tests, then the benchmarks. Logs go to $OUT (or
# build/gpu-logs) and a short table closes the output.
#
#     bash tests/gpu/run.sh            # everything
#     bash tests/gpu/run.sh --no-bench # tests and memcheck only
set -u
cd "$(dirname "$0")/../.."
LOG=${OUT:-build/gpu-logs}
mkdir -p "$LOG"
export PATH=/usr/local/cuda/bin:$PATH
export TROUPE_LOG=${TROUPE_LOG:-warn}
status=()
step() {   # step NAME COMMAND...: runs it, logs to $LOG/NAME.log, records pass/fail
    local name=$1; shift
    local t0=$SECONDS
    "$@" >"$LOG/$name.log" 2>&1
    local rc=$?
    status+=("$(printf '%-22s %-5s %4ds' "$name" "$([ $rc = 0 ] && echo ok || echo FAIL)" $((SECONDS - t0)))")
    tail -n 25 "$LOG/$name.log"
    return $rc
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$LOG/device.txt"
date -u +%FT%TZ >>"$LOG/device.txt"
step build scons -j"$(nproc)" -Q cuda=1 || { printf '%s\n' "${status[@]}"; exit 1; }
step ops build/tests/gpu/test_gpu_ops
step e2e build/tests/gpu/test_gpu_e2e
step gpu_serving python3 tests/run_tests.py --build-dir build -k tests/gpu/test_gpu_serving.py
step serving_cuda env TROUPE_TEST_DEVICE=cuda:0 python3 tests/run_tests.py --build-dir build \
    -k tests/serving/
if command -v compute-sanitizer >/dev/null; then
    step memcheck compute-sanitizer --tool memcheck --leak-check full --error-exitcode 3 \
        build/tests/gpu/test_gpu_ops
else
    status+=("memcheck               SKIP (no compute-sanitizer)")
fi
if [ "${1:-}" != "--no-bench" ]; then
    step bench build/bin/bench_gpu all
fi
echo
echo "## summary ($(head -n1 "$LOG/device.txt"))"
grep -h 'not ok' "$LOG"/ops.log "$LOG"/e2e.log "$LOG"/gpu_serving.log "$LOG"/serving_cuda.log \
    2>/dev/null | head -20
printf '%s\n' "${status[@]}"
grep -q FAIL <<<"${status[*]}" && exit 1 || exit 0
