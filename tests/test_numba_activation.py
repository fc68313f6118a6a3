"""The Numba ReLU kernels (kernels/numba_activation.py) against the plain NumPy code of
functional/activation.py, which ``kernels.use("numpy")`` selects: bitwise-equal outputs and
gradients, NaN, inf and signed zeros included, on odd shapes, float32 and float64."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import kernels
from tinynet.functional import activation

pytest.importorskip("numba")

# large enough for the kernels (activation._NUMBA_RELU_MIN_SIZE), sizes no block divides
SHAPES = [(4097,), (3, 7, 13, 17), (2, 5, 31, 29), (1, 1, 64, 65)]


def with_specials(rng, shape, dtype):
    """Normal values with NaN, +-inf and +-0 sprinkled in."""
    a = rng.standard_normal(shape).astype(dtype)
    flat = a.reshape(-1)
    where = rng.choice(flat.size, size=min(60, flat.size), replace=False)
    flat[where] = np.resize(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype), where.size)
    return a


def relu_and_grad(setting, x, g):
    with kernels.use(setting):
        xt = tn.tensor(x, requires_grad=True)
        y = F.relu(xt)
        y.backward(g)
    return y.numpy(), xt.grad


def same_bits(a, b):
    """Equal including NaN positions and the sign of zeros."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.filterwarnings("ignore:invalid value encountered")    # inf * 0, on purpose
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_numba_relu_matches_numpy_path(shape, dtype, rng):
    x = with_specials(rng, shape, dtype)
    g = with_specials(rng, shape, dtype)          # inf/NaN upstream where y = 0: g * 0 = NaN
    y_fast, gx_fast = relu_and_grad("auto", x, g)
    y_plain, gx_plain = relu_and_grad("numpy", x, g)
    assert same_bits(y_fast, y_plain)
    assert same_bits(gx_fast, gx_plain)
    # and against the definition, not only the other code path
    np.testing.assert_array_equal(y_fast, np.where(np.isnan(x) | (x > 0), x, 0))
    keep = np.isnan(x) | (x > 0)
    np.testing.assert_array_equal(gx_fast[keep], g[keep])
    np.testing.assert_array_equal(gx_fast[~keep], g[~keep] * 0)


def test_numba_relu_of_a_noncontiguous_input(rng):
    x = rng.standard_normal((6, 5, 40, 40))[:, :, ::2].transpose(0, 2, 1, 3)
    g = rng.standard_normal(x.shape)
    y_fast, gx_fast = relu_and_grad("auto", x, g)
    y_plain, gx_plain = relu_and_grad("numpy", x, g)
    assert same_bits(np.ascontiguousarray(y_fast), np.ascontiguousarray(y_plain))
    assert same_bits(np.ascontiguousarray(gx_fast), np.ascontiguousarray(gx_plain))


def test_numba_relu_is_the_path_taken(rng, monkeypatch):
    """'auto' runs the Numba kernels, 'numpy' and 'reference' the plain code."""
    from tinynet.kernels import numba_activation

    def broken(*args):
        raise RuntimeError("numba kernel called")
    monkeypatch.setattr(numba_activation, "relu_forward", broken)
    x = tn.tensor(rng.standard_normal((4, 3, 32, 32)).astype(np.float32))
    assert x.numpy().size >= activation._NUMBA_RELU_MIN_SIZE
    for setting in ("numpy", "reference"):
        with kernels.use(setting):
            F.relu(x)
    with kernels.use("auto"), pytest.raises(RuntimeError, match="numba kernel called"):
        F.relu(x)
