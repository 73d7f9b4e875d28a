#!/usr/bin/env python3
"""What the Python binding costs on top of the C++ calls it wraps, measured in one run on
one machine: encrypt (encode + encrypt), multiply + relinearize + rescale, and the
digits ConvNet (encrypt with the secret key / eval / decrypt of one run of 64 images, on
one model file).

Needs the package (tools/python_env.sh VENV) and the C++ build (veil-bench, veil):

    OMP_NUM_THREADS=1 VENV/bin/python bench/python_overhead.py [--build build] [--json]

C++ side: veil-bench (Google Benchmark: BM_EncryptValues and BM_MulRelinRescale at
N = 2^14, its chain of 48/49-bit primes) and `veil bench MODEL --json` (the CLI's
in-process timing). Python side: the same operations on the same chain through
veil.Context and veil.Model, median of repeated calls (time.perf_counter).
Both run on the cpu backend, one after the other, with the same OMP_NUM_THREADS.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import veil

REPO = pathlib.Path(__file__).resolve().parents[1]


def median_ms(fn, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def cpp_ops(build: pathlib.Path) -> dict[str, float]:
    out = subprocess.run([str(build / "bin" / "veil-bench"), "--benchmark_filter=^BM_(EncryptValues|MulRelinRescale)/16384$",
                          "--benchmark_format=json", "--benchmark_min_time=0.5"],
                         check=True, capture_output=True, text=True).stdout
    ms = {}
    for b in json.loads(out)["benchmarks"]:
        unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
        ms[b["name"].split("/")[0][3:]] = b["real_time"] * unit
    return ms


def python_ops(repeat: int) -> dict[str, float]:
    # veil-bench's N = 2^14 chain (bench/veil_bench.cpp: primes below 2^50, the IFMA path)
    ctx = veil.Context(log_n=14, q_bits=[48, 48, 48, 49, 49, 49, 49, 49], p_bits=[49], scale=2.0 ** 40)
    x = np.random.default_rng(1).uniform(-1, 1, ctx.slots)
    a, b = ctx.encrypt(x), ctx.encrypt(x)
    public = ctx.public()  # encrypts with the public key, as veil-bench's BM_Encrypt does
    return {"encrypt": median_ms(lambda: public.encrypt(x), repeat),
            "multiply": median_ms(lambda: a * b, repeat)}


def convnet(build: pathlib.Path, repeat: int) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "digits.veil")
        with open(path, "wb") as f:
            f.write(veil.compile_onnx(str(REPO / "tests" / "data" / "convnet_digits.onnx"), name="digits"))
        cli = json.loads(subprocess.run([str(build / "bin" / "veil"), "bench", path, "--json", "--runs", str(repeat),
                                         "--backend", "cpu", "-q"], check=True, capture_output=True,
                                        text=True).stdout)
        m = veil.Model(path)
        m.keygen()
        images = np.fromfile(REPO / "tests" / "data" / "digits_test_28x28.u8", dtype=np.uint8)
        x = images.reshape(-1, 784)[:m.batch] / 255.0
        enc = m.encrypt(x)
        out = m.run(enc)
        py = {"encrypt_ms": median_ms(lambda: m.encrypt(x), repeat, 1),
              "eval_ms": median_ms(lambda: m.run(enc), repeat, 1),
              "decrypt_ms": median_ms(lambda: m.decrypt(out), repeat, 1)}
    return cli, py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(REPO / "build"), help="the C++ build directory (default: build)")
    ap.add_argument("--repeat", type=int, default=20, help="Python calls per operation (median)")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    a = ap.parse_args()
    build = pathlib.Path(a.build)
    cpp = cpp_ops(build)
    py = python_ops(a.repeat)
    cli, pyc = convnet(build, max(3, a.repeat // 4))
    rows = [
        ("encrypt with the public key (encode + encrypt), N = 2^14", cpp["EncryptValues"], py["encrypt"]),
        ("multiply + relinearize + rescale, N = 2^14", cpp["MulRelinRescale"], py["multiply"]),
        ("ConvNet encrypt, 64 images (one run)", cli["encrypt_ms"], pyc["encrypt_ms"]),
        ("ConvNet eval, one run", cli["eval_ms"], pyc["eval_ms"]),
        ("ConvNet decrypt, one run", cli["decrypt_ms"], pyc["decrypt_ms"]),
    ]
    if a.json:
        print(json.dumps([{"operation": r[0], "cpp_ms": r[1], "python_ms": r[2], "ratio": r[2] / r[1]} for r in rows]))
        return
    threads = os.environ.get("OMP_NUM_THREADS", "all")
    print(f"Python overhead (cpu backend, OMP_NUM_THREADS={threads}, {os.cpu_count()} CPUs)\n")
    print("| operation | C++ (ms) | Python (ms) | Python / C++ |")
    print("|---|---|---|---|")
    for name, c, p in rows:
        print(f"| {name} | {c:.3f} | {p:.3f} | {p / c:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
