"""Bad inputs raise Python exceptions (veil.Error, ValueError, TypeError) and the
interpreter keeps working afterwards."""

import numpy as np
import pytest

import veil
from conftest import bits


def test_error_is_a_runtime_error_with_a_code():
    assert issubclass(veil.Error, RuntimeError)


def test_truncated_and_corrupted_blobs(ctx, rng):
    data = ctx.encrypt(rng.uniform(-1, 1, 8)).serialize()
    for cut in (0, 3, 10, 30, len(data) // 2, len(data) - 1):
        with pytest.raises(veil.Error) as e:
            veil.load_vector(ctx, data[:cut])
        assert e.value.code == "Serialization"
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    with pytest.raises(veil.Error):
        veil.load_vector(ctx, bytes(flipped))
    ctx_data = ctx.serialize()
    with pytest.raises(veil.Error):
        veil.load(ctx_data[: len(ctx_data) - 5], insecure=True)
    with pytest.raises(veil.Error):
        veil.load(b"not a veil blob at all, just some bytes")
    with pytest.raises(veil.Error):
        veil.load(ctx, ctx_data)  # a context blob where a vector is expected


def test_vector_of_another_context(ctx, other_ctx, rng):
    a = ctx.encrypt(rng.uniform(-1, 1, 4))
    b = other_ctx.encrypt(rng.uniform(-1, 1, 4))
    with pytest.raises(veil.Error) as e:
        a + b
    assert e.value.code == "ContextMismatch"
    with pytest.raises(veil.Error):
        a * b
    with pytest.raises(veil.Error):
        veil.pack_vectors([a, b])
    # decrypting with the wrong secret key gives noise, never a crash; loading into
    # contexts of other parameters is refused
    small = veil.Context(log_n=13, q_bits=[60, 40], p_bits=[60], insecure=True)
    with pytest.raises(veil.Error):
        veil.load_vector(small, a.serialize())


def test_public_context_cannot_decrypt(ctx, rng):
    pub = ctx.public()
    v = pub.encrypt(rng.uniform(-1, 1, 4))
    with pytest.raises(veil.Error) as e:
        v.decrypt()
    assert e.value.code == "MissingKey" and "secret key" in str(e.value)
    with pytest.raises(veil.Error):
        pub.serialize(secret_key=True)


def test_bad_values_shapes_and_types(ctx, rng):
    with pytest.raises(ValueError):
        ctx.encrypt([1.0, float("nan")])
    with pytest.raises(ValueError):
        ctx.encrypt([float("inf")])
    with pytest.raises(ValueError):
        ctx.encrypt(np.zeros(ctx.slots + 1))
    with pytest.raises(ValueError):
        ctx.encrypt([])
    with pytest.raises(TypeError):
        ctx.encrypt("abc")
    with pytest.raises(TypeError):
        ctx.encrypt([1, "x"])
    v = ctx.encrypt(rng.uniform(-1, 1, 6))
    with pytest.raises(ValueError):
        v + np.ones(5)
    with pytest.raises(ValueError):
        v + ctx.encrypt(np.ones(5))
    with pytest.raises(ValueError):
        v * float("nan")
    with pytest.raises(ValueError):
        v.mm(np.ones((5, 3)))
    with pytest.raises(ValueError):
        v.mm(np.ones(6))
    with pytest.raises(ValueError):
        v.polyval([])
    with pytest.raises(TypeError):
        v + "abc"
    with pytest.raises(ValueError):
        v.conv2d_im2col(np.ones((3, 3)), 4)  # not an im2col encoding
    enc, windows = ctx.im2col_encode(np.ones((8, 8)), 3, 1)
    with pytest.raises(veil.Error):
        enc.conv2d_im2col(np.ones((3, 3)), windows + 1)
    with pytest.raises(ValueError):
        enc.conv2d_im2col(np.ones((2, 2)), windows)
    with pytest.raises(ValueError):
        ctx.im2col_encode(np.ones((2, 2)), 3, 1)
    with pytest.raises(ValueError):
        veil.Context(log_n=13, backend="tpu", insecure=True)


def test_levels_run_out_cleanly(ctx, rng):
    v = ctx.encrypt(rng.uniform(-1, 1, 4))
    for _ in range(ctx.max_level):
        v = v * 1.5
    assert v.level == 0
    with pytest.raises(veil.Error):
        v * v
    with pytest.raises(veil.Error):
        v.mm(np.ones((4, 2)))
    # the interpreter and the context still work
    x = rng.uniform(-1, 1, 4)
    assert bits((ctx.encrypt(x) * 2).decrypt(), 2 * x) >= 20
