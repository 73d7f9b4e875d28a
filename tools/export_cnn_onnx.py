#!/usr/bin/python3
"""Write the CNN test models of Veil's ONNX importer (tests/test_nn_onnx.cpp).

Requires Debian's /usr/bin/python3 with python3-torch, python3-onnx and python3-sklearn
(`apt-get install python3-torch python3-onnx python3-sklearn`). Run from the repository root:

    /usr/bin/python3 tools/export_cnn_onnx.py            # the models below
    /usr/bin/python3 tools/export_cnn_onnx.py --lenet5   # and the 28x28 LeNet-5 (a minute more)

No network access is needed. Writes, into tests/data/:
* lenet_digits.onnx: a LeNet-5-shaped net trained (fixed seeds, about a minute on two cores)
  on scikit-learn's digits upsampled to 16x16:
      conv 1->6 k5 pad 2 (16x16) -> x*x -> AvgPool 2 (8x8) -> conv 6->16 k5 (4x4) -> x*x ->
      AvgPool 2 (2x2) -> flatten (64) -> Linear 64->10
  exported by torch.onnx (opset 13, input [1, 1, 16, 16]).
* digits_test_16x16.u8: the 400 test images, uint8 row-major, no header. The images and the
  split are those of tools/train_convnet.py (the same seeded permutation: its first 1397
  indices train, its last 400 test, in that order; the labels are digits_test_labels.u8),
  only upsampled to 16x16 instead of 28x28 before the same uint8 quantization.
* lenet_digits_expected.txt: per test image its label and torch's float64 logits (from the
  float32 weights); the header holds the float32 and float64 test accuracy.
* rgb_resnet.onnx: a 3x32x32 net with one residual block and fixed random weights:
      conv 3->8 k3 pad 1 -> x*x -> [conv 8->8 k3 pad 1 -> x*x -> conv 8->8 k3 pad 1] + skip ->
      GlobalAveragePool -> flatten -> Linear 8->10
* rgb_resnet_expected.txt: 4 inputs (numpy RandomState(7) uniform [0, 1)) and torch's
  float64 outputs.
* rgb_resnet_down.onnx: a 3x16x16 net with ResNet's downsampling block (its own seed, made
  after the models above so they do not change):
      conv 3->4 k3 pad 1 -> x*x -> [conv 4->8 k3 stride 2 pad 1 -> BN -> x*x -> conv 8->8 k3
      pad 1 -> BN] + [conv 4->8 k1 stride 2 -> BN] -> GlobalAveragePool -> flatten -> Linear 8->10
  with random weights and BatchNorm statistics, each BatchNorm folded into its conv (in
  float32, as torch's eval-mode export does) before the export and the reference.
* rgb_resnet_down_expected.txt: 3 inputs (numpy RandomState(11) uniform [0, 1)) and
  torch's float64 outputs.
With --lenet5 also (trained last, from its own seed, so the files above do not change):
* lenet5_digits28.onnx: the classic LeNet-5 with x*x activations, trained on the 28x28
  digits and split of tools/train_convnet.py (its test images are digits_test_28x28.u8):
      conv 1->6 k5 pad 2 (28x28) -> x*x -> AvgPool 2 (14x14) -> conv 6->16 k5 (10x10) -> x*x ->
      AvgPool 2 (5x5) -> flatten (400) -> Linear 400->120 -> x*x -> Linear 120->84 -> x*x ->
      Linear 84->10
  exported by torch.onnx (opset 13, input [1, 1, 28, 28]).
* lenet5_digits28_expected.txt: per test image its label, torch's prediction and float64
  logits (from the float32 weights); the header holds the test accuracy.
"""
import copy
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

SEED = 20240501          # the split of tools/train_convnet.py
N_TRAIN = 1397           # first N_TRAIN permuted samples train, the last 400 test
IMAGE_SIZE = 16
TORCH_SEED = 20261201
EPOCHS = 40
BATCH_SIZE = 32
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-4
MIN_ACCURACY = 0.90
MAX_FILE_BYTES = 1 << 20

# LeNet-5 on 28x28 (--lenet5). Four squares in a row: torch's default init makes the signal
# vanish (x*x of small values), so it is scaled up; weight decay and a penalty on the mean
# square of each squared tensor and of the logits keep the values, hence the encrypted
# ones, moderate.
LENET5_IMAGE_SIZE = 28
LENET5_SEED = 20261204
RESNET_DOWN_SEED = 20261205  # rgb_resnet_down, made after the others
LENET5_EPOCHS = 30
LENET5_LEARNING_RATE = 1e-3
LENET5_WEIGHT_DECAY = 1e-3
LENET5_INIT_SCALE = 2.0
LENET5_ACTIVATION_PENALTY = 1e-2
LENET5_MIN_ACCURACY = 0.95

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")


class LeNet(nn.Module):
    """LeNet-5 with x*x for the activations (one ciphertext product each)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = self.pool(x * x)
        x = self.conv2(x)
        x = self.pool(x * x)
        return self.fc(torch.flatten(x, 1))


class LeNet5(nn.Module):
    """The classic LeNet-5 on 28x28 inputs with x*x for the activations."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.pool = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def pre_activations(self, x):
        """The four tensors that get squared, then the logits."""
        a1 = self.conv1(x)
        a2 = self.conv2(self.pool(a1 * a1))
        a3 = self.fc1(torch.flatten(self.pool(a2 * a2), 1))
        a4 = self.fc2(a3 * a3)
        return a1, a2, a3, a4, self.fc3(a4 * a4)

    def forward(self, x):
        return self.pre_activations(x)[-1]


class RgbResNet(nn.Module):
    """One residual block whose skip carries the tensor unchanged to the Add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.conv_a = nn.Conv2d(8, 8, kernel_size=3, padding=1)
        self.conv_b = nn.Conv2d(8, 8, kernel_size=3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x * x
        y = self.conv_a(x)
        y = self.conv_b(y * y)
        x = y + x
        return self.fc(torch.flatten(self.pool(x), 1))


class RgbResNetDown(nn.Module):
    """ResNet's downsampling block: the skip is a 1x1 stride-2 conv with its BatchNorm."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.conv_a = nn.Conv2d(4, 8, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(8)
        self.conv_b = nn.Conv2d(8, 8, kernel_size=3, padding=1, bias=False)
        self.bn_b = nn.BatchNorm2d(8)
        self.down = nn.Sequential(nn.Conv2d(4, 8, kernel_size=1, stride=2, bias=False), nn.BatchNorm2d(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x * x
        y = self.bn_a(self.conv_a(x))
        y = self.bn_b(self.conv_b(y * y))
        x = y + self.down(x)
        return self.fc(torch.flatten(self.pool(x), 1))


# ---- data: the split and quantization of tools/train_convnet.py, at 16x16 (28x28 for --lenet5) ----

def quantized_digit_images(size=IMAGE_SIZE):
    """(uint8 [n, size, size], uint8 labels [n]): quantized before training, so the C++ side
    reproduces the inputs exactly as u8 / 255."""
    digits = load_digits()
    small = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    big = F.interpolate(small.unsqueeze(1), size=(size, size), mode="bilinear",
                        align_corners=False).squeeze(1)
    images = torch.round(big.clamp(0.0, 1.0) * 255.0).to(torch.uint8).numpy()
    return images, digits.target.astype(np.uint8)


def split_indices(n):
    order = np.random.RandomState(SEED).permutation(n)
    return order[:N_TRAIN], order[N_TRAIN:]


def to_model_input(images_u8, dtype=torch.float32):
    return torch.tensor(images_u8, dtype=dtype).unsqueeze(1) / 255.0


def train(model, x, y):
    """Adam, small batches; square activations diverge with larger steps."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(TORCH_SEED)
    n = x.shape[0]
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * batch.numel()
        if epoch % 10 == 9:
            print(f"epoch {epoch + 1:3d}  train loss {total / n:.4f}")


def train_lenet5(model, x, y):
    """train() with the activation penalty of LENET5_ACTIVATION_PENALTY added to the loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LENET5_LEARNING_RATE, weight_decay=LENET5_WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(LENET5_SEED)
    n = x.shape[0]
    for epoch in range(LENET5_EPOCHS):
        model.train()
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            optimizer.zero_grad()
            outputs = model.pre_activations(x[batch])
            loss = F.cross_entropy(outputs[-1], y[batch])
            penalty = sum((t * t).mean() for t in outputs)
            (loss + LENET5_ACTIVATION_PENALTY * penalty).backward()
            optimizer.step()
            total += loss.item() * batch.numel()
        if epoch % 10 == 9:
            print(f"epoch {epoch + 1:3d}  train loss {total / n:.4f}")


def as_float64(model, cls):
    """The same float32 weights in a float64 copy: the reference Veil's import is checked against."""
    m = cls().double()
    m.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    return m.eval()


# ---- files ----

def export(model, example, name):
    path = os.path.join(DATA, name)
    model.eval()
    torch.onnx.export(model, example, path, input_names=["image"], output_names=["out"], opset_version=13,
                      training=torch.onnx.TrainingMode.EVAL)
    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    print(f"wrote tests/data/{name} ({os.path.getsize(path)} bytes):",
          " ".join(n.op_type for n in graph.graph.node))
    return path


def numbers(values):
    return " ".join("%.17g" % v for v in values)


def write_lenet_expected(logits, labels, acc32, acc64, name="lenet_digits", images="digits_test_16x16.u8"):
    path = os.path.join(DATA, f"{name}_expected.txt")
    with open(path, "w") as f:
        f.write(f"# Float64 logits of tests/data/{name}.onnx (its float32 weights, evaluated by torch in\n"
                f"# float64) on tests/data/{images}, inputs u8 / 255 (tools/export_cnn_onnx.py).\n"
                f"# Test accuracy: float32 {acc32:.4f}, float64 {acc64:.4f} ({len(labels)} images).\n"
                "# One line per test image, in file order: index label predicted logit0 ... logit9 (%.17g)\n")
        for i, (row, label) in enumerate(zip(logits, labels)):
            f.write(f"{i} {label} {int(np.argmax(row))} {numbers(row)}\n")
    return path


def write_resnet_expected(inputs, outputs, name="rgb_resnet", seed=7):
    path = os.path.join(DATA, f"{name}_expected.txt")
    c, h, w = inputs.shape[1:]
    with open(path, "w") as f:
        f.write(f"# tests/data/{name}.onnx evaluated by torch in float64 from its float32 weights\n"
                f"# (tools/export_cnn_onnx.py). Per case a line of {c} x {h} x {w} inputs (channel-major, then\n"
                f"# row-major; numpy RandomState({seed}) uniform [0, 1)) and a line of 10 outputs (%.17g).\n")
        for x, y in zip(inputs, outputs):
            f.write(numbers(x.flatten()) + "\n")
            f.write(numbers(y) + "\n")
    return path


def lenet():
    images, labels = quantized_digit_images()
    train_idx, test_idx = split_indices(len(labels))
    x = to_model_input(images)
    y = torch.tensor(labels, dtype=torch.long)
    model = LeNet()
    train(model, x[train_idx], y[train_idx])
    model.eval()
    test_images, test_labels = images[test_idx], labels[test_idx]
    with torch.no_grad():
        acc32 = (model(x[test_idx]).argmax(1) == y[test_idx]).double().mean().item()
        logits = as_float64(model, LeNet)(to_model_input(test_images, torch.float64)).numpy()
    acc64 = float((logits.argmax(1) == test_labels).mean())
    print(f"lenet test accuracy: float32 {acc32:.4f}, float64 {acc64:.4f}")
    export(model, torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE), "lenet_digits.onnx")
    images_path = os.path.join(DATA, "digits_test_16x16.u8")
    test_images.astype(np.uint8).tofile(images_path)
    # The same test labels, in the same order, as train_convnet.py wrote.
    old_labels = np.fromfile(os.path.join(DATA, "digits_test_labels.u8"), dtype=np.uint8)
    if not np.array_equal(old_labels, test_labels):
        sys.exit("the split differs from tests/data/digits_test_labels.u8")
    expected = write_lenet_expected(logits, test_labels, acc32, acc64)
    return acc64, [images_path, expected]


def lenet5():
    """LeNet-5 on the 28x28 images of tools/train_convnet.py (its split and test files)."""
    torch.manual_seed(LENET5_SEED)
    images, labels = quantized_digit_images(LENET5_IMAGE_SIZE)
    train_idx, test_idx = split_indices(len(labels))
    test_images, test_labels = images[test_idx], labels[test_idx]
    # The test set train_convnet.py wrote: the same images, labels and order.
    old_images = np.fromfile(os.path.join(DATA, "digits_test_28x28.u8"), dtype=np.uint8)
    old_labels = np.fromfile(os.path.join(DATA, "digits_test_labels.u8"), dtype=np.uint8)
    if not (np.array_equal(old_images, test_images.reshape(-1)) and np.array_equal(old_labels, test_labels)):
        sys.exit("the 28x28 test set differs from tests/data/digits_test_28x28.u8 / digits_test_labels.u8")
    x = to_model_input(images)
    y = torch.tensor(labels, dtype=torch.long)
    model = LeNet5()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(LENET5_INIT_SCALE)
    train_lenet5(model, x[train_idx], y[train_idx])
    model.eval()
    with torch.no_grad():
        acc32 = (model(x[test_idx]).argmax(1) == y[test_idx]).double().mean().item()
        reference = as_float64(model, LeNet5)
        outputs = reference.pre_activations(to_model_input(test_images, torch.float64))
        bounds = [float(t.abs().max()) for t in outputs]
        logits = outputs[-1].numpy()
    acc64 = float((logits.argmax(1) == test_labels).mean())
    print(f"lenet5 test accuracy: float32 {acc32:.4f}, float64 {acc64:.4f}; max |pre-activation| "
          f"conv1 {bounds[0]:.3g} conv2 {bounds[1]:.3g} fc1 {bounds[2]:.3g} fc2 {bounds[3]:.3g}, "
          f"max |logit| {bounds[4]:.3g}")
    onnx_path = export(model, torch.zeros(1, 1, LENET5_IMAGE_SIZE, LENET5_IMAGE_SIZE), "lenet5_digits28.onnx")
    expected = write_lenet_expected(logits, test_labels, acc32, acc64, name="lenet5_digits28",
                                    images="digits_test_28x28.u8")
    return acc64, [onnx_path, expected]


def random_weights(model):
    """Small random weights (the squares stay in a sane range on [0, 1] inputs) and
    BatchNorm statistics as training would leave them, module by module."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                m.weight.mul_(0.5)
                if m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1)
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)


def resnet():
    model = RgbResNet()
    random_weights(model)
    export(model, torch.zeros(1, 3, 32, 32), "rgb_resnet.onnx")
    inputs = np.random.RandomState(7).uniform(0.0, 1.0, size=(4, 3, 32, 32))
    with torch.no_grad():
        outputs = as_float64(model, RgbResNet)(torch.from_numpy(inputs)).numpy()
    print("rgb_resnet max |output|", float(np.abs(outputs).max()))
    return [write_resnet_expected(inputs, outputs)]


def resnet_down():
    torch.manual_seed(RESNET_DOWN_SEED)
    model = RgbResNetDown()
    random_weights(model)
    # The export folds each BatchNorm into its conv in float32; fold them here first so that
    # the reference below runs the very float32 weights the file holds.
    model.eval()
    model.conv_a, model.bn_a = fuse_conv_bn_eval(model.conv_a, model.bn_a), nn.Identity()
    model.conv_b, model.bn_b = fuse_conv_bn_eval(model.conv_b, model.bn_b), nn.Identity()
    model.down = nn.Sequential(fuse_conv_bn_eval(model.down[0], model.down[1]))
    export(model, torch.zeros(1, 3, 16, 16), "rgb_resnet_down.onnx")
    inputs = np.random.RandomState(11).uniform(0.0, 1.0, size=(3, 3, 16, 16))
    with torch.no_grad():
        outputs = copy.deepcopy(model).double()(torch.from_numpy(inputs)).numpy()
    print("rgb_resnet_down max |output|", float(np.abs(outputs).max()))
    return [write_resnet_expected(inputs, outputs, "rgb_resnet_down", 11)]


def main():
    with_lenet5 = "--lenet5" in sys.argv[1:]
    unknown = [a for a in sys.argv[1:] if a != "--lenet5"]
    if unknown:
        sys.exit(f"usage: {sys.argv[0]} [--lenet5]   (unknown: {' '.join(unknown)})")
    torch.set_num_threads(2)
    torch.manual_seed(TORCH_SEED)
    torch.use_deterministic_algorithms(True)
    os.makedirs(DATA, exist_ok=True)
    accuracy, written = lenet()
    written += resnet()
    written += resnet_down()  # its own seed: the files above do not change
    names = ["lenet_digits.onnx", "digits_test_16x16.u8", "lenet_digits_expected.txt", "rgb_resnet.onnx",
             "rgb_resnet_expected.txt", "rgb_resnet_down.onnx", "rgb_resnet_down_expected.txt"]
    accuracy5 = None
    if with_lenet5:  # last: it reseeds, the files above stay as they were
        accuracy5, more = lenet5()
        written += more
        names += ["lenet5_digits28.onnx", "lenet5_digits28_expected.txt"]
    for path in written:
        print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")
    for name in names:
        if os.path.getsize(os.path.join(DATA, name)) > MAX_FILE_BYTES:
            sys.exit(f"{name} is larger than 1 MB")
    if accuracy < MIN_ACCURACY:
        sys.exit(f"test accuracy {accuracy:.4f} is below {MIN_ACCURACY}")
    if accuracy5 is not None and accuracy5 < LENET5_MIN_ACCURACY:
        sys.exit(f"lenet5 test accuracy {accuracy5:.4f} is below {LENET5_MIN_ACCURACY}")


if __name__ == "__main__":
    main()
