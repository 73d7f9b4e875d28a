"""torch tensors are accepted wherever numpy arrays are."""

import numpy as np
import pytest

import veil
from conftest import bits

torch = pytest.importorskip("torch")


def test_torch_tensors_in(ctx):
    t = torch.linspace(-1, 1, 20, dtype=torch.float32, requires_grad=True)
    v = ctx.encrypt(t)
    x = t.detach().numpy().astype(np.float64)
    assert bits(v.decrypt(), x) >= 20
    w = torch.rand(20, 3, dtype=torch.float64)
    assert bits((v @ w).decrypt(), x @ w.numpy()) >= 20
    assert bits((v * torch.ones(20)).decrypt(), x) >= 20
    img = torch.rand(1, 10, 10)[0]
    enc, windows = ctx.im2col_encode(img, 3, 3)
    assert windows == 9
