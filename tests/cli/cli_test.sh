#!/usr/bin/env bash
# End-to-end tests of the `veil` program on the digits ConvNet (tests/CMakeLists.txt
# runs each stage as a ctest test; `setup` is their fixture).
#
#   cli_test.sh STAGE VEIL HELPER DATA_DIR WORK_DIR
#
#   setup     the test images as .npy / CSV (digits_helper), veil compile (N <= 2^14),
#             veil info (text and JSON), veil keygen (modes 0700 / 0600)
#   e2e       encrypt -> eval with a key directory without secret.key (and without
#             public.key) -> decrypt --argmax: >= 62 of 64 classes equal the plaintext
#             model's; the outputs as .npy, .csv, .json; a CSV query of 3 images;
#             veil bench --json keeps the promised precision
#   errors    exit codes and messages: usage errors (2), bad files, keys or queries of
#             another model, missing keys (3), an existing secret.key (--force)
#   serve     veil serve on a free port, veil query against it (classes, JSON, bad
#             model / address / usage), SIGTERM stops it cleanly
#   molecules veil compile --featurizer on the SA-score student (tests/data/molecules),
#             veil serve with it and the digits model, veil query -i X.smi: one line per
#             molecule within the promise of the plain student's value, the unreadable
#             line reported (exit 3), JSON, a .smi against a model without featurizer
#   onnx_ops  veil compile on tests/data/onnx_ops.onnx: works (then info) or fails
#             with exit 3 and a message; the digits model with a Relu: refused with a
#             hint, compiled with --activation-bound
set -u -o pipefail

stage=$1 veil=$2 helper=$3 data=$4 work=$5
model=$work/digits.veil keys=$work/keys
out=$work/$stage.stdout err=$work/$stage.stderr

fail() {
  echo "FAIL ($stage): $*" >&2
  exit 1
}

# run RC CMD...: runs CMD with stdout / stderr in $out / $err; fails unless it exits with RC.
run() {
  local want=$1
  shift
  local t0=$(date +%s%N)
  "$@" >"$out" 2>"$err"
  local rc=$?
  local ms=$((($(date +%s%N) - t0) / 1000000))
  printf '[%6d ms] exit %d: %s\n' "$ms" "$rc" "$*"
  if [ "$rc" -ne "$want" ]; then
    echo "--- stdout:"; head -c 4000 "$out"
    echo "--- stderr:"; head -c 4000 "$err"
    fail "exit status $rc, expected $want: $*"
  fi
}
stderr_has() { grep -qF -- "$1" "$err" || { cat "$err"; fail "stderr lacks \"$1\""; }; }
stdout_has() { grep -qF -- "$1" "$out" || { cat "$out"; fail "stdout lacks \"$1\""; }; }
mode_is() {
  local m=$(stat -c %a "$1")
  [ "$m" = "$2" ] || fail "$1 has mode $m, expected $2"
}

# start_server DIR MODEL... [OPTIONS]: veil serve on a port the kernel picks (printed on
# stdout), keys in DIR/store; sets $server (the pid, killed on exit) and $url.
start_server() {
  local dir=$1
  shift
  "$veil" serve "$@" --port 0 --key-store "$dir/store" >"$dir/serve.out" 2>"$dir/serve.err" &
  server=$!
  trap 'kill $server 2>/dev/null' EXIT
  local port=
  for _ in $(seq 1 100); do
    port=$(grep -o 'http://127.0.0.1:[0-9]*' "$dir/serve.out" 2>/dev/null | sed 's/.*://')
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$dir/serve.err"; fail "veil serve did not report its port"; }
  url=http://127.0.0.1:$port
}

case $stage in
setup)
  rm -rf "$work" && mkdir -p "$work" || fail "cannot create $work"
  run 0 "$helper" make "$data" 64 "$work/x.npy" "$work/x3.csv" 3 "$work/classes.txt"
  run 0 "$veil" compile "$data/convnet_digits.onnx" -o "$model" --max-log-n 14 --verbose --explain
  stdout_has "model digits: input 1x28x28"
  stdout_has "precision: promised 12.0 bits"
  stderr_has "wrote $model"
  mode_is "$model" 644
  run 0 "$veil" info "$model"
  stdout_has "per query: upload"
  run 0 "$veil" info "$model" --json
  stdout_has '"name": "digits"'
  stdout_has '"input_shape": [1, 28, 28]'
  stdout_has '"batch": 64'
  stdout_has '"rotation_steps": ['
  run 0 "$veil" keygen "$model" -o "$keys"
  [ ! -s "$out" ] || fail "keygen printed to stdout"
  mode_is "$keys" 700
  mode_is "$keys/secret.key" 600
  for k in public.key relin.key galois.key; do [ -s "$keys/$k" ] || fail "keygen did not write $k"; done
  ;;

e2e)
  dir=$work/e2e
  rm -rf "$dir" && mkdir -p "$dir"
  run 0 "$veil" encrypt "$model" --keys "$keys" -i "$work/x.npy" -o "$dir/query.bin"
  grep -qF '"model": "digits", "inputs": 64, "runs": 1, "ciphertexts_per_run": 49, "format": 1' "$dir/query.bin.json" ||
    fail "unexpected $dir/query.bin.json: $(cat "$dir/query.bin.json")"
  # The server's directory: the evaluation keys only (no secret.key, no public.key).
  mkdir -p "$dir/server-keys"
  cp "$keys/relin.key" "$keys/galois.key" "$dir/server-keys/"
  run 0 "$veil" eval "$model" --keys "$dir/server-keys" -i "$dir/query.bin" -o "$dir/answer.bin" --backend cpu --threads 1
  grep -qF '"inputs": 64, "runs": 1, "ciphertexts_per_run": 1' "$dir/answer.bin.json" ||
    fail "unexpected $dir/answer.bin.json: $(cat "$dir/answer.bin.json")"
  run 0 "$veil" decrypt "$model" --keys "$keys" -i "$dir/answer.bin" --argmax -o "$dir/y.npy"
  cp "$out" "$dir/predicted.txt"
  [ "$(wc -l <"$dir/predicted.txt")" -eq 64 ] || fail "decrypt --argmax printed $(wc -l <"$dir/predicted.txt") lines"
  run 0 "$helper" compare "$work/classes.txt" "$dir/predicted.txt" 62
  cat "$out"
  head -c 128 "$dir/y.npy" | grep -qF "'shape': (64, 10)" || fail "y.npy is not a [64, 10] array"
  run 0 "$veil" decrypt "$model" --keys "$keys" -i "$dir/answer.bin" -o "$dir/y.csv" --count 5
  [ "$(wc -l <"$dir/y.csv")" -eq 5 ] || fail "y.csv: $(wc -l <"$dir/y.csv") rows, expected 5"
  run 0 "$veil" decrypt "$model" --keys "$keys" -i "$dir/answer.bin" -o "$dir/y.json" --argmax --count 2
  grep -qF '"argmax": [' "$dir/y.json" || fail "y.json lacks argmax"
  run 0 "$veil" decrypt "$model" --keys "$keys" -i "$dir/answer.bin" --count 1
  [ "$(wc -w <"$out")" -eq 10 ] || fail "decrypt to stdout: expected 10 values"
  # A CSV query of 3 images (one partial run).
  run 0 "$veil" encrypt "$model" --keys "$keys" -i "$work/x3.csv" -o "$dir/q3.bin"
  run 0 "$veil" eval "$model" --keys "$dir/server-keys" -i "$dir/q3.bin" -o "$dir/a3.bin"
  run 0 "$veil" decrypt "$model" --keys "$keys" -i "$dir/a3.bin" --argmax
  cp "$out" "$dir/predicted3.txt"
  head -3 "$work/classes.txt" >"$dir/classes3.txt"
  run 0 "$helper" compare "$dir/classes3.txt" "$dir/predicted3.txt" 3
  # veil bench: one query's steps in process, and the precision of the runs it made.
  run 0 "$veil" bench "$model" --runs 1 --json
  stdout_has '"model": "digits", "backend": "cpu"'
  bits=$(sed 's/.*"precision_bits": \([0-9.]*\).*/\1/' "$out")
  awk -v b="$bits" 'BEGIN { exit !(b >= 12) }' || fail "veil bench measured $bits bits, the model promises 12"
  ;;

errors)
  dir=$work/errors
  rm -rf "$dir" && mkdir -p "$dir"
  # Usage errors: 2 (CLI11), help and version: 0.
  run 2 "$veil"
  run 2 "$veil" frobnicate
  run 2 "$veil" compile
  run 2 "$veil" encrypt "$model" --keys "$keys" -i "$work/x.npy" -o "$dir/q.bin" --bogus
  run 2 "$veil" compile "$data/convnet_digits.onnx" -o "$dir/m.veil" --packing diagonal
  run 2 "$veil" compile "$data/convnet_digits.onnx" -o "$dir/m.veil" --input-range 1,0
  run 2 "$veil" decrypt "$model" --keys "$keys" -i "$dir/a.bin" -o "$dir/y.txt"
  run 0 "$veil" --help
  stdout_has "Exit status: 0 success; 2 usage error"
  run 0 "$veil" --version
  stdout_has "veil "
  run 0 "$veil" eval --help
  stdout_has "--backend"
  # Bad files: 3 with a message naming the file and what to do.
  run 3 "$veil" info "$dir/missing.veil"
  stderr_has "veil compile MODEL.onnx -o $dir/missing.veil"
  run 3 "$veil" info "$work/x.npy"
  stderr_has "is not a valid Veil model file"
  run 3 "$veil" info "$dir"
  stderr_has "is not a regular file"
  run 3 "$veil" compile "$dir/missing.onnx" -o "$dir/m.veil"
  stderr_has "missing.onnx"
  run 3 "$veil" compile "$work/x.npy" -o "$dir/m.veil"
  stderr_has "x.npy"
  run 3 "$veil" compile "$data/convnet_digits.onnx" -o "$dir/bad name.veil"
  stderr_has "pass --name NAME"
  head -c 100 "$work/x.npy" >"$dir/cut.npy"
  run 3 "$veil" encrypt "$model" --keys "$keys" -i "$dir/cut.npy" -o "$dir/q.bin"
  stderr_has "cut.npy: .npy: truncated header"
  printf '0.5,nan\n' >"$dir/nan.csv"
  run 3 "$veil" encrypt "$model" --keys "$keys" -i "$dir/nan.csv" -o "$dir/q.bin"
  stderr_has "does not hold 1x28x28 inputs"
  run 3 "$veil" encrypt "$model" --keys "$dir/nokeys" -i "$work/x.npy" -o "$dir/q.bin"
  stderr_has "run \`veil keygen $model -o $dir/nokeys\` first"
  [ ! -e "$dir/q.bin" ] || fail "a failed encrypt left $dir/q.bin"
  # One image with a NaN, one out of the input range (a warning only).
  "$helper" make "$data" 1 "$dir/one.npy" "$dir/one.csv" 1 "$dir/one.txt" || fail "helper"
  sed 's/^[^,]*,/nan,/' "$dir/one.csv" >"$dir/nan.csv"
  run 3 "$veil" encrypt "$model" --keys "$keys" -i "$dir/nan.csv" -o "$dir/q.bin"
  stderr_has "input 0, value 0 is not a finite number"
  sed 's/^[^,]*,/2.5,/' "$dir/one.csv" >"$dir/range.csv"
  run 0 "$veil" encrypt "$model" --keys "$keys" -i "$dir/range.csv" -o "$dir/q.bin"
  stderr_has "outside the model's input range [0, 1]"
  # An existing secret.key is never replaced without --force.
  run 3 "$veil" keygen "$model" -o "$keys"
  stderr_has "secret.key exists; pass --force"
  mkdir -p "$dir/keys2" && cp "$keys"/*.key "$dir/keys2/"
  run 0 "$veil" keygen "$model" -o "$dir/keys2" --force
  mode_is "$dir/keys2/secret.key" 600
  cmp -s "$keys/secret.key" "$dir/keys2/secret.key" && fail "--force kept the old secret key"
  # Queries and answers checked against the model; keys of another model refused.
  run 3 "$veil" eval "$model" --keys "$keys" -i "$work/x.npy" -o "$dir/a.bin"
  stderr_has "not a Veil blob"
  head -c 100000 "$dir/q.bin" >"$dir/q-cut.bin"
  run 3 "$veil" eval "$model" --keys "$keys" -i "$dir/q-cut.bin" -o "$dir/a.bin"
  stderr_has "truncated"
  cp "$dir/q.bin" "$dir/q-flip.bin"
  printf '\x55' | dd of="$dir/q-flip.bin" bs=1 seek=5000 conv=notrunc status=none
  run 3 "$veil" eval "$model" --keys "$keys" -i "$dir/q-flip.bin" -o "$dir/a.bin"
  stderr_has "ciphertext 0"
  run 0 "$veil" compile "$data/convnet_digits.onnx" -o "$dir/other.veil" --max-log-n 14 --precision-bits 8
  run 3 "$veil" eval "$dir/other.veil" --keys "$keys" -i "$dir/q.bin" -o "$dir/a.bin"
  stderr_has "encrypted for model digits, not other"
  rm "$dir/q.bin.json"
  run 3 "$veil" eval "$dir/other.veil" --keys "$keys" -i "$dir/q.bin" -o "$dir/a.bin"
  stderr_has "it was encrypted for another model"
  run 3 "$veil" keygen "$dir/other.veil" -o "$keys"  # secret.key exists
  run 3 "$veil" encrypt "$dir/other.veil" --keys "$keys" -i "$dir/one.npy" -o "$dir/q.bin"
  stderr_has "the keys were made for another model"
  run 3 "$veil" decrypt "$model" --keys "$dir/nokeys" -i "$dir/q.bin"
  stderr_has "veil keygen"
  mkdir -p "$dir/no-galois" && cp "$keys/relin.key" "$dir/no-galois/"
  run 3 "$veil" eval "$model" --keys "$dir/no-galois" -i "$dir/q.bin" -o "$dir/a.bin"
  stderr_has "galois.key: No such file or directory; the client makes it with \`veil keygen"
  [ ! -e "$dir/a.bin" ] || fail "a failed eval left $dir/a.bin"
  ;;

onnx_ops)
  dir=$work/onnx_ops
  rm -rf "$dir" && mkdir -p "$dir"
  "$veil" compile "$data/onnx_ops.onnx" -o "$dir/ops.veil" --max-log-n 14 --verbose >"$out" 2>"$err"
  rc=$?
  echo "veil compile onnx_ops.onnx: exit $rc"
  cat "$err"
  if [ $rc -eq 0 ]; then
    run 0 "$veil" info "$dir/ops.veil" --json
    stdout_has '"input_shape": [1, 12, 12]'
    stdout_has '"outputs": 8'
  elif [ $rc -eq 3 ]; then
    grep -q "veil compile: " "$err" || fail "no message for a model that does not compile"
  else
    fail "veil compile exited with $rc"
  fi
  # Relu: refused with a hint to pass --activation-bound, compiled with it.
  run 0 "$helper" relu "$data/convnet_digits.onnx" "$dir/relu.onnx"
  run 3 "$veil" compile "$dir/relu.onnx" -o "$dir/relu.veil" --max-log-n 14
  stderr_has "Relu"
  stderr_has "hint: pass --activation-bound B"
  run 0 "$veil" compile "$dir/relu.onnx" -o "$dir/relu.veil" --max-log-n 14 --activation-bound 8 --activation-degree 7
  ;;

serve)
  # veil serve on a port the kernel picks (printed on stdout), veil query against it,
  # then SIGTERM: the server must stop cleanly (exit 0).
  dir=$work/serve
  rm -rf "$dir" && mkdir -p "$dir"
  start_server "$dir" "$model" --threads 2
  run 0 "$veil" query -i "$work/x.npy" --argmax --cache "$dir/cache" "$url"
  cp "$out" "$dir/predicted.txt"
  run 0 "$helper" compare "$work/classes.txt" "$dir/predicted.txt" 62
  mode_is "$(find "$dir/cache" -name secret.key)" 600
  run 0 "$veil" query -i "$work/x3.csv" --json --cache "$dir/cache" "$url/"
  stdout_has '"model": "digits", "outputs": [['
  run 3 "$veil" query -i "$work/x3.csv" --model nope --cache "$dir/cache" "$url"
  stderr_has 'no model named "nope"'
  run 3 "$veil" query -i "$work/x3.csv" --cache "$dir/cache" "ftp://$url"
  run 2 "$veil" query --cache "$dir/cache" "$url"
  kill -TERM $server
  wait $server
  rc=$?
  trap - EXIT
  [ $rc -eq 0 ] || { cat "$dir/serve.err"; fail "veil serve exited with $rc after SIGTERM"; }
  run 4 "$veil" query -i "$work/x3.csv" --cache "$dir/cache" "$url"
  stderr_has "cannot reach"
  ;;

molecules)
  dir=$work/molecules
  rm -rf "$dir" && mkdir -p "$dir"
  mol=$data/molecules
  run 0 "$veil" compile "$mol/sa_small.onnx" -o "$dir/sa.veil" --featurizer "$mol/layout.json" --property "SA score" \
    --max-log-n 14
  run 0 "$veil" info "$dir/sa.veil" --json
  # 20 test molecules (SMILES, then the student's float64 SA score), an unreadable line 3
  tail -n +2 "$mol/test_split.csv" | head -20 | cut -d, -f1,7 >"$dir/expected.csv"
  { sed -n 1,2p "$dir/expected.csv" | cut -d, -f1; echo "C1CC(broken"; sed -n '3,$p' "$dir/expected.csv" | cut -d, -f1; } \
    >"$dir/mols.smi"
  start_server "$dir" "$dir/sa.veil" "$model"
  run 3 "$veil" query -i "$dir/mols.smi" -m sa --cache "$dir/cache" "$url"
  stderr_has "mols.smi line 3: molecule: RDKit cannot read the SMILES 'C1CC(broken'"
  [ "$(wc -l <"$out")" -eq 20 ] || { cat "$out"; fail "expected 20 answers"; }
  # each line: SMILES, property, value; the value within 0.05 of the plain student's. The
  # promise (12 bits) is relative to the dry run's largest output, about 1.3e3 on dense
  # [0, 1] inputs, so 0.3; sparse molecule images stay near 2^-8 (seen: <= 0.005), and a
  # wrong featurizer or layout moves values by far more than 0.05.
  paste "$out" "$dir/expected.csv" | awk -F'\t' '{
      split($4, e, ","); if ($1 != e[1] || $2 != "SA score") { print "mismatch: " $0; bad = 1 }
      d = $3 - e[2]; if (d < 0) d = -d; if (d > 0.05) { print "off: " $0; bad = 1 }
    } END { exit bad }' || fail "answers differ from the plain student"
  run 3 "$veil" query -i "$dir/mols.smi" -m sa --json --cache "$dir/cache" "$url"
  stdout_has '"property": "SA score", "molecules": [{"line": 1,'
  stdout_has '"line": 3, "smiles": "C1CC(broken", "error": "molecule: RDKit cannot read'
  run 3 "$veil" query -i "$dir/mols.smi" -m digits --cache "$dir/cache" "$url"
  stderr_has "not molecules: it records no featurizer"
  kill -TERM $server
  wait $server
  trap - EXIT
  ;;

*)
  fail "unknown stage $stage"
  ;;
esac
echo "PASS ($stage)"
