#!/usr/bin/python3
"""Write the ONNX test models Veil's importer is checked against (tests/test_nn_onnx.cpp).

Requires Debian's /usr/bin/python3 with python3-torch and python3-onnx
(`apt-get install python3-torch python3-onnx`). Run from the repository root:

    /usr/bin/python3 tools/export_onnx.py

Writes, into tests/data/:
* convnet_digits.onnx: the digits ConvNet of tools/train_convnet.py, with the exact float32
  weights of convnet_digits.weights, exported by torch.onnx (Conv, Mul(x, x), Flatten, Gemm).
* onnx_ops.onnx and onnx_ops_expected.txt: a small model with fixed random weights that uses
  every operator the importer maps: Conv -> BatchNormalization -> Mul(x, x) -> AveragePool ->
  Flatten -> Gemm -> a polynomial written with Pow/Mul/Add/Sub/Div and constants -> MatMul + Add
  -> BatchNormalization, exported without constant folding so the BatchNormalization nodes stay.
  The expected file holds, per test input, the 12x12 input and torch's float64 output.
No network access is needed.
"""
import os

import numpy as np
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")


def read_weights(path):
    tensors = {}
    with open(path) as f:
        lines = [ln for ln in f if ln.strip() and not ln.startswith("#")]
    pos = 0
    while pos < len(lines):
        name, rows, cols = lines[pos].split()
        rows, cols = int(rows), int(cols)
        body = [np.array(ln.split(), dtype=np.float32) for ln in lines[pos + 1:pos + 1 + rows]]
        tensors[name] = np.stack(body)
        pos += 1 + rows
    return tensors


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=7, stride=3)
        self.fc1 = nn.Linear(256, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.conv(x)
        x = (x * x).flatten(1)
        x = self.fc1(x)
        return self.fc2(x * x)


class OpsNet(nn.Module):
    """Every mapped operator once; shapes 1x12x12 -> 3x10x10 -> 3x5x5 -> 75 -> 16 -> 8."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, kernel_size=3, stride=1)
        self.bn2d = nn.BatchNorm2d(3, eps=1e-3)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(75, 16)
        self.w2 = nn.Parameter(torch.randn(16, 8) * 0.3)  # MatMul: [in][out]
        self.b2 = nn.Parameter(torch.randn(8) * 0.1)
        self.bn1d = nn.BatchNorm1d(8)

    def forward(self, x):
        x = self.bn2d(self.conv(x))
        x = self.pool(x * x)
        x = self.fc(torch.flatten(x, 1))
        # 0.125 x^3 - 0.25 x^2 + 0.5 x + 0.1, spelled with several operators
        x = (torch.pow(x, 3) - 2.0 * x * x) / 8.0 + x * 0.5 + 0.1
        x = torch.matmul(x, self.w2) + self.b2
        return self.bn1d(x)


def export(model, example, path, fold):
    model.eval()
    torch.onnx.export(model, example, path, input_names=["image"], output_names=["out"], opset_version=13,
                      do_constant_folding=fold, training=torch.onnx.TrainingMode.EVAL)
    print("wrote", os.path.relpath(path, ROOT), os.path.getsize(path), "bytes")


def main():
    torch.manual_seed(20261125)
    w = read_weights(os.path.join(DATA, "convnet_digits.weights"))
    net = ConvNet()
    with torch.no_grad():
        net.conv.weight.copy_(torch.from_numpy(w["conv.weight"].reshape(4, 1, 7, 7)))
        net.conv.bias.copy_(torch.from_numpy(w["conv.bias"].reshape(4)))
        net.fc1.weight.copy_(torch.from_numpy(w["fc1.weight"]))
        net.fc1.bias.copy_(torch.from_numpy(w["fc1.bias"].reshape(64)))
        net.fc2.weight.copy_(torch.from_numpy(w["fc2.weight"]))
        net.fc2.bias.copy_(torch.from_numpy(w["fc2.bias"].reshape(10)))
    export(net, torch.zeros(1, 1, 28, 28), os.path.join(DATA, "convnet_digits.onnx"), fold=True)

    ops = OpsNet()
    with torch.no_grad():  # non-trivial running statistics for both BatchNorms
        ops.bn2d.running_mean.copy_(torch.randn(3) * 0.2)
        ops.bn2d.running_var.copy_(torch.rand(3) + 0.5)
        ops.bn2d.weight.copy_(torch.rand(3) + 0.5)
        ops.bn2d.bias.copy_(torch.randn(3) * 0.1)
        ops.bn1d.running_mean.copy_(torch.randn(8) * 0.2)
        ops.bn1d.running_var.copy_(torch.rand(8) + 0.5)
        ops.bn1d.weight.copy_(torch.rand(8) + 0.5)
        ops.bn1d.bias.copy_(torch.randn(8) * 0.1)
    export(ops, torch.zeros(1, 1, 12, 12), os.path.join(DATA, "onnx_ops.onnx"), fold=False)

    # Expected outputs in float64 from the float32 weights (the importer reads float32 exactly).
    ops64 = OpsNet().double()
    ops64.load_state_dict({k: v.double() for k, v in ops.state_dict().items()})
    ops64.eval()
    inputs = torch.rand(4, 1, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        out = ops64(inputs)
    path = os.path.join(DATA, "onnx_ops_expected.txt")
    with open(path, "w") as f:
        f.write("# tools/export_onnx.py: per case, a line of 144 inputs (12x12 row-major) and a line of\n"
                "# 8 outputs of onnx_ops.onnx evaluated by torch in float64 (%.17g).\n")
        for i in range(inputs.shape[0]):
            f.write(" ".join("%.17g" % v for v in inputs[i].flatten().tolist()) + "\n")
            f.write(" ".join("%.17g" % v for v in out[i].tolist()) + "\n")
    print("wrote", os.path.relpath(path, ROOT))


if __name__ == "__main__":
    main()
