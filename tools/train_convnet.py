#!/usr/bin/python3
"""Train the small square-activation ConvNet that Veil later runs encrypted.

Requires Debian's /usr/bin/python3 with python3-torch and python3-sklearn
(`apt-get install python3-torch python3-sklearn`); the pyenv python3 that may
come first on PATH does not have them. Run from the repository root:

    /usr/bin/python3 tools/train_convnet.py

No network access is needed: the data is scikit-learn's bundled `load_digits`
(1797 8x8 images, values 0..16). Each image is scaled to [0, 1], upsampled to
28x28 (bilinear, align_corners=False), quantized to uint8 (round(v*255)), and
the model is trained and tested on exactly those quantized images / 255, so the
C++ side reproduces its inputs bit-exactly from the uint8 file.

Split: numpy.random.RandomState(SEED).permutation(1797); its first 1397 indices
train, its last 400 test (test files keep that permuted order). A seeded
shuffle rather than load_digits order: the file is grouped by writer, and a
plain first/last split tests on unseen writers only (about 92% accuracy).

Model (the TenSEAL MNIST tutorial ConvNet):
    conv2d 1->4, kernel 7x7, stride 3, no padding  (28x28 -> 4 x 8 x 8)
    x*x
    flatten (channel-major, then row, then column) -> 256
    fc1 256 -> 64
    x*x
    fc2 64 -> 10

Writes tests/data/convnet_digits.weights, tests/data/digits_test_28x28.u8,
tests/data/digits_test_labels.u8 and tests/data/convnet_digits_expected.txt
(formats documented in docs/convnet.md and in each text file's header), then
re-reads them with numpy alone and checks the logits within 1e-6.
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

SEED = 20240501
N_TRAIN = 1397          # first N_TRAIN permuted samples train, the rest (400) test
IMAGE_SIZE = 28
EPOCHS = 20
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-3
LOGIT_TOLERANCE = 1e-6

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(REPO_ROOT, "tests", "data")
WEIGHTS_PATH = os.path.join(DATA_DIR, "convnet_digits.weights")
IMAGES_PATH = os.path.join(DATA_DIR, "digits_test_28x28.u8")
LABELS_PATH = os.path.join(DATA_DIR, "digits_test_labels.u8")
EXPECTED_PATH = os.path.join(DATA_DIR, "convnet_digits_expected.txt")


class ConvNet(nn.Module):
    """conv(1->4, 7x7, stride 3) -> x^2 -> fc 256->64 -> x^2 -> fc 64->10."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=7, stride=3, padding=0)
        self.fc1 = nn.Linear(256, 64)
        self.fc2 = nn.Linear(64, 10)

    def pre_activations(self, x):
        """Returns (conv output, fc1 output, logits): the two tensors that get
        squared are what bounds the encrypted precision, so expose them."""
        conv_out = self.conv(x)
        fc1_out = self.fc1((conv_out * conv_out).flatten(1))
        logits = self.fc2(fc1_out * fc1_out)
        return conv_out, fc1_out, logits

    def forward(self, x):
        return self.pre_activations(x)[2]


def seed_everything(seed):
    """Fixed seeds and single-order kernels so reruns give the same files."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)


def quantized_digit_images():
    """The bundled digits upsampled to 28x28 and quantized to uint8.

    Returns (images uint8 [n, 28, 28], labels uint8 [n]). Quantizing here, before
    any training, is what lets the C++ side reproduce the inputs exactly."""
    digits = load_digits()
    small = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    big = F.interpolate(small.unsqueeze(1), size=(IMAGE_SIZE, IMAGE_SIZE),
                        mode="bilinear", align_corners=False).squeeze(1)
    images = torch.round(big.clamp(0.0, 1.0) * 255.0).to(torch.uint8).numpy()
    return images, digits.target.astype(np.uint8)


def split_indices(n):
    """(train, test) index arrays from a seeded permutation. The legacy
    RandomState stream is frozen by numpy, so the split is stable across versions."""
    order = np.random.RandomState(SEED).permutation(n)
    return order[:N_TRAIN], order[N_TRAIN:]


def to_model_input(images_u8, dtype=torch.float32):
    """uint8 [n, 28, 28] -> [n, 1, 28, 28] in [0, 1], the only input mapping."""
    return torch.tensor(images_u8, dtype=dtype).unsqueeze(1) / 255.0


def train(model, x_train, y_train):
    """Adam with a modest rate and weight decay: square activations blow up
    (and the loss diverges) with larger steps, and smaller weights keep the
    pre-activations, hence the encrypted values, moderate."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE,
                                 weight_decay=WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(SEED)
    n = x_train.shape[0]
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(n, generator=generator)
        total_loss = 0.0
        for start in range(0, n, BATCH_SIZE):
            batch = order[start:start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * batch.numel()
        if epoch % 5 == 4 or epoch == EPOCHS - 1:
            print(f"epoch {epoch + 1:3d}  train loss {total_loss / n:.4f}")


@torch.no_grad()
def evaluate(model, x, y):
    """Accuracy and the max |pre-activation| of each square layer."""
    model.eval()
    conv_out, fc1_out, logits = model.pre_activations(x)
    accuracy = (logits.argmax(1) == y).double().mean().item()
    return accuracy, conv_out.abs().max().item(), fc1_out.abs().max().item()


def named_parameter_matrices(model):
    """(name, 2-D float32 array) in file order; conv.weight [4,1,7,7] becomes
    [4, 49] with column ky*7+kx, biases become one-row matrices."""
    result = []
    for name, tensor in model.state_dict().items():
        array = tensor.detach().to(torch.float32).numpy()
        if array.ndim == 1:
            array = array.reshape(1, -1)
        else:
            array = array.reshape(array.shape[0], -1)
        result.append((name, array))
    return result


WEIGHTS_HEADER = """\
# Veil ConvNet weights for sklearn digits upsampled to 28x28 (tools/train_convnet.py).
# Model: conv 1->4 k7 s3 p0 -> x^2 -> flatten -> fc1 256->64 -> x^2 -> fc2 64->10.
# Input: image u8 [28][28] row-major, x = u8 / 255.0.
# Layout: for each tensor a line "name rows cols", then rows lines of cols
#   whitespace-separated values (%.9g of the float32 weights: parse with strtof
#   to recover them exactly; the expected logits used those exact values).
# Tensors, in this order:
#   conv.weight 4 49    [out channel c][ky*7 + kx]
#   conv.bias   1 4     [c]
#   fc1.weight  64 256  [out j][c*64 + oy*8 + ox]   (PyTorch flatten of (4,8,8))
#   fc1.bias    1 64
#   fc2.weight  10 64   [class k][j]
#   fc2.bias    1 10
# conv[c][oy][ox] = conv.bias[c] + sum_{ky,kx} w[c][ky*7+kx] * x[3*oy+ky][3*ox+kx]
# h[j] = fc1.bias[j] + sum_i fc1.weight[j][i] * conv_flat[i]^2
# logit[k] = fc2.bias[k] + sum_j fc2.weight[k][j] * h[j]^2
"""


def write_weights(model, path):
    with open(path, "w") as f:
        f.write(WEIGHTS_HEADER)
        for name, array in named_parameter_matrices(model):
            f.write(f"{name} {array.shape[0]} {array.shape[1]}\n")
            for row in array:
                f.write(" ".join("%.9g" % v for v in row) + "\n")


def write_test_set(images_u8, labels_u8):
    """Raw bytes, no header: n*784 image bytes, n label bytes."""
    images_u8.astype(np.uint8).tofile(IMAGES_PATH)
    labels_u8.astype(np.uint8).tofile(LABELS_PATH)


@torch.no_grad()
def float64_logits(model, images_u8):
    """Reference logits in float64 from the float32 weights and the u8 inputs."""
    model_64 = ConvNet().double()
    model_64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    model_64.eval()
    return model_64(to_model_input(images_u8, torch.float64)).numpy()


def write_expected(logits, labels_u8, path):
    with open(path, "w") as f:
        f.write("# Plaintext float64 logits of tests/data/convnet_digits.weights on\n"
                "# tests/data/digits_test_28x28.u8 (tools/train_convnet.py).\n"
                "# One line per test image, in file order:\n"
                "#   index label predicted logit0 ... logit9   (logits %.9g)\n"
                f"# count {logits.shape[0]}\n")
        for i, (row, label) in enumerate(zip(logits, labels_u8)):
            values = " ".join("%.9g" % v for v in row)
            f.write(f"{i} {label} {int(np.argmax(row))} {values}\n")


# ---- independent check: numpy only, reading nothing but the written files ----

def read_weights(path):
    """Parse the text weights the way a C++ reader would (float32 values)."""
    tensors = {}
    with open(path) as f:
        lines = [ln for ln in f if ln.strip() and not ln.startswith("#")]
    pos = 0
    while pos < len(lines):
        name, rows, cols = lines[pos].split()
        rows, cols = int(rows), int(cols)
        body = [np.array(ln.split(), dtype=np.float32) for ln in lines[pos + 1:pos + 1 + rows]]
        array = np.stack(body).astype(np.float64)
        assert array.shape == (rows, cols), (name, array.shape)
        tensors[name] = array
        pos += 1 + rows
    return tensors


def numpy_forward(w, image_u8):
    """Direct loops over the documented formulas, mirroring what C++ computes."""
    x = image_u8.astype(np.float64) / 255.0
    conv = np.empty((4, 8, 8))
    kernels = w["conv.weight"].reshape(4, 7, 7)
    for c in range(4):
        for oy in range(8):
            for ox in range(8):
                patch = x[3 * oy:3 * oy + 7, 3 * ox:3 * ox + 7]
                conv[c, oy, ox] = w["conv.bias"][0, c] + np.sum(kernels[c] * patch)
    hidden = w["fc1.bias"][0] + w["fc1.weight"] @ (conv.reshape(256) ** 2)
    return w["fc2.bias"][0] + w["fc2.weight"] @ (hidden ** 2)


def read_expected(path):
    rows = np.loadtxt(path, comments="#")
    return rows[:, 1].astype(int), rows[:, 2].astype(int), rows[:, 3:]


def verify_written_files():
    """Re-load every output file and check the logits agree within 1e-6."""
    weights = read_weights(WEIGHTS_PATH)
    images = np.fromfile(IMAGES_PATH, dtype=np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    labels = np.fromfile(LABELS_PATH, dtype=np.uint8)
    exp_labels, exp_pred, exp_logits = read_expected(EXPECTED_PATH)
    assert len(images) == len(labels) == len(exp_logits)
    assert np.array_equal(labels, exp_labels)
    logits = np.stack([numpy_forward(weights, img) for img in images])
    max_diff = np.abs(logits - exp_logits).max()
    pred_match = np.array_equal(np.argmax(logits, 1), exp_pred)
    accuracy = (exp_pred == labels).mean()
    print(f"verify: max |logit diff| {max_diff:.3g} (tolerance {LOGIT_TOLERANCE}), "
          f"predictions match: {pred_match}, accuracy from files {accuracy:.4f}")
    return max_diff <= LOGIT_TOLERANCE and pred_match


def main():
    torch.set_num_threads(2)
    seed_everything(SEED)
    images, labels = quantized_digit_images()
    train_idx, test_idx = split_indices(len(labels))
    x = to_model_input(images)
    y = torch.tensor(labels, dtype=torch.long)
    print(f"dataset: {len(labels)} images, train {len(train_idx)}, test {len(test_idx)}")

    model = ConvNet()
    train(model, x[train_idx], y[train_idx])

    for split, idx in (("train", train_idx), ("test", test_idx)):
        acc, conv_max, fc1_max = evaluate(model, x[idx], y[idx])
        print(f"{split}: accuracy {acc:.4f}  max|conv pre-act| {conv_max:.4f}  "
              f"max|fc1 pre-act| {fc1_max:.4f}")

    os.makedirs(DATA_DIR, exist_ok=True)
    test_images, test_labels = images[test_idx], labels[test_idx]
    write_weights(model, WEIGHTS_PATH)
    write_test_set(test_images, test_labels)
    logits64 = float64_logits(model, test_images)
    write_expected(logits64, test_labels, EXPECTED_PATH)
    print(f"float64 test accuracy {(logits64.argmax(1) == test_labels).mean():.4f}")
    for path in (WEIGHTS_PATH, IMAGES_PATH, LABELS_PATH, EXPECTED_PATH):
        print(f"wrote {os.path.relpath(path, REPO_ROOT)} ({os.path.getsize(path)} bytes)")

    if not verify_written_files():
        sys.exit("verification failed")


if __name__ == "__main__":
    main()
