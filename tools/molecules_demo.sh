#!/usr/bin/env bash
# An encrypted molecule query end to end (docs/molecules.md): compiles the SA-score
# student with its featurizer, starts `veil serve` on a free loopback port, queries a
# SMILES file with `veil query` (featurized and encrypted here, one round trip per 64
# molecules; one line is not a molecule, to show how it is reported), prints one line
# per molecule, stops the server. Needs the build of the README's set-up command.
#   tools/molecules_demo.sh [BUILD_DIR]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$repo/build}
veil=$build/bin/veil
[ -x "$veil" ] || { echo "molecules_demo.sh: build veil first (README: set-up)" >&2; exit 2; }
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
data=$repo/tests/data/molecules
"$veil" compile "$data/sa_small.onnx" -o "$work/sa.veil" --featurizer "$data/layout.json" --property "SA score" --quiet
{ echo "CC(=O)Oc1ccccc1C(=O)O aspirin"; echo "Cn1cnc2c1c(=O)n(C)c(=O)n2C caffeine"; echo "not-a-molecule"
  sed -n 2,9p "$data/test_split.csv" | cut -d, -f1; } >"$work/molecules.smi"
"$veil" serve "$work/sa.veil" --port 0 --key-store "$work/store" >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 1 100); do grep -q 'http://' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.out")
echo "server: $url (it never sees a SMILES string or a key that decrypts)"
"$veil" query -i "$work/molecules.smi" --cache "$work/keys" "$url" || echo "(exit $?: one line was not a molecule)"
