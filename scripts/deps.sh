#!/usr/bin/env bash
# Installs (apt-get) whatever Debian 12 packages are missing for the given
# purpose: build, test or package. Sourced by scripts/run and scripts/test.
set -euo pipefail

build_deps=(meson ninja-build g++ pkg-config liburing-dev libcli11-dev libspdlog-dev
            libsystemd-dev nettle-dev libsodium-dev libssl-dev)
test_deps=(libgtest-dev clang libclang-rt-14-dev python3 python3-websockets chromium
           systemd systemd-container debhelper dpkg-dev fakeroot lintian iproute2 openssl)

install_missing() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}
