"""Encrypt / decrypt and every vector operation against numpy, precision in bits."""

import numpy as np
import pytest

import veil
from conftest import bits

MIN_BITS = 20  # at the default scale 2^40; typical results are 25-35 bits


def test_context_properties(ctx):
    assert ctx.n == 8192 and ctx.slots == 4096
    assert ctx.max_level == 5
    assert ctx.scale == 2.0**40
    assert ctx.has_secret_key and ctx.has_public_key and ctx.has_relin_key
    assert ctx.insecure
    assert "8192" in ctx.describe() or "2^13" in ctx.describe()
    pub = ctx.public()
    assert not pub.has_secret_key and pub.has_public_key
    assert pub.fingerprint == ctx.fingerprint


def test_preset_is_secure_and_works():
    c = veil.Context.preset(13)
    assert not c.insecure and c.max_level == 2 and c.log_qp <= 218
    x = np.linspace(-1, 1, 100)
    assert bits(c.encrypt(x).decrypt(), x) >= 25


def test_explicit_parameters_refuse_insecure_chain():
    with pytest.raises(veil.Error) as e:
        veil.Context(log_n=13, q_bits=[60, 40, 40, 40, 40, 40], p_bits=[60])
    assert e.value.code == "InsecureParameters"


@pytest.mark.parametrize("size", [1, 7, 64, 4096])
def test_round_trip(ctx, rng, size):
    x = rng.uniform(-10, 10, size)
    v = ctx.encrypt(x)
    assert v.size == size and len(v) == size and v.level == ctx.max_level
    y = v.decrypt()
    assert isinstance(y, np.ndarray) and y.dtype == np.float64 and y.shape == (size,)
    assert bits(y, x) >= 25


def test_inputs_lists_and_2d_arrays_are_flattened(ctx):
    assert bits(ctx.encrypt([1, 2, 3]).decrypt(), [1, 2, 3]) >= 25
    m = np.arange(6.0).reshape(2, 3)
    assert bits(ctx.encrypt(m).decrypt(), m.ravel()) >= 25
    assert bits(ctx.encrypt(np.float32([0.5, 0.25])).decrypt(), [0.5, 0.25]) >= 25


def test_add_sub_with_vectors_arrays_scalars(ctx, rng):
    x, y = rng.uniform(-1, 1, 50), rng.uniform(-1, 1, 50)
    a, b = ctx.encrypt(x), ctx.encrypt(y)
    cases = {
        "a+b": (a + b, x + y),
        "a-b": (a - b, x - y),
        "a+y": (a + y, x + y),
        "y+a": (y + a, y + x),
        "a-y": (a - y, x - y),
        "y-a": (y - a, y - x),
        "a+2": (a + 2, x + 2),
        "3-a": (3 - a, 3 - x),
        "-a": (-a, -x),
        "neg": (a.neg(), -x),
        "add": (a.add(b), x + y),
    }
    for name, (got, want) in cases.items():
        assert bits(got.decrypt(), want) >= MIN_BITS, name
        assert got.level == ctx.max_level, name  # no level consumed


def test_mul_square_with_vectors_arrays_scalars(ctx, rng):
    x, y = rng.uniform(-1, 1, 50), rng.uniform(-1, 1, 50)
    a, b = ctx.encrypt(x), ctx.encrypt(y)
    cases = {
        "a*b": (a * b, x * y),
        "a*y": (a * y, x * y),
        "y*a": (y * a, y * x),
        "a*0.5": (a * 0.5, x * 0.5),
        "-3*a": (-3 * a, -3 * x),
        "square": (a.square(), x * x),
    }
    for name, (got, want) in cases.items():
        assert bits(got.decrypt(), want) >= MIN_BITS, name
        assert got.level == ctx.max_level - 1, name
    # mixed scales and levels (a*b has scale s^2/q, a has s): matched automatically
    got = a * b + a - 1
    assert bits(got.decrypt(), x * y + x - 1) >= MIN_BITS
    got = (a * b) * a + b.square()
    assert bits(got.decrypt(), x * y * x + y * y) >= MIN_BITS


def test_polyval_against_numpy(ctx, rng):
    x = rng.uniform(-1, 1, 100)
    coeffs = [0.5, -1.0, 0.25, 0.125]  # coeffs[0] first, like TenSEAL
    got = ctx.encrypt(x).polyval(coeffs)
    assert bits(got.decrypt(), np.polynomial.polynomial.polyval(x, coeffs)) >= MIN_BITS
    # a wider interval costs one more level and still matches inside it
    x4 = rng.uniform(-4, 4, 100)
    got = ctx.encrypt(x4).polyval([0, 1, 0.1], lo=-4, hi=4)
    assert bits(got.decrypt(), x4 + 0.1 * x4**2) >= MIN_BITS
    assert bits(ctx.encrypt(x).polyval([2.0]).decrypt(), np.full(100, 2.0)) >= MIN_BITS


def test_polyval_needs_levels(ctx, rng):
    v = ctx.encrypt(rng.uniform(-1, 1, 10))
    low = v.square().square().square().square()  # level 1
    assert low.level == 1
    with pytest.raises(veil.Error) as e:
        low.polyval([0, 1, 1, 1])
    assert e.value.code == "LevelMismatch" and "levels" in str(e.value)


@pytest.mark.parametrize("n_in,n_out", [(10, 4), (64, 16), (5, 33)])
def test_mm_against_numpy(ctx, rng, n_in, n_out):
    x = rng.uniform(-1, 1, n_in)
    w = rng.uniform(-1, 1, (n_in, n_out))
    y = ctx.encrypt(x).mm(w)
    assert y.size == n_out and y.level == ctx.max_level - 1
    assert bits(y.decrypt(), x @ w) >= MIN_BITS
    assert bits((ctx.encrypt(x) @ w).decrypt(), x @ w) >= MIN_BITS
    b = rng.uniform(-1, 1, n_out)
    assert bits(ctx.encrypt(x).mm(w, b).decrypt(), x @ w + b) >= MIN_BITS


def test_mm_chain_like_a_small_mlp(ctx, rng):
    x = rng.uniform(-1, 1, 20)
    w1, b1 = rng.uniform(-0.5, 0.5, (20, 32)), rng.uniform(-0.5, 0.5, 32)
    w2, b2 = rng.uniform(-0.5, 0.5, (32, 7)), rng.uniform(-0.5, 0.5, 7)
    w3 = rng.uniform(-0.5, 0.5, (7, 3))
    enc = ctx.encrypt(x).mm(w1, b1).square().mm(w2, b2) @ w3
    h = x @ w1 + b1
    h = (h * h) @ w2 + b2
    want = h @ w3
    assert enc.level == ctx.max_level - 4
    assert enc.size == 3
    assert bits(enc.decrypt(), want) >= MIN_BITS


def test_rotate_and_sum(ctx, rng):
    x = rng.uniform(-1, 1, 16)  # a power of two: rotate is np.roll
    v = ctx.encrypt(x)
    for k in (1, 3, -2, 17):
        assert bits(v.rotate(k).decrypt(), np.roll(x, -k)) >= MIN_BITS
    x5 = rng.uniform(-1, 1, 5)
    padded = np.concatenate([x5, np.zeros(3)])
    assert bits(ctx.encrypt(x5).rotate(2).decrypt(), np.roll(padded, -2)[:5]) >= MIN_BITS
    assert bits(ctx.encrypt(x5).sum().decrypt(), [x5.sum()]) >= MIN_BITS
    # sum after an operation that leaves junk past the size (masked first)
    assert bits((ctx.encrypt(x5) + 1).sum().decrypt(), [(x5 + 1).sum()]) >= MIN_BITS


def _conv2d(image, kernel, stride):
    k = kernel.shape[-1]
    oh = (image.shape[0] - k) // stride + 1
    ow = (image.shape[1] - k) // stride + 1
    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[i, j] = np.sum(image[i * stride:i * stride + k, j * stride:j * stride + k] * kernel)
    return out


def test_conv2d_im2col_against_numpy(ctx, rng):
    image = rng.uniform(0, 1, (12, 12))
    kernel = rng.uniform(-1, 1, (3, 3))
    enc, windows = ctx.im2col_encode(image, 3, 2)
    assert windows == 25
    out = enc.conv2d_im2col(kernel, windows)
    want = _conv2d(image, kernel, 2).ravel()
    assert out.size == windows and bits(out.decrypt(), want) >= MIN_BITS
    # several channels with a bias, then a dense layer on the packed channels
    kernels = rng.uniform(-1, 1, (3, 3, 3))
    bias = np.array([0.1, -0.2, 0.3])
    chans = enc.conv2d_im2col(kernels, windows, bias)
    assert len(chans) == 3
    wants = [_conv2d(image, kernels[c], 2).ravel() + bias[c] for c in range(3)]
    for c in range(3):
        assert bits(chans[c].decrypt(), wants[c]) >= MIN_BITS
    squared = [c.square() for c in chans]
    packed = veil.pack_vectors(squared)
    d = squared[0].period
    # each channel zero-padded to the period (the bias past the windows is masked away)
    flat = np.concatenate([np.concatenate([w**2, np.zeros(d - windows)]) for w in wants])[: packed.size]
    w = rng.uniform(-0.1, 0.1, (packed.size, 10))
    assert bits((packed @ w).decrypt(), flat @ w) >= MIN_BITS


def test_pack_vectors(ctx, rng):
    xs = [rng.uniform(-1, 1, 8) for _ in range(3)]
    packed = veil.pack_vectors([ctx.encrypt(x) for x in xs])
    assert packed.size == 24
    assert bits(packed.decrypt(), np.concatenate(xs)) >= MIN_BITS
    w = rng.uniform(-1, 1, (24, 5))
    assert bits(packed.mm(w).decrypt(), np.concatenate(xs) @ w) >= MIN_BITS
    # sizes below the period: each is zero-padded to it
    ys = [rng.uniform(-1, 1, 5) for _ in range(2)]
    packed = veil.pack_vectors([ctx.encrypt(y) for y in ys])
    assert bits(packed.decrypt(), np.concatenate([ys[0], np.zeros(3), ys[1]])) >= MIN_BITS


def test_galois_keys_on_demand_and_public_contexts(ctx, rng):
    secret = veil.Context(log_n=13, q_bits=[60, 40, 40], p_bits=[60], insecure=True)
    public = veil.load(secret.public().serialize(), insecure=True)
    assert not public.has_secret_key
    x = rng.uniform(-1, 1, 8)
    enc = veil.load_vector(public, secret.encrypt(x).serialize())
    with pytest.raises(veil.Error) as e:
        enc.rotate(3)
    assert e.value.code == "MissingKey" and "[3]" in str(e.value)
    secret.generate_galois_keys([3])
    public = veil.load(secret.public().serialize(), insecure=True)
    enc = veil.load_vector(public, secret.encrypt(x).serialize())
    rotated = veil.load_vector(secret, enc.rotate(3).serialize())
    assert bits(rotated.decrypt(), np.roll(x, -3)) >= MIN_BITS
