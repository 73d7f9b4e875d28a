"""Veil: RNS-CKKS homomorphic encryption (C++/CUDA engine) for Python.

Encrypt numpy arrays (or torch tensors), compute on them encrypted, decrypt::

    import numpy as np, veil
    ctx = veil.Context.preset(14)            # TenSEAL: ts.context(...) + keys
    x = ctx.encrypt(np.array([1.0, 2.0, 3.0]))  # TenSEAL: ts.ckks_vector
    y = (x * x + 1).mm(np.ones((3, 2)))      # x @ W, TenSEAL: enc.mm(W)
    print(y.decrypt())

Names are Veil's own; where TenSEAL users know a name, the docstring says which.
Errors from the engine are raised as ``veil.Error`` (a RuntimeError) with Veil's
message and ``.code`` (e.g. "MissingKey", "Serialization"). ``veil.torch`` (datasets,
model conversion) is imported only when torch is installed.
"""

from __future__ import annotations

import os
import tempfile

import numpy as _np

from . import _veil
from ._veil import (  # noqa: F401
    Client,
    Context,
    EncryptedBatch,
    Error,
    Model,
    Vector,
    compile_onnx,
    model_forward,
    model_info,
    onnx_available,
    pack_vectors,
)

__all__ = [
    "Client",
    "Context",
    "EncryptedBatch",
    "Error",
    "Model",
    "Server",
    "Vector",
    "compile_onnx",
    "load",
    "load_context",
    "load_vector",
    "model_forward",
    "model_info",
    "onnx_available",
    "pack_vectors",
    "query",
]
__version__ = "0.1.0"


# ---- Context: serialization and pickling ----

def _context_serialize(self, secret_key: bool = False) -> bytes:
    """Parameters, public, relinearization and Galois keys as one blob sequence; the
    secret key too only with secret_key=True (TenSEAL: serialize(save_secret_key=...))."""
    return _veil._serialize_context(self, secret_key)


def load_context(data: bytes, backend: str = "cpu", insecure: bool = False) -> Context:
    """A Context from Context.serialize() bytes (TenSEAL: ts.context_from). Every blob is
    validated; insecure=True is needed to load parameters marked insecure."""
    return _veil._load_context(bytes(data), backend, insecure)


def _context_reduce(self):
    # Pickling never carries the secret key: serialize(secret_key=True) says so explicitly.
    return (load_context, (self.serialize(secret_key=False), self.backend, self.insecure))


Context.serialize = _context_serialize
Context.load = staticmethod(load_context)
Context.__reduce__ = _context_reduce


# ---- Vector: serialization, pickling, loading ----

def _vector_serialize(self) -> bytes:
    """The ciphertext (seed-compressed when fresh) with its size and layout
    (TenSEAL: serialize()). Load with veil.load_vector(context, data)."""
    return _veil._serialize_vector(self)


def load_vector(context: Context, data: bytes) -> Vector:
    """A Vector of `context` from Vector.serialize() bytes, or from a bare ciphertext blob
    (the CLI's; then every slot is a value). TenSEAL: ts.ckks_vector_from(ctx, data)."""
    return _veil._load_vector(context, bytes(data))


def _restore_vector(data: bytes, params: bytes, insecure: bool, origin=None) -> Vector:
    # Back in the process that pickled it: its own context when still alive; else the
    # newest live context of the same parameters; else a key-less one of them.
    ctx_id = origin[1] if origin and origin[0] == os.getpid() else 0
    ctx = _veil._context_for_parameters(params, insecure, ctx_id)
    return _veil._load_vector(ctx, data)


def _vector_reduce(self):
    ctx = self.context
    origin = (os.getpid(), _veil._context_id(ctx))
    return (_restore_vector, (self.serialize(), _veil._parameters_blob(ctx), ctx.insecure, origin))


Vector.serialize = _vector_serialize
Vector.__reduce__ = _vector_reduce
# numpy defers to Vector.__radd__ / __rmul__ / ... for `array + vector`.
Vector.__array_ufunc__ = None


def load(context_or_data, data: bytes | None = None, *, backend: str = "cpu", insecure: bool = False):
    """Loads what serialize() wrote, by its type: ``veil.load(data)`` for a Context,
    ``veil.load(context, data)`` for a Vector (or a bare ciphertext blob)."""
    if data is None:
        blob = bytes(context_or_data)
        kind = _veil._blob_type(blob)
        if kind == 1:
            return load_context(blob, backend, insecure)
        if kind == -1 or kind == 2:
            raise ValueError("veil.load: a vector needs its context: veil.load(context, data)")
        raise Error("veil.load: not a serialized Veil context")
    if not isinstance(context_or_data, Context):
        raise TypeError("veil.load(context, data): the first argument must be a veil.Context")
    return load_vector(context_or_data, data)


# ---- serving and querying ----

class Server:
    """The model server in this process (serve::ModelServer; ChemXor: the Flask server).

    models: compiled model files (paths, or the bytes compile_onnx returns). Sessions'
    evaluation keys go to `key_store` (a directory or redis://HOST:PORT), by default a
    temporary directory removed at stop(). A context manager: ``with veil.Server([m]) as s:``.
    """

    def __init__(self, models, host: str = "127.0.0.1", port: int = 0, threads: int = 2,
                 key_store: str | None = None, backend: str = "cpu", insecure: bool = False):
        if isinstance(models, (bytes, str, os.PathLike)):
            models = [models]
        self._tmp = None
        if key_store is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="veil-keys-")
            key_store = os.path.join(self._tmp.name, "sessions")
        self.host = host
        self._server = _veil._Server(list(models), key_store, host, port, threads, backend, insecure)
        self._started = False

    def start(self) -> "Server":
        self._server.start()
        self._started = True
        return self

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._started = False
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "Server":
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def query(url: str, inputs, model: str | None = None, cache_dir: str | None = None,
          timeout: int = 300) -> _np.ndarray:
    """Encrypts `inputs` (2-D: one row per input, or one input), sends them to a Veil
    server, decrypts the answers: one output row per input (ChemXor: query). Keys are
    cached in cache_dir (default ~/.cache/veil)."""
    client = Client(url, model or "", cache_dir or "", timeout)
    try:
        return client.infer(inputs)
    finally:
        client.close()

