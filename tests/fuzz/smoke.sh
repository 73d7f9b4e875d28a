#!/usr/bin/env bash
# The fuzzing smoke test (a ctest test, so CI runs it): builds the harnesses with clang
# (-DVEIL_FUZZ=ON: ASan + UBSan with float-cast-overflow) in WORK_DIR, replays every
# committed corpus file and the reproducers of earlier findings, then fuzzes each
# harness for SECONDS (default 5). Any crash, sanitizer report, unexpected exception,
# timeout (> 10 s per input) or allocation over 2 GB fails the test.
#
#   tests/fuzz/smoke.sh SOURCE_DIR WORK_DIR [SECONDS]
#   tests/fuzz/smoke.sh SOURCE_DIR WORK_DIR 600    # the long campaign (docs/security.md)
set -euo pipefail
src=$1 work=$2 seconds=${3:-5}
build=$work/build
mkdir -p "$work"
# Configured every time (quick once cached), so harnesses added since are known.
CC=clang CXX=clang++ cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVEIL_FUZZ=ON -DVEIL_CUDA=OFF \
  -DVEIL_BUILD_TESTS=OFF -DVEIL_BUILD_BENCH=OFF >"$work/configure.log" 2>&1 ||
  { tail -20 "$work/configure.log"; exit 1; }
harnesses=$(sed -n 's/^set(VEIL_FUZZ_HARNESSES \(.*\))$/\1/p' "$src/tests/fuzz/CMakeLists.txt")
# Built with ONNX? (grep reads the whole list: an early exit would fail the pipeline.)
if cmake --build "$build" --target help 2>/dev/null | grep 'fuzz_onnx' >/dev/null; then harnesses="$harnesses onnx"; fi
targets=$(for h in $harnesses; do printf 'fuzz_%s ' "$h"; done)
# shellcheck disable=SC2086
cmake --build "$build" -j2 --target $targets >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
status=0
for h in $harnesses; do
  corpus=$src/tests/fuzz/corpus/fuzz_$h
  scratch=$work/corpus-$h
  rm -rf "$scratch" && mkdir -p "$scratch"
  cp "$corpus"/* "$scratch"/ 2>/dev/null || true
  [ "$h" = onnx ] && cp "$src"/tests/data/fuzz/*.onnx "$scratch"/
  log=$work/fuzz_$h.log
  start=$SECONDS
  if "$build/bin/fuzz_$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$work/crash-$h-" "$scratch" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz_$h: ok, ${execs:-?} executions, ${cov:-cov ?}, $((SECONDS - start)) s"
  else
    echo "fuzz_$h: FINDING (log $log)"
    grep -E "ERROR|runtime error|fuzz finding|SUMMARY|Test unit written" "$log" | head -10
    status=1
  fi
done
exit $status
