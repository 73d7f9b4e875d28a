#!/usr/bin/env bash
# Throughput of the original-shape SA student (conv 3x3/3 x32 -> 3200 -> 512 -> 256 -> 1,
# squares) with Packing::Slots: one molecule per slot, 8192 per run at N = 2^14
# (docs/molecules.md, "Throughput"). Prints the compiler's plan, including its dry run of a
# full batch (the server's run(), wall clock), then queries the test split through
# `veil serve` / `veil query` and reports the end-to-end time and the agreement with the
# plaintext student on every molecule.
#   bench/molecules_throughput.sh [BUILD_DIR] [THREADS] [MODEL.veil]
# (MODEL.veil: one compiled before the same way, to skip the 4-minute compile)
# Needs build-molecules/sa_original.onnx (tools/molecules/train.py --shape original, see
# tests/data/molecules/README.md) and /usr/bin/python3 with python3-rdkit and numpy.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$repo/build}
threads=${2:-2}
compiled=${3:-}
veil=$build/bin/veil
onnx=$repo/build-molecules/sa_original.onnx
[ -x "$veil" ] || { echo "molecules_throughput.sh: build veil first (README: set-up)" >&2; exit 2; }
[ -f "$onnx" ] || { echo "molecules_throughput.sh: no $onnx: train it (tests/data/molecules/README.md)" >&2; exit 2; }
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
export OMP_NUM_THREADS=$threads
echo "== compile (--packing slots), $threads thread(s), $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
if [ -n "$compiled" ]; then
  cp "$compiled" "$work/sa.veil"
  "$veil" info "$work/sa.veil"
else
  /usr/bin/time -f "compile: %e s wall, %M KB peak" "$veil" compile "$onnx" -o "$work/sa.veil" --packing slots \
    --featurizer "$repo/tests/data/molecules/layout.json" --property "SA score" --explain --quiet
fi
cut -d, -f1 "$repo/build-molecules/molecules.csv" | sed -n '2,8193p' >"$work/molecules.smi"  # no early close: pipefail
"$veil" serve "$work/sa.veil" --port 0 --key-store "$work/store" >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 1 600); do grep -q 'http://' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.out")
echo "== query: $(wc -l <"$work/molecules.smi") molecules, one round trip"
start=$(date +%s.%N)
/usr/bin/time -f "client: %M KB peak" "$veil" query -i "$work/molecules.smi" --cache "$work/keys" --timeout 1800 "$url" \
  >"$work/answers.tsv"
end=$(date +%s.%N)
count=$(wc -l <"$work/answers.tsv")
echo "end to end (featurize, encrypt, upload, run, download, decrypt): $(echo "($end - $start) * 1000 / $count" | bc -l | xargs printf '%.1f') ms per molecule over $count"
/usr/bin/python3 "$repo/tools/molecules/compare_answers.py" "$onnx" "$work/answers.tsv"
