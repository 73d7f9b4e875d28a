"""serialize / load and pickling of contexts and vectors, across contexts."""

import pickle

import numpy as np
import pytest

import veil
from conftest import bits


def test_vector_round_trip(ctx, rng):
    x = rng.uniform(-1, 1, 30)
    v = ctx.encrypt(x)
    data = v.serialize()
    assert isinstance(data, bytes)
    w = veil.load_vector(ctx, data)
    assert w.size == 30 and w.level == v.level and w.period == v.period
    assert bits(w.decrypt(), x) >= 25
    assert bits(veil.load(ctx, data).decrypt(), x) >= 25
    # a fresh secret-key encryption is seed-compressed: about one polynomial of 6 limbs
    assert len(data) < 8192 * 6 * 8 * 0.8


def test_vector_after_operations_keeps_its_layout(ctx, rng):
    x = rng.uniform(-1, 1, 12)
    w = rng.uniform(-1, 1, (12, 5))
    y = ctx.encrypt(x).mm(w)
    z = veil.load_vector(ctx, y.serialize())
    assert z.size == 5 and z.period == y.period
    assert bits(z.square().decrypt(), (x @ w) ** 2) >= 20


def test_context_serialization_keeps_the_secret_key_only_when_asked(ctx, rng):
    pub = veil.load(ctx.serialize(), insecure=True)
    assert not pub.has_secret_key and pub.has_public_key and pub.has_relin_key
    full = veil.Context.load(ctx.serialize(secret_key=True), insecure=True)
    assert full.has_secret_key
    x = rng.uniform(-1, 1, 10)
    assert bits(full.encrypt(x).decrypt(), x) >= 25
    # the secret key is the same: full decrypts what ctx encrypted
    assert bits(veil.load_vector(full, ctx.encrypt(x).serialize()).decrypt(), x) >= 25
    # insecure parameters are refused unless the caller allows them
    with pytest.raises(veil.Error) as e:
        veil.load(ctx.serialize())
    assert e.value.code == "Serialization"


def test_public_context_evaluates_secret_context_decrypts(ctx, rng):
    server = veil.load(ctx.public().serialize(), insecure=True)
    x, y = rng.uniform(-1, 1, 16), rng.uniform(-1, 1, 16)
    w = rng.uniform(-1, 1, (16, 4))
    ctx.generate_galois_keys([1, 2, 3, 4, 8, 12])  # what the server's mm needs, made by the client
    server = veil.load(ctx.public().serialize(), insecure=True)
    a = veil.load_vector(server, ctx.encrypt(x).serialize())
    b = veil.load_vector(server, ctx.encrypt(y).serialize())
    result = ((a * b + 1) @ w).serialize()
    # the server cannot decrypt
    with pytest.raises(veil.Error):
        veil.load_vector(server, result).decrypt()
    assert bits(veil.load_vector(ctx, result).decrypt(), (x * y + 1) @ w) >= 20
    # encryption with the public key only
    c = server.encrypt(x)
    assert bits(veil.load_vector(ctx, c.serialize()).decrypt(), x) >= 25


def test_pickle_context_never_carries_the_secret_key(ctx):
    data = pickle.dumps(ctx)
    pub = pickle.loads(data)
    assert not pub.has_secret_key and pub.fingerprint == ctx.fingerprint
    assert len(data) < len(ctx.serialize(secret_key=True))


def test_pickle_vector_links_to_a_live_context(ctx, rng):
    x = rng.uniform(-1, 1, 9)
    v = ctx.encrypt(x) * 2
    w = pickle.loads(pickle.dumps(v))
    assert w.size == 9 and w.level == v.level
    assert w.context.fingerprint == ctx.fingerprint and w.context.has_secret_key
    assert bits(w.decrypt(), 2 * x) >= 20
    assert bits((w + v).decrypt(), 4 * x) >= 20  # the same context: they combine


def test_link_moves_a_vector_between_contexts_of_the_same_parameters(ctx, other_ctx, rng):
    x = rng.uniform(-1, 1, 4)
    v = veil.load_vector(ctx.public(), ctx.encrypt(x).serialize())
    full = veil.Context.load(ctx.serialize(secret_key=True), insecure=True)
    assert v.link(full) is v
    assert bits(v.decrypt(), x) >= 25
    # decrypt(context=...) with another context of the same parameters and keys
    assert bits(ctx.encrypt(x).decrypt(full), x) >= 25
    small = veil.Context(log_n=13, q_bits=[60, 40], p_bits=[60], insecure=True)
    with pytest.raises(veil.Error) as e:
        ctx.encrypt(x).link(small)
    assert e.value.code == "ContextMismatch"
