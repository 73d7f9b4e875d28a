"""veil.torch: Veil for PyTorch users.

The path of ChemXor's getting-started, with the whole network encrypted and many inputs
per ciphertext:

    import veil, veil.torch as vt
    ctx = veil.Context.preset(13)
    enc = vt.EncDataset(ctx, dataset)                     # ChemXor: EncDataset
    model = vt.convert_model(net, torch.zeros(1, 1, 28, 28))  # ChemXor: convert_model
    model.predict(x)                                      # encrypted, decrypted here
    with vt.serve(model) as server:                       # ChemXor: serve
        vt.query(server.url, x)                           # ChemXor: query

Imported only on demand (`import veil.torch`): `import veil` never needs torch.
Datasets follow torch.utils.data.Dataset and work with DataLoader(batch_size=None)
(items are already encrypted objects, which the default collate cannot stack).
"""

from __future__ import annotations

import io
import math
import os
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

import veil

__all__ = [
    "BatchedEncDataset",
    "EncConvDataset",
    "EncDataset",
    "EncryptedModel",
    "convert_model",
    "query",
    "serve",
]


def _numpy(x) -> np.ndarray:
    """A float64 numpy array from a tensor (detached, on the CPU), an array or a list."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _split(item):
    """(input, target) from a dataset item; a bare input gets target None."""
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    return item, None


def _item(dataset, index: int, transform: Optional[Callable]):
    """(input as float64 numpy, target) of dataset[index], transformed when asked."""
    x, y = _split(dataset[index])
    if transform is not None:
        x = transform(x)
    return _numpy(x), y


class EncDataset(Dataset):
    """Each item's input encrypted as one veil.Vector when it is read (ChemXor / TenSEAL
    users: EncDataset). Items are (Vector, target); the input is flattened. Use with
    DataLoader(dataset, batch_size=None).

    context: a veil.Context with the secret key or the public key (the client's).
    transform: applied to the input before encryption (e.g. a normalization).
    """

    def __init__(self, context: veil.Context, dataset, transform: Optional[Callable] = None):
        self.context = context
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        x, y = _item(self.dataset, index, self.transform)
        return self.context.encrypt(x.reshape(-1)), y


class EncConvDataset(Dataset):
    """Each item's image im2col-encoded and encrypted for a first convolution (ChemXor:
    EncConvDataset; TenSEAL: ts.im2col_encoding). Items are ((Vector, windows), target):
    pass them to Vector.conv2d_im2col(kernel, windows). The image is the item's input
    squeezed to 2-D (a [1, H, W] tensor is fine)."""

    def __init__(self, context: veil.Context, dataset, kernel_size: int, stride: int,
                 transform: Optional[Callable] = None):
        if kernel_size < 1 or stride < 1:
            raise ValueError("EncConvDataset: kernel_size and stride must be >= 1")
        self.context = context
        self.dataset = dataset
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, y = _item(self.dataset, index, self.transform)
        image = image.reshape(image.shape[-2:]) if image.ndim > 2 and image.size == np.prod(image.shape[-2:]) \
            else image
        if image.ndim != 2:
            raise ValueError(f"EncConvDataset: item {index} is not a one-channel image (shape {image.shape})")
        return self.context.im2col_encode(image, self.kernel_size, self.stride), y


class BatchedEncDataset(Dataset):
    """Many inputs per ciphertext (SIMD batching, which ChemXor lacks): item k holds the
    inputs [k * batch, (k + 1) * batch) of `dataset` encrypted for `model` as one
    veil.EncryptedBatch (one run of the model), with their targets as a list. With
    DataLoader(batch_size=None) each step is one encrypted run of `batch` inputs.

    model: an EncryptedModel or veil.Model with the secret key (keygen() or load_keys()).
    batch: inputs per item, at most the model's batch (default: the model's batch).
    """

    def __init__(self, model, dataset, batch: Optional[int] = None, transform: Optional[Callable] = None):
        self.model = model.model if isinstance(model, EncryptedModel) else model
        if not self.model.has_secret_key:
            raise veil.Error("BatchedEncDataset: the model has no secret key; call keygen() or load_keys(dir) first")
        self.batch = self.model.batch if batch is None else int(batch)
        if not 1 <= self.batch <= self.model.batch:
            raise ValueError(f"BatchedEncDataset: batch must be in [1, {self.model.batch}] (the model's batch)")
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        first = index * self.batch
        rows, targets = [], []
        for i in range(first, min(first + self.batch, len(self.dataset))):
            x, y = _item(self.dataset, i, self.transform)
            rows.append(x.reshape(-1))
            targets.append(y)
        return self.model.encrypt(np.stack(rows)), targets


class EncryptedModel:
    """A torch model converted to Veil (convert_model): the compiled model file, keys,
    and encrypted or plain evaluation.

    model: the veil.Model (keygen / encrypt / run / decrypt / save_keys / load_keys).
    file: the model file's bytes (what `veil compile` writes; `veil serve` loads it).
    """

    def __init__(self, file: bytes, backend: str = "cpu", insecure: bool = False):
        self.file = bytes(file)
        self.model = veil.Model(self.file, backend, insecure)

    def __repr__(self) -> str:
        m = self.model
        return (f"EncryptedModel({m.name!r}: input {m.input_shape}, {m.output_size} outputs, N = 2^{m.log_n}, "
                f"{m.batch} inputs per run, {m.measured_bits:.1f} bits measured)")

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def batch(self) -> int:
        return self.model.batch

    def explain(self) -> str:
        """Parameters, keys, precision and bytes per query (`veil info`)."""
        return self.model.explain()

    def save(self, path) -> None:
        """Writes the model file (NAME.veil) for `veil serve` or another process."""
        with open(os.fspath(path), "wb") as f:
            f.write(self.file)

    def _rows(self, x) -> np.ndarray:
        a = _numpy(x)
        return a.reshape(1, -1) if a.size == self.model.input_size else a.reshape(a.shape[0], -1)

    def plain(self, x) -> np.ndarray:
        """The converted model in float64 without encryption: the quick accuracy check
        (polynomial activations and folded layers as the encrypted run computes them).
        x: one input or a batch (first dimension)."""
        return self.model.forward(self._rows(x))

    def predict(self, x) -> np.ndarray:
        """Encrypts x here, runs the model on the ciphertexts, decrypts: what a client and
        server do together, in one process (keys made on first use)."""
        if not self.model.has_secret_key:
            self.model.keygen()
        return self.model.decrypt(self.model.run(self.model.encrypt(self._rows(x))))

    def __call__(self, x, mode: str = "encrypted"):
        """mode "encrypted" (predict) or "plain"; returns a torch float64 tensor."""
        if mode not in ("encrypted", "plain"):
            raise ValueError('mode must be "encrypted" or "plain"')
        out = self.predict(x) if mode == "encrypted" else self.plain(x)
        return torch.from_numpy(out)


def convert_model(model: torch.nn.Module, dummy_input: torch.Tensor, precision_bits: float = 12, *,
                  name: str = "model", batch: int = 0, packing: str = "taps",
                  input_range: Sequence[float] = (0.0, 1.0), activation_bound: float = 0.0,
                  activation_degree: int = 15, max_log_n: int = 16, opset: int = 13,
                  backend: str = "cpu") -> EncryptedModel:
    """A torch model as an encrypted one, with no code changes (ChemXor: convert_model).

    The model is exported to ONNX (in memory, eval mode) with `dummy_input`'s shape
    (batch 1), imported by Veil's importer (multi-channel convs with padding and
    strides, pooling, BatchNorm, residual blocks, linear layers, polynomial activations:
    docs/models.md) and compiled with automatic parameters: the smallest ring whose
    measured precision keeps the promise of `precision_bits` on inputs in
    `input_range`. Relu / Sigmoid need `activation_bound` (their inputs' range) to be
    replaced by polynomials. Errors name the unsupported node (veil.Error).
    """
    was_training = model.training
    model.eval()
    buffer = io.BytesIO()
    try:
        with torch.no_grad():
            torch.onnx.export(model, dummy_input, buffer, input_names=["input"], output_names=["output"],
                              opset_version=opset, training=torch.onnx.TrainingMode.EVAL)
    finally:
        model.train(was_training)
    lo, hi = (float(v) for v in input_range)
    file = veil.compile_onnx(buffer.getvalue(), name=name, promise_bits=float(precision_bits), batch=batch,
                             packing=packing, input_min=lo, input_max=hi, max_log_n=max_log_n,
                             activation_bound=float(activation_bound), activation_degree=activation_degree)
    return EncryptedModel(file, backend)


def serve(models, host: str = "127.0.0.1", port: int = 0, **options: Any) -> veil.Server:
    """Starts Veil's model server in this process (ChemXor: serve); returns the running
    veil.Server (a context manager; .url, .stop()). models: EncryptedModels, model file
    paths or bytes, one or a list. It never holds a secret key."""
    if not isinstance(models, (list, tuple)):
        models = [models]
    files = [m.file if isinstance(m, EncryptedModel) else m for m in models]
    return veil.Server(files, host=host, port=port, **options).start()


def query(url: str, inputs, model: Optional[str] = None, cache_dir: Optional[str] = None) -> torch.Tensor:
    """Encrypts `inputs` (a tensor or array: one input, or one per first index), queries
    the server once per batch, decrypts: a float64 tensor of one output row per input
    (ChemXor: query). Keys are made once and cached in cache_dir (~/.cache/veil)."""
    a = _numpy(inputs)
    if a.ndim > 2:
        a = a.reshape(a.shape[0], -1)
    return torch.from_numpy(np.asarray(veil.query(url, a, model=model, cache_dir=cache_dir)))
