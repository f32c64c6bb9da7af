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
