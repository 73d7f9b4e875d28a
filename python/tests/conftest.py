"""Shared fixtures: small, fast contexts (N = 2^13). The explicit chain is above the
128-bit bound for N = 2^13 (insecure=True: tests only) so that chains of several
multiplications fit; one test uses a real preset."""

import numpy as np
import pytest

import veil


def bits(got, want):
    """Precision in bits: -log2 of the max absolute error over max(1, max |want|)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    ref = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    return float("inf") if err == 0 else -np.log2(err / ref)


@pytest.fixture(scope="session")
def ctx():
    return veil.Context(log_n=13, q_bits=[60, 40, 40, 40, 40, 40], p_bits=[60, 60], insecure=True)


@pytest.fixture(scope="session")
def other_ctx():
    return veil.Context(log_n=13, q_bits=[60, 40, 40, 40, 40, 40], p_bits=[60, 60], insecure=True)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
