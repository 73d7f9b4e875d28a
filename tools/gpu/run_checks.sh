#!/usr/bin/env bash
# Runs Veil's GPU checks on the lent GPU machine, from the repository root, with
# the kit of tools/gpu/make_kit.sh carried along (.gpukit). Logs and JSON go to
# $OUT (the device tool brings them back); a short summary is printed last.
#
#   tools/gpu/run_checks.sh STAGE...     stages, in the order given:
#     build     rebuild the kit's programs from this checkout on the device
#               (after kernel edits; uses the kit's sysroot, sm_90 only)
#     info      nvidia-smi and veil-info
#     tests     the bit-exact CPU-vs-CUDA tests (veil-tests --gtest_filter='Cuda*')
#     bench     veil-bench cpu and cuda rows (BENCH_FILTER), then the table
#     convnet   the digits ConvNet on the GPU (all 400 images: direct, 4 streams, replayed
#               CUDA graph) and on the CPU (64)
#     sanitize  compute-sanitizer memcheck, racecheck and synccheck on N = 2^13 primitives
#     peers     Phantom (Veil's 2^16 and 2^13 chains) and Cheddar (its own 2^16 chain) side
#               by side, when their kits are carried as .peer-phantom / .peer-cheddar
#     profile   ncu per-kernel time, DRAM and SM throughput of one multiply + relinearize
#               (2^16, 2^13), one rescale and one add (2^13): only the timed operations
#     all       info tests bench convnet sanitize (most important first)
# A task is lent at most 15 minutes of device time, machine start included, so the
# script keeps to a deadline: DEADLINE seconds after it starts (default 500, for a
# 600-second call) every stage still to run is skipped, and each stage is cut off
# (timeout) when it would pass the deadline. The summary says what was skipped.
# Environment: BENCH_FILTER (default '/65536|^BM_MulRelinPair/8192/'), BENCH_MIN_TIME (seconds, default 0.2),
# DEADLINE (seconds, default 500).
# Results: logs, JSON and tables in RESULTS_DIR (default /tmp/veil-gpu); when the device
# tool's OUT is set, one archive of them ($OUT/veil-gpu-results.tgz, the tool brings back
# at most 8 files) plus the tables and the summary as plain files.
set -uo pipefail
cd "$(dirname "$0")/../.."
kit=$PWD/.gpukit
out=${RESULTS_DIR:-/tmp/veil-gpu}
mkdir -p "$out"
[ -d "$kit/bin" ] || { echo "no $kit/bin: run tools/gpu/make_kit.sh here and carry .gpukit"; exit 2; }
summary=()
note() { summary+=("$*"); echo "== $*"; }
deadline=${DEADLINE:-500}
left() { echo $((deadline - SECONDS)); }
# timed SECONDS_MIN CMD...: runs CMD with what is left of the deadline, or not at all.
timed() {
  local min=$1; shift
  local t; t=$(left)
  if [ "$t" -lt "$min" ]; then echo "(skipped: ${t} s left before the deadline)"; return 124; fi
  timeout "$t" "$@"
}

# The tests read tests/data through the source path compiled into them.
src=$(cat "$kit/source_dir" 2>/dev/null || true)
if [ -n "$src" ] && [ "$src" != "$PWD" ] && [ ! -e "$src" ]; then
  mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"
fi
veil() { LD_LIBRARY_PATH="$kit/lib" "$kit/bin/$@"; }

stage_build() {
  local sys=$kit/sysroot arch=x86_64-linux-gnu
  export PKG_CONFIG_PATH=$sys/usr/lib/$arch/pkgconfig:$sys/usr/share/pkgconfig PKG_CONFIG_SYSROOT_DIR=$sys
  export LD_LIBRARY_PATH=$sys/usr/lib/$arch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  local t0=$SECONDS
  cmake -S . -B build-device -DCMAKE_BUILD_TYPE=Release -DVEIL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DCMAKE_PREFIX_PATH="$sys/usr" -DPKG_CONFIG_EXECUTABLE="$sys/usr/bin/pkgconf" \
    -DCMAKE_CXX_FLAGS="-isystem $sys/usr/include -isystem $sys/usr/include/$arch" \
    -DCMAKE_CUDA_FLAGS="-isystem $sys/usr/include" -DVEIL_DATA_DIR="$PWD/tests/data" >"$out/build.log" 2>&1 &&
    cmake --build build-device -j"$(nproc)" --target veil-tests veil-bench veil-info veil-convnet \
      >>"$out/build.log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then tail -30 "$out/build.log"; note "build: FAILED (build.log)"; return; fi
  cp build-device/bin/{veil-tests,veil-bench,veil-info,veil-convnet} "$kit/bin/"
  cp -P build-device/lib/libveil.so* "$kit/lib/"
  cp -L "$sys"/usr/lib/$arch/{libntl.so.44,libgf2x.so.3,libgmp.so.10,libsodium.so.23,libbenchmark.so.1debian} \
    "$kit/lib/" 2>/dev/null
  pwd >"$kit/source_dir"
  note "build: ok in $((SECONDS - t0)) s (sm_90, from this checkout)"
}

stage_info() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.memory \
    --format=csv,noheader | tee "$out/nvidia-smi.txt"
  veil veil-info | tee "$out/veil-info.txt"
  note "kit commit: $(tr '\n' ' ' <"$kit/commit")"
  note "device: $(head -1 "$out/nvidia-smi.txt")"
}

stage_tests() {
  local t0=$SECONDS
  LD_LIBRARY_PATH="$kit/lib" timed 30 "$kit/bin/veil-tests" --gtest_filter='Cuda*' \
    --gtest_output="xml:$out/cuda-tests.xml" >"$out/cuda-tests.log" 2>&1
  local rc=$?
  grep -E "^\[  PASSED|^\[  FAILED|^\[  SKIPPED \] [0-9]+ test|differ|rror" "$out/cuda-tests.log" | head -40
  note "tests (Cuda*): rc $rc, $(grep -E '^\[  PASSED' "$out/cuda-tests.log" | head -1), \
$(grep -cE '^\[  FAILED  \] ' "$out/cuda-tests.log") failed lines, $((SECONDS - t0)) s"
}

stage_sanitize() {
  local filter='Cuda/CudaPrimitives.*N2e13_dnum2:CudaNtt.*:CudaBackend.ContextsOnOneDevice*:CudaBackend.ThreadsShare*:CudaRecording.Evaluator*:CudaRecording.BackendMisuse*'
  for tool in memcheck racecheck synccheck; do
    local t0=$SECONDS
    LD_LIBRARY_PATH="$kit/lib" timed 20 compute-sanitizer --tool $tool --error-exitcode 99 \
      "$kit/bin/veil-tests" --gtest_filter="$filter" >"$out/sanitize-$tool.log" 2>&1
    local rc=$?
    tail -3 "$out/sanitize-$tool.log"
    note "compute-sanitizer $tool: rc $rc ($(grep -m1 -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$out/sanitize-$tool.log")), $((SECONDS - t0)) s"
  done
}

stage_bench() {
  local t0=$SECONDS
  LD_LIBRARY_PATH="$kit/lib" timed 60 "$kit/bin/veil-bench" --benchmark_filter="${BENCH_FILTER:-/65536|^BM_MulRelinPair/8192/}" \
    --benchmark_min_time="${BENCH_MIN_TIME:-0.2}" --benchmark_out="$out/bench.json" \
    --benchmark_out_format=json >"$out/bench.log" 2>&1
  local rc=$?
  if [ -s "$out/bench.json" ]; then
    python3 bench/gpu_table.py "$out/bench.json" | tee "$out/gpu-table.md"
  else
    tail -5 "$out/bench.log" 2>/dev/null
  fi
  # The other key-switch mode (the default is split; kernels/cuda_backend.cu,
  # kSplitKeySwitchMaxLogN): the fused apply's rows against the default's.
  LD_LIBRARY_PATH="$kit/lib" VEIL_CUDA_KEY_SWITCH=fused timed 60 "$kit/bin/veil-bench" \
    --benchmark_filter='^BM_(MulRelin|Relin|Rotate|RotateHoisted8|RotateMany8|KeySwitchApply)/(8192|65536|65536/dnum5)/cuda' \
    --benchmark_min_time="${BENCH_MIN_TIME:-0.2}" --benchmark_out="$out/bench-fused.json" \
    --benchmark_out_format=json >"$out/bench-fused.log" 2>&1
  if [ -s "$out/bench-fused.json" ] && [ -s "$out/bench.json" ]; then
    python3 bench/gpu_table.py "$out/bench.json" "$out/bench-fused.json" | tee "$out/gpu-table-key-switch-modes.md"
  fi
  note "bench: rc $rc, $((SECONDS - t0)) s, tables in gpu-table.md and gpu-table-key-switch-modes.md"
}

stage_convnet() {
  local t0=$SECONDS
  LD_LIBRARY_PATH="$kit/lib" timed 30 "$kit/bin/veil-convnet" --backend cuda --data tests/data --json \
    >"$out/convnet-cuda.json" 2>"$out/convnet-cuda.log"
  local rc=$?
  # The same images with four batches in flight (StreamScope per server thread).
  LD_LIBRARY_PATH="$kit/lib" timed 20 "$kit/bin/veil-convnet" --backend cuda --streams 4 --data tests/data --json \
    >"$out/convnet-cuda-streams4.json" 2>"$out/convnet-cuda-streams4.log"
  # One recorded run replayed per batch (a CUDA graph: no host work per kernel).
  LD_LIBRARY_PATH="$kit/lib" timed 20 "$kit/bin/veil-convnet" --backend cuda --replay --data tests/data --json \
    >"$out/convnet-cuda-replay.json" 2>"$out/convnet-cuda-replay.log"
  LD_LIBRARY_PATH="$kit/lib" timed 20 "$kit/bin/veil-convnet" --backend cpu --images 64 --data tests/data --json \
    >"$out/convnet-cpu.json" 2>"$out/convnet-cpu.log"
  cat "$out/convnet-cuda.json" "$out/convnet-cuda-streams4.json" "$out/convnet-cuda-replay.json" "$out/convnet-cpu.json"
  note "convnet: rc $rc, $((SECONDS - t0)) s (convnet-cuda.json, convnet-cuda-streams4.json, convnet-cuda-replay.json, convnet-cpu.json)"
}

stage_peers() {
  local t0=$SECONDS
  if [ -f .peer-phantom/run.sh ]; then
    PHANTOM_CHAINS="${PHANTOM_CHAINS:-veil16:40 veil13:12}" PHANTOM_BUDGET_S=60 timed 20 bash .peer-phantom/run.sh \
      >"$out/phantom.txt" 2>&1
    grep -v '^#' "$out/phantom.txt" | head -30
  fi
  if [ -f .peer-cheddar/run.sh ]; then
    (cd .peer-cheddar && chmod +x bench_cheddar && LD_LIBRARY_PATH="$PWD/lib" OMP_NUM_THREADS=$(nproc) \
      timeout -k 3 45 ./bench_cheddar params/bootparam_40.json ops 30) >"$out/cheddar.txt" 2>&1
    grep -v '^#' "$out/cheddar.txt" | head -20
  fi
  note "peers: $((SECONDS - t0)) s (phantom.txt, cheddar.txt)"
}

stage_profile() {
  local t0=$SECONDS
  local metrics=gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed
  local spec
  for spec in MulRelin/65536:20 MulRelin/65536/dnum5:20 RotateHoisted8/65536/dnum5:12 MulRelin/8192:20 Rescale/8192:8 Add/8192:4 Encrypt/65536:30; do
    local op=${spec%%:*} count=${spec##*:}
    VEIL_CUDA_PROFILE_TIMED=1 LD_LIBRARY_PATH="$kit/lib" timed 15 ncu --clock-control none --profile-from-start off \
      --launch-count "$count" --metrics "$metrics" --csv --page raw "$kit/bin/veil-bench" \
      --benchmark_filter="^BM_${op}/cuda" --benchmark_min_time=0.001 >"$out/ncu-${op//\//-}.csv" 2>&1
    echo "ncu $op: rc $?, $(grep -c '^"[0-9]' "$out/ncu-${op//\//-}.csv") kernels"
  done
  note "profile: $((SECONDS - t0)) s (ncu-*.csv)"
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(all)
for s in "${stages[@]}"; do
  case $s in
    all) stage_info; stage_tests; stage_bench; stage_convnet; stage_sanitize ;;
    build | info | tests | sanitize | bench | convnet | peers | profile) "stage_$s" ;;
    *) echo "unknown stage $s"; exit 2 ;;
  esac
done
echo
echo "==== summary ($SECONDS s of a ${deadline}-second deadline) ====" | tee "$out/summary.txt"
printf '%s\n' "${summary[@]}" | tee -a "$out/summary.txt"
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
  tar czf "$OUT/veil-gpu-results.tgz" -C "$out" . && cp "$out/summary.txt" "$OUT/"
  [ -f "$out/gpu-table.md" ] && cp "$out/gpu-table.md" "$OUT/"
  [ -s "$out/gpu-table-key-switch-modes.md" ] && cp "$out/gpu-table-key-switch-modes.md" "$OUT/"
fi
