#!/usr/bin/env bash
# Installs what Veil needs to build and test on a fresh Debian machine (run as
# root). Idempotent: packages already present are skipped quickly.
set -euo pipefail
packages=(build-essential cmake pkg-config libsodium-dev libntl-dev libgmp-dev libgtest-dev
          libbenchmark-dev libonnx-dev libprotobuf-dev libcli11-dev libcpp-httplib-dev
          nlohmann-json3-dev libhiredis-dev redis-server openssl clang libclang-rt-14-dev libomp-14-dev
          python3-venv python3-dev python3-numpy python3-pytest python3-torch python3-onnx
          librdkit-dev rdkit-data python3-rdkit)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
