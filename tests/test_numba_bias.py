"""The conv bias kernels (kernels/numba_bias.py) against their NumPy lines
(kernels/__init__.py: add_bias, bias_grad), which ``kernels.use("numpy")`` selects: the add bitwise, dL/db to the
float rounding of a sum (the kernel accumulates in float64), through F.conv2d too."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import kernels

pytest.importorskip("numba")
from tinynet.kernels import numba_bias, numba_threads  # noqa: E402

SHAPES = [(3, 5, 13, 17), (2, 7, 31, 29), (1, 1, 64, 65), (4, 3, 1, 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_add_bias_equals_numpy_broadcast(shape, dtype, rng):
    y = rng.standard_normal(shape).astype(dtype)
    bias = rng.standard_normal(shape[1]).astype(dtype)
    want = y + bias.reshape(1, -1, 1, 1)
    numba_bias.add_bias(y, bias)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("shape", SHAPES)
def test_bias_grad_is_the_sum_over_batch_and_plane(shape, rng):
    grad = rng.standard_normal(shape) + 3.0            # an offset makes rounding visible
    exact = grad.sum(axis=(0, 2, 3))
    np.testing.assert_allclose(numba_bias.bias_grad(grad), exact, rtol=1e-13)
    grad32 = grad.astype(np.float32)
    got = numba_bias.bias_grad(grad32)
    assert got.dtype == np.float32
    exact32 = grad32.astype(np.float64).sum(axis=(0, 2, 3))
    # float64 accumulation: within one float32 rounding of the exact sum
    np.testing.assert_allclose(got, exact32, rtol=2 ** -23, atol=0)


def test_splitting_over_threads_changes_no_bit(rng, monkeypatch):
    grad = rng.standard_normal((3, 9, 20, 20)).astype(np.float32)
    y, bias = rng.standard_normal(grad.shape).astype(np.float32), rng.standard_normal(9)
    results = []
    for threads in (1, 3):
        monkeypatch.setattr(numba_threads, "THREADS", threads)
        monkeypatch.setattr(numba_threads, "MIN_ELEMENTS_TO_SPLIT", 0)
        out = y.copy()
        numba_bias.add_bias(out, bias)
        results.append((out, numba_bias.bias_grad(grad)))
    for a, b in zip(*results):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_conv2d_with_bias_uses_the_kernels_and_matches_numpy(dtype, tolerance, rng,
                                                             monkeypatch):
    # y: 2x8x64x64, the minimum; 16 input channels: im2col's layer (a first layer's
    # forward adds the bias itself, numba_first_layer.py)
    x = rng.standard_normal((2, 16, 64, 64)).astype(dtype)
    weight = rng.standard_normal((8, 16, 3, 3)).astype(dtype)
    bias = rng.standard_normal(8).astype(dtype)
    grad = rng.standard_normal((2, 8, 64, 64)).astype(dtype)
    assert grad.size >= kernels._NUMBA_BIAS_MIN_SIZE
    used = []
    for name in ("add_bias", "bias_grad"):
        original = getattr(numba_bias, name)
        monkeypatch.setattr(numba_bias, name,
                            lambda *a, _f=original, _n=name: used.append(_n) or _f(*a))
    results = []
    for setting in ("auto", "numpy"):
        with kernels.use(setting):
            xt, wt, bt = (tn.tensor(a, requires_grad=True) for a in (x, weight, bias))
            y = F.conv2d(xt, wt, bt, padding=1)
            y.backward(grad)
            results.append((y.numpy(), bt.grad))
    assert used == ["add_bias", "bias_grad"]           # under 'auto' only
    for got, want in zip(*results):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * np.abs(want).max())
