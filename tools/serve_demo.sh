#!/usr/bin/env bash
# The service demo: the digits ConvNet compiled (veil compile: parameters chosen and
# measured), served (veil serve on a free loopback port, sessions in a temporary
# directory) and queried (veil query: keys made and cached, evaluation keys uploaded
# once, 400 test digits in batches of the model's batch size); prints the agreement
# of the decrypted classes with the plaintext model, then stops the server.
#
#   tools/serve_demo.sh [BUILD_DIR]     (default build; needs the veil, veil-cli-test-helper targets)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build}/bin
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "== veil compile tests/data/convnet_digits.onnx"
"$bin/veil" compile tests/data/convnet_digits.onnx -o "$work/digits.veil" --explain
"$bin/veil-cli-test-helper" make tests/data 400 "$work/digits.npy" "$work/unused.csv" 1 "$work/plaintext-classes.txt" >/dev/null

"$bin/veil" serve "$work/digits.veil" --port 0 --key-store "$work/sessions" >"$work/serve.out" &
server=$!
port=
for _ in $(seq 1 100); do
  port=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.out" 2>/dev/null | sed 's/.*://') && [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "veil serve did not start" >&2; exit 1; }
echo
echo "== $(cat "$work/serve.out")"
echo "== veil query -i digits.npy --argmax http://127.0.0.1:$port   (400 digits)"
start=$(date +%s%N)
"$bin/veil" query -i "$work/digits.npy" --argmax --verbose --cache "$work/client-cache" "http://127.0.0.1:$port" \
  >"$work/encrypted-classes.txt"
ms=$((($(date +%s%N) - start) / 1000000))
echo "query: 400 digits in $ms ms (key generation, session, 7 round trips)"
"$bin/veil-cli-test-helper" compare "$work/plaintext-classes.txt" "$work/encrypted-classes.txt" 396
