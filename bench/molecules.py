#!/usr/bin/env python3
"""Encrypted molecular property prediction, measured: for each student model of
tests/data/molecules (or the ONNX files given), the test split's molecules go through
the whole client / server path in one process:

  SMILES -> featurizer (tools/molecules/featurizer.py: RDKit, the layout of layout.json)
  -> veil.compile_onnx (automatic parameters, the featurizer recorded with --featurizer's
  format) -> keys -> encrypt (batched: many molecules per ciphertext) -> the server's run
  -> decrypt

and the table compares the teacher (RDKit's calculators), the student in plaintext
(torch's float64 outputs, test_split.csv) and the student encrypted: R^2 and MAE against
the teacher, the worst |encrypted - plain| and the time and bytes per molecule.

Needs the veil package (tools/python_env.sh VENV; the venv sees Debian's python3-rdkit):

    OMP_NUM_THREADS=1 VENV/bin/python bench/molecules.py [--models sa,np,...] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import sys
import time

import numpy as np

import veil

REPO = pathlib.Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "molecules"
sys.path.insert(0, str(REPO / "tools" / "molecules"))
import featurizer  # noqa: E402  (tools/molecules/featurizer.py: RDKit, the layout)

PROPERTIES = {"sa": "SA score", "np": "NP-likeness", "logp": "Crippen logP", "tpsa": "TPSA", "qed": "QED"}


def r2(y, p):
    y, p = np.asarray(y), np.asarray(p)
    return float(1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))


def mae(y, p):
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(p))))


def load_split():
    with open(DATA / "test_split.csv") as f:
        rows = list(csv.DictReader(f))
    return rows


def evaluate(key: str, rows, cells, precision_bits: float):
    onnx_path = DATA / f"{key}_small.onnx"
    t = time.perf_counter()
    file = veil.compile_onnx(str(onnx_path), name=f"{key}-small", promise_bits=precision_bits, max_log_n=15)
    compile_s = time.perf_counter() - t
    model = veil.Model(file)
    t = time.perf_counter()
    model.keygen()
    keygen_s = time.perf_counter() - t
    smiles = [r["smiles"] for r in rows]
    t = time.perf_counter()
    images = np.stack([featurizer.image(s, cells).reshape(-1) for s in smiles])
    featurize_s = time.perf_counter() - t
    t = time.perf_counter()
    query = model.encrypt(images)
    encrypt_s = time.perf_counter() - t
    t = time.perf_counter()
    answer = model.run(query)
    run_s = time.perf_counter() - t
    t = time.perf_counter()
    got = model.decrypt(answer)[:, 0]
    decrypt_s = time.perf_counter() - t
    plain_veil = model.forward(images)[:, 0]
    teacher = np.array([float(r[key]) for r in rows])
    student = np.array([float(r[f"{key}_small"]) for r in rows])
    n = len(rows)
    keys_bytes = len(model.evaluation_keys())
    return {
        "property": PROPERTIES[key], "model": f"{key}_small", "molecules": n, "log_n": model.log_n,
        "batch": model.batch, "runs": query.runs, "measured_bits": model.measured_bits,
        "teacher_vs_plain": {"r2": r2(teacher, student), "mae": mae(teacher, student)},
        "teacher_vs_encrypted": {"r2": r2(teacher, got), "mae": mae(teacher, got)},
        "max_abs_encrypted_minus_plain": float(np.max(np.abs(got - student))),
        "max_abs_veil_plain_minus_torch": float(np.max(np.abs(plain_veil - student))),
        "seconds": {"compile": compile_s, "keygen": keygen_s, "featurize": featurize_s, "encrypt": encrypt_s,
                    "server_run": run_s, "decrypt": decrypt_s},
        "ms_per_molecule": {"client": 1e3 * (featurize_s + encrypt_s + decrypt_s) / n, "server": 1e3 * run_s / n},
        "bytes": {"evaluation_keys_once": keys_bytes, "upload_per_molecule": len(query.serialize()) / n,
                  "download_per_molecule": len(answer.serialize()) / n},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(PROPERTIES), help="students to run (default: all five)")
    ap.add_argument("--precision-bits", type=float, default=12, help="the compiler's promise (default 12)")
    ap.add_argument("--json", action="store_true", help="one JSON list instead of the tables")
    a = ap.parse_args()
    rows = load_split()
    cells = featurizer.load_layout()
    results = [evaluate(k, rows, cells, a.precision_bits) for k in a.models.split(",")]
    if a.json:
        print(json.dumps(results, indent=1))
        return
    print(f"{len(rows)} test molecules (scaffold split), cpu backend, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'all')}, {os.cpu_count()} CPUs\n")
    print("| property | teacher vs student, plain: R^2 / MAE | teacher vs student, encrypted: R^2 / MAE "
          "| max abs(encrypted - plain) | N | molecules per run |")
    print("|---|---|---|---|---|---|")
    for r in results:
        p, e = r["teacher_vs_plain"], r["teacher_vs_encrypted"]
        print(f"| {r['property']} | {p['r2']:.3f} / {p['mae']:.3f} | {e['r2']:.3f} / {e['mae']:.3f} | "
              f"{r['max_abs_encrypted_minus_plain']:.2e} | 2^{r['log_n']} | {r['batch']} |")
    print("\n| property | client ms / molecule (featurize + encrypt + decrypt) | server ms / molecule | "
          "upload KB / molecule | download KB / molecule | evaluation keys (MB, once) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        b, m = r["bytes"], r["ms_per_molecule"]
        print(f"| {r['property']} | {m['client']:.2f} | {m['server']:.2f} | {b['upload_per_molecule'] / 1e3:.1f} | "
              f"{b['download_per_molecule'] / 1e3:.1f} | {b['evaluation_keys_once'] / 1e6:.1f} |")


if __name__ == "__main__":
    main()
