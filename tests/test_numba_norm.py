"""The Numba batch-norm kernels (kernels/numba_norm.py) against the plain NumPy code of
functional/norm.py, which ``kernels.use("numpy")`` selects: outputs, all three gradients and
the running statistics, on random shapes, in float32 and float64, training and eval."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import kernels

pytest.importorskip("numba")


def run_batch_norm(setting, x, w, b, g, rm, rv, training, momentum=0.1):
    """y, dL/dx, dL/dw, dL/db and the running stats after one step under ``setting``."""
    rm, rv = rm.copy(), rv.copy()
    with kernels.use(setting):
        xt = tn.tensor(x, requires_grad=True)
        wt = None if w is None else tn.tensor(w, requires_grad=True)
        bt = None if b is None else tn.tensor(b, requires_grad=True)
        y = F.batch_norm(xt, rm, rv, wt, bt, training=training, momentum=momentum)
        y.backward(g)
    return (y.numpy(), xt.grad, None if wt is None else wt.grad,
            None if bt is None else bt.grad, rm, rv)


SHAPES = [(7, 3), (2, 1), (5, 4, 9), (3, 5, 6, 7), (8, 16, 4, 4), (1, 2, 3, 3)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_numba_batch_norm_matches_numpy_path(shape, dtype, training, affine, rng):
    c = shape[1]
    # an offset mean and a spread scale per channel, as after a convolution
    x = (rng.standard_normal(shape) * rng.uniform(0.1, 5, (1, c) + (1,) * (len(shape) - 2))
         + rng.uniform(-10, 10, (1, c) + (1,) * (len(shape) - 2))).astype(dtype)
    w = rng.uniform(-2, 2, c).astype(dtype) if affine in ("both", "weight") else None
    b = rng.standard_normal(c).astype(dtype) if affine in ("both", "bias") else None
    g = rng.standard_normal(shape).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    fast = run_batch_norm("auto", x, w, b, g, rm, rv, training)
    plain = run_batch_norm("numpy", x, w, b, g, rm, rv, training)
    tol = 2e-5 if dtype == np.float32 else 1e-11
    for name, got, want in zip(["y", "dx", "dw", "db", "running_mean", "running_var"],
                               fast, plain):
        if want is None:
            assert got is None, name
            continue
        assert got.dtype == dtype, name
        scale = max(np.abs(want).max(), 1.0)
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=name)


def test_numba_batch_norm_is_the_path_taken(rng, monkeypatch):
    """'auto' runs the Numba kernels, 'numpy' and 'reference' the plain code (a kernel
    that is replaced by one that fails shows which path ran)."""
    from tinynet.kernels import numba_norm

    def broken(*args):
        raise RuntimeError("numba kernel called")
    monkeypatch.setattr(numba_norm, "channel_mean_var", broken)
    x = tn.tensor(rng.standard_normal((4, 3, 2, 2)).astype(np.float32))
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    for setting in ("numpy", "reference"):
        with kernels.use(setting):
            F.batch_norm(x, rm, rv, training=True)
    with kernels.use("auto"), pytest.raises(RuntimeError, match="numba kernel called"):
        F.batch_norm(x, rm, rv, training=True)


@pytest.mark.parametrize("offset", [1e3, 1e5])
def test_numba_variance_of_offset_float32_data_is_accurate(offset, rng):
    """Shifted float64 sums: a channel whose mean is far larger than its spread keeps its
    variance (the naive float32 E[x^2] - E[x]^2 loses every digit at offset 1e3)."""
    x = (offset + rng.standard_normal((64, 4, 8, 8))).astype(np.float32)
    from tinynet.kernels import numba_norm
    mean, var = numba_norm.channel_mean_var(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(var, x64.var(axis=(0, 2, 3)), rtol=1e-9)


@pytest.mark.parametrize("training", [True, False])
def test_numba_batch_norm_gradcheck(training, rng):
    x = rng.standard_normal((3, 2, 3, 2)) * 2 + 1
    w, b = rng.uniform(0.5, 1.5, 2), rng.standard_normal(2)
    rm, rv = rng.standard_normal(2), rng.uniform(0.5, 2, 2)
    with kernels.use("numba"):
        assert tn.gradcheck(lambda x, w, b: F.batch_norm(x, rm.copy(), rv.copy(), w, b,
                                                         training=training),
                            x, w, b, seed=1)
