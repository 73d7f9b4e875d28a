#!/usr/bin/env bash
# Builds the GPU kit on this machine (nvcc compiles here; no GPU needed): the
# Release programs with the cuda backend for sm_80 and sm_90, every shared
# library they load except the C library itself, and the development packages
# (NTL, GMP, libsodium, GoogleTest, Google Benchmark, pkgconf) unpacked as a
# sysroot, for rebuilding on the lent GPU machine, which has nvcc and CMake
# but no registry. Output: .gpukit/ (git-ignored), about 41 MB.
#
#   tools/gpu/make_kit.sh            # then, with the device tool:
#   run(carry=[".gpukit"], command="tools/gpu/run_checks.sh all")
#
# docs/gpu.md explains the whole procedure.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD_DIR:-build-gpu}
kit=.gpukit

# No ONNX import and no molecule featurizer: the GPU checks need neither, and their
# libraries (protobuf, RDKit, Boost) would push the kit and the peers' kits past the
# device tool's 64 MiB.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DVEIL_CUDA=ON -DVEIL_NATIVE=OFF \
  -DVEIL_ONNX=OFF -DVEIL_RDKIT=OFF -DCMAKE_CUDA_ARCHITECTURES="80;90" >/dev/null
cmake --build "$build" -j"$(nproc)" --target veil-tests veil-bench veil-info veil-convnet

rm -rf "$kit"
mkdir -p "$kit/bin" "$kit/lib" "$kit/debs" "$kit/sysroot"
cp "$build"/bin/{veil-tests,veil-bench,veil-info,veil-convnet} "$kit/bin/"
cp -P "$build"/lib/libveil.so* "$kit/lib/"
for lib in $(ldd "$kit"/bin/* "$kit/lib/libveil.so" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do
  case "$(basename "$lib")" in
    libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | ld-linux* | libveil.so*) ;;
    *) cp -L "$lib" "$kit/lib/" ;;
  esac
done

# The tests find their data through the source path compiled into them.
pwd > "$kit/source_dir"
git rev-parse --short HEAD > "$kit/commit" 2>/dev/null || echo unknown > "$kit/commit"
git diff --quiet HEAD 2>/dev/null || echo "+local changes" >> "$kit/commit"

(cd "$kit/debs" && apt-get download -q libntl-dev libntl44 libgf2x3 libgmp-dev libgmp10 libgmpxx4ldbl \
  libsodium-dev libsodium23 libgtest-dev libbenchmark-dev libbenchmark1debian pkgconf pkgconf-bin \
  libpkgconf3 libcpp-httplib-dev libcpp-httplib0.11 nlohmann-json3-dev libhiredis-dev libhiredis0.14 libssl-dev \
  libssl3 zlib1g-dev libbrotli-dev libbrotli1 libcli11-dev 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
for deb in "$kit"/debs/*.deb; do dpkg -x "$deb" "$kit/sysroot"; done
rm -rf "$kit/debs"
# The device build links the shared libraries: static archives and docs stay behind,
# so the kit and the peers' kits fit the device tool's 64 MiB together.
find "$kit/sysroot" -name '*.a' -delete
rm -rf "$kit/sysroot/usr/share/doc" "$kit/sysroot/usr/share/man"
du -sh "$kit"
