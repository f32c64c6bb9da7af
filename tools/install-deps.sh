#!/usr/bin/env bash
# Installs what troupe needs on a fresh Debian 12 machine (run as root, or with sudo on PATH).
# Idempotent: packages already present are skipped quickly. Used by ./setup.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(
    build-essential scons pkg-config
    libzmq3-dev libmsgpack-dev libev-dev libyaml-dev libjansson-dev libpcre2-dev
    python3 python3-zmq python3-msgpack python3-venv
    clang libclang-rt-14-dev valgrind
    python3-torch python3-numpy
)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "install-deps: system packages ready"

# Reference implementations for the correctness tests (HF transformers / tokenizers, the
# gguf writer) live in .venv, made from Debian's python3 so that Debian's CPU torch is seen.
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r tools/requirements-test.txt
echo "install-deps: python test references ready in .venv"
