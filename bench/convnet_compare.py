#!/usr/bin/env python3
"""Encrypted ConvNet: TenSEAL's tutorial pipeline vs Veil, same images, same weights, one run.

Needs: `pip install tenseal` (for the `python3` first on PATH; numpy comes with it) and a
built `veil-convnet` (cmake --build build --target veil-convnet). Installs nothing itself.

The model is the TenSEAL MNIST tutorial's ConvNet (conv 1->4, kernel 7, stride 3 -> x^2 ->
fc 256->64 -> x^2 -> fc 64->10) with the weights in tests/data/convnet_digits.weights
(tools/train_convnet.py), run on the quantized 28x28 digits in tests/data. TenSEAL runs
exactly the tutorial's encrypted code path (im2col_encoding, conv2d_im2col, pack_vectors,
square_, mm) with the tutorial's parameters (N = 8192, coeff_mod_bit_sizes
[31, 26, 26, 26, 26, 26, 26, 31], scale 2^26), one image per ciphertext. Veil runs
`veil-convnet --json` twice: one image per ciphertext (--packing im2col --batch 1, the
tutorial's setting) and batched (--packing taps: 64 images per run at N = 8192) on
--batched-images images (default 128, two full runs).

Reported per library: per-image latency (encrypt / infer / decrypt), accuracy, agreement
with the float64 model, max logit error, bytes the client uploads per image, and the
Veil / TenSEAL ratios of inference time per image.

Usage: python3 bench/convnet_compare.py [--images N] [--batched-images M] [--veil-convnet PATH]
                                        [--veil-args ...] [--skip-tenseal] [--json]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")


def load_weights(path):
    """Parses the documented text format: '#' comments, then 'name rows cols' + values."""
    tensors, tokens = {}, []
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                tokens.extend(line.split())
    i = 0
    while i < len(tokens):
        name, rows, cols = tokens[i], int(tokens[i + 1]), int(tokens[i + 2])
        values = [float(v) for v in tokens[i + 3:i + 3 + rows * cols]]
        tensors[name] = [values[r * cols:(r + 1) * cols] for r in range(rows)]
        i += 3 + rows * cols
    return tensors


def load_images(count):
    with open(os.path.join(DATA, "digits_test_28x28.u8"), "rb") as f:
        raw = f.read()
    with open(os.path.join(DATA, "digits_test_labels.u8"), "rb") as f:
        labels = list(f.read())
    expected = []
    with open(os.path.join(DATA, "convnet_digits_expected.txt")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            parts = line.split()
            expected.append((int(parts[2]), [float(v) for v in parts[3:13]]))
    images = []
    for k in range(count):
        px = raw[k * 784:(k + 1) * 784]
        images.append([[px[r * 28 + c] / 255.0 for c in range(28)] for r in range(28)])
    return images, labels[:count], expected[:count]


def transpose(m):
    return [list(col) for col in zip(*m)]


def run_tenseal(weights, images):
    import tenseal as ts

    ctx = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[31, 26, 26, 26, 26, 26, 26, 31])
    ctx.global_scale = 2 ** 26
    t0 = time.perf_counter()
    ctx.generate_galois_keys()
    keygen_s = time.perf_counter() - t0
    conv_w = [[row[ky * 7:(ky + 1) * 7] for ky in range(7)] for row in weights["conv.weight"]]
    conv_b = weights["conv.bias"][0]
    fc1_wt = transpose(weights["fc1.weight"])  # 256 x 64 for enc_vector.mm
    fc1_b = weights["fc1.bias"][0]
    fc2_wt = transpose(weights["fc2.weight"])
    fc2_b = weights["fc2.bias"][0]
    logits, t_enc, t_eval, t_dec, sizes = [], 0.0, 0.0, 0.0, []
    for img in images:
        t0 = time.perf_counter()
        enc_x, windows_nb = ts.im2col_encoding(ctx, img, 7, 7, 3)
        t1 = time.perf_counter()
        sizes.append(len(enc_x.serialize()))
        channels = [enc_x.conv2d_im2col(k, windows_nb) + b for k, b in zip(conv_w, conv_b)]
        x = ts.CKKSVector.pack_vectors(channels)
        x.square_()
        x = x.mm(fc1_wt) + fc1_b
        x.square_()
        x = x.mm(fc2_wt) + fc2_b
        t2 = time.perf_counter()
        out = x.decrypt()
        t3 = time.perf_counter()
        logits.append(out[:10])
        t_enc += t1 - t0
        t_eval += t2 - t1
        t_dec += t3 - t2
    n = len(images)
    return {"keygen_s": keygen_s, "encrypt_ms": 1e3 * t_enc / n, "infer_ms": 1e3 * t_eval / n,
            "decrypt_ms": 1e3 * t_dec / n, "images_per_run": 1, "run_ms": 1e3 * t_eval / n,
            "upload_bytes_per_image": sum(sizes) // max(n, 1), "logits": logits}


def summarize(name, logits, labels, expected):
    correct = sum(1 for l, y in zip(logits, labels) if max(range(10), key=lambda i: l[i]) == y)
    agree = sum(1 for l, (cls, _) in zip(logits, expected) if max(range(10), key=lambda i: l[i]) == cls)
    err = max(abs(a - b) for l, (_, ref) in zip(logits, expected) for a, b in zip(l, ref))
    return {"library": name, "images": len(logits), "accuracy": correct / len(logits),
            "agreement": agree / len(logits), "max_logit_error": err}


def run_veil(path, count, extra):
    cmd = [path, "--images", str(count), "--json"] + extra
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    r = json.loads(out[out.index("{"):])
    r["images_per_run"] = r.pop("batch")
    r["upload_bytes_per_image"] = r["upload_bytes_per_run"] // min(r["images_per_run"], r["images"])
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20, help="images for TenSEAL and Veil one-per-ciphertext")
    ap.add_argument("--batched-images", type=int, default=128, help="images for Veil's batched run")
    ap.add_argument("--veil-convnet", default=os.path.join(ROOT, "build", "bin", "veil-convnet"))
    ap.add_argument("--veil-args", nargs="*", default=[], help="extra arguments for veil-convnet")
    ap.add_argument("--skip-tenseal", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    weights = load_weights(os.path.join(DATA, "convnet_digits.weights"))
    images, labels, expected = load_images(args.images)
    report = {}
    if not args.skip_tenseal:
        try:
            ts_run = run_tenseal(weights, images)
            report["tenseal"] = {**summarize("TenSEAL", ts_run.pop("logits"), labels, expected), **ts_run}
        except ImportError as e:
            print(f"TenSEAL unavailable ({e}); pip install tenseal", file=sys.stderr)
    runs = {"veil_1_per_ct": (args.images, ["--packing", "im2col", "--batch", "1"]),
            "veil_batched": (args.batched_images, ["--packing", "taps"])}
    for name, (count, flags) in runs.items():
        try:
            report[name] = run_veil(args.veil_convnet, count, flags + args.veil_args)
        except (OSError, subprocess.CalledProcessError, ValueError) as e:
            print(f"veil-convnet failed: {e}", file=sys.stderr)
    if "tenseal" in report:
        for name in runs:
            if name in report:
                report[name]["infer_ratio_vs_tenseal"] = report[name]["infer_ms"] / report["tenseal"]["infer_ms"]
    if args.json:
        print(json.dumps(report, indent=2))
        return
    keys = ["images", "images_per_run", "accuracy", "agreement", "max_logit_error", "encrypt_ms", "infer_ms",
            "decrypt_ms", "run_ms", "upload_bytes_per_image", "keygen_s", "infer_ratio_vs_tenseal"]
    print(f"{'(per image)':24}" + "".join(f"{k:>16}" for k in report))
    for k in keys:
        row = [report[lib].get(k, "n/a") for lib in report]
        print(f"{k:24}" + "".join(f"{v:>16.4g}" if isinstance(v, float) else f"{str(v):>16}" for v in row))

if __name__ == "__main__":
    main()
