"""Pooling options people port from PyTorch: ceil_mode, count_include_pad, divisor_override,
return_indices, and adaptive_max_pool2d.  Checked against window loops written from
PyTorch's definition (under every kernel setting), against PyTorch, and by finite
differences."""
import math

import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import nn

RNG = np.random.default_rng(8)
X = RNG.standard_normal((2, 3, 8, 7))     # shapes where ceil_mode and its trim rule matter

AVG = [dict(kernel_size=3, stride=2, ceil_mode=True),
       dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
       dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
       dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), ceil_mode=True,
            count_include_pad=False),
       dict(kernel_size=2, stride=2, padding=1, ceil_mode=True, divisor_override=3)]
MAX = [dict(kernel_size=3, stride=2, ceil_mode=True),
       dict(kernel_size=2, stride=2, padding=1, ceil_mode=True),
       dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 0), ceil_mode=True)]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def pool_loops(x, kind, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """PyTorch's definition, one window at a time."""
    (kh, kw), (ph, pw) = _pair(kernel_size), _pair(padding)
    sh, sw = _pair(stride) if stride is not None else (kh, kw)
    n, c, h, w = x.shape

    def out_size(size, k, s, p):
        if not ceil_mode:
            return (size + 2 * p - k) // s + 1
        o = math.ceil((size + 2 * p - k) / s) + 1
        return o - 1 if (o - 1) * s >= size + p else o

    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    y = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * sh - ph, j * sw - pw
            h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
            window = x[:, :, max(h0, 0):min(h1, h), max(w0, 0):min(w1, w)]
            if kind == "max":
                y[:, :, i, j] = window.max(axis=(2, 3))
                continue
            if divisor_override:
                count = divisor_override
            elif count_include_pad:
                count = (h1 - h0) * (w1 - w0)
            else:
                count = window.shape[2] * window.shape[3]
            y[:, :, i, j] = window.sum(axis=(2, 3)) / count
    return y


@pytest.mark.parametrize("options", AVG, ids=str)
def test_avg_pool_options_match_loops_under_every_kernel(options, each_kernel):
    y = F.avg_pool2d(tn.tensor(X), **options).numpy()
    np.testing.assert_allclose(y, pool_loops(X, "avg", **options), rtol=1e-12, atol=1e-14)
    assert tn.gradcheck(lambda x: F.avg_pool2d(x, **options), X)


@pytest.mark.parametrize("options", MAX, ids=str)
def test_max_pool_ceil_mode_matches_loops_under_every_kernel(options, each_kernel):
    y = F.max_pool2d(tn.tensor(X), **options).numpy()
    np.testing.assert_array_equal(y, pool_loops(X, "max", **options))
    assert tn.gradcheck(lambda x: F.max_pool2d(x, **options), X)


def _vs_torch(ours, theirs, x=X):
    torch = pytest.importorskip("torch")
    a, b = tn.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = ours(a), theirs(b)
    if isinstance(y, tuple):
        np.testing.assert_array_equal(y[1].numpy(), yt[1].numpy())
        y, yt = y[0], yt[0]
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    u = RNG.standard_normal(y.shape)
    y.backward(u)
    yt.backward(torch.tensor(u))
    np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("options", AVG, ids=str)
def test_avg_pool_options_match_torch(options):
    torch = pytest.importorskip("torch")
    _vs_torch(nn.AvgPool2d(**options), torch.nn.AvgPool2d(**options))


@pytest.mark.parametrize("options", MAX, ids=str)
def test_max_pool_options_and_indices_match_torch(options):
    torch = pytest.importorskip("torch")
    _vs_torch(nn.MaxPool2d(**options, return_indices=True),
              torch.nn.MaxPool2d(**options, return_indices=True))


@pytest.mark.parametrize("size", [(3, 4), 5, (2, None), 1, (7, 6)])
def test_adaptive_max_pool_matches_torch(size):
    torch = pytest.importorskip("torch")
    _vs_torch(nn.AdaptiveMaxPool2d(size, return_indices=True),
              torch.nn.AdaptiveMaxPool2d(size, return_indices=True))


def test_adaptive_max_pool_by_hand_and_gradcheck(each_kernel):
    x = np.arange(10.0).reshape(1, 1, 2, 5)
    # width 5 into 3 bins: columns 0-1, 1-3, 3-4 (PyTorch's floor/ceil bins overlap)
    y, idx = F.adaptive_max_pool2d(tn.tensor(x), (1, 3), return_indices=True)
    np.testing.assert_array_equal(y.numpy(), [[[[6.0, 8.0, 9.0]]]])
    np.testing.assert_array_equal(idx.numpy(), [[[[6, 8, 9]]]])
    assert tn.gradcheck(lambda t: F.adaptive_max_pool2d(t, (3, 4)), X)


def test_pool_option_errors():
    with pytest.raises(ValueError, match="divisor_override must be a positive int"):
        F.avg_pool2d(tn.tensor(X), 2, divisor_override=0)
    with pytest.raises(ValueError, match="max_pool2d: dilation must be 1"):
        F.max_pool2d(tn.tensor(X), 2, dilation=2)
    with pytest.raises(ValueError, match="adaptive_max_pool2d: output_size must be >= 1"):
        F.adaptive_max_pool2d(tn.tensor(X), 0)
