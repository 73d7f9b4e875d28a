#!/usr/bin/python3
"""Compares `veil query -i` answers (SMILES, property, value per line) with the plaintext
student: the molecules are featurized here (featurizer.py, the committed layout) and the
ONNX student is evaluated in float64 with numpy (its Conv without padding, Mul(x, x),
Flatten and Gemm nodes: the students' shapes). Prints the count and the largest
|encrypted - plain|; exits 1 when an answer is missing or differs by more than --tolerance.

    /usr/bin/python3 tools/molecules/compare_answers.py STUDENT.onnx answers.tsv [--tolerance 0.05]
"""
import argparse
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper as nh

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import featurizer as fz  # noqa: E402


def forward(model, x):
    """x: (molecules, 1, 32, 32) float64; the chain of nodes in order."""
    weights = {i.name: nh.to_array(i).astype(np.float64) for i in model.graph.initializer}
    h = x
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            assert not any(attrs.get("pads", [0])), "Conv with padding: not a student shape"
            w, b = weights[node.input[1]], weights[node.input[2]]
            k, s = w.shape[2], attrs.get("strides", [1, 1])[0]
            oh, ow = (h.shape[2] - k) // s + 1, (h.shape[3] - k) // s + 1
            out = np.zeros((h.shape[0], w.shape[0], oh, ow))
            for y in range(oh):
                for x_ in range(ow):
                    patch = h[:, :, y * s:y * s + k, x_ * s:x_ * s + k]
                    out[:, :, y, x_] = np.einsum("ncij,ocij->no", patch, w) + b
            h = out
        elif node.op_type == "Mul":
            assert node.input[0] == node.input[1], "Mul of two tensors: not a student shape"
            h = h * h
        elif node.op_type == "Flatten":
            h = h.reshape(h.shape[0], -1)
        elif node.op_type == "Gemm":
            w, b = weights[node.input[1]], weights[node.input[2]]
            h = h @ (w.T if attrs.get("transB", 0) else w) + b
        else:
            raise SystemExit(f"compare_answers.py: node {node.op_type} is not in the students' shapes")
    return h.reshape(h.shape[0], -1)[:, 0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("onnx")
    ap.add_argument("answers")
    ap.add_argument("--tolerance", type=float, default=0.05)
    a = ap.parse_args()
    rows = [line.rstrip("\n").split("\t") for line in open(a.answers) if line.strip()]
    cells = fz.load_layout()
    x = np.stack([fz.image(r[0], cells) for r in rows]).astype(np.float64).reshape(-1, 1, 32, 32)
    plain = forward(onnx.load(a.onnx), x)
    got = np.array([float(r[-1]) for r in rows])
    worst = float(np.max(np.abs(got - plain))) if len(rows) else float("inf")
    print(f"{len(rows)} answers; largest |encrypted - plain| = {worst:.3g} (values printed to 6 significant digits)")
    sys.exit(0 if worst <= a.tolerance else 1)


if __name__ == "__main__":
    main()
