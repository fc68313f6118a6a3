"""The Numba ReLU and ReLU6 kernels (kernels/numba_activation.py) against the plain NumPy code of
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
    """Normal values (times 4, so that ReLU6's upper kink is crossed) with NaN, +-inf,
    +-0 and exactly 6 sprinkled in."""
    a = (4 * rng.standard_normal(shape)).astype(dtype)
    flat = a.reshape(-1)
    where = rng.choice(flat.size, size=min(60, flat.size), replace=False)
    flat[where] = np.resize(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 6.0], dtype),
                            where.size)
    return a


# op, its definition, where its slope is 1
OPS = {"relu": (F.relu, lambda x: np.where(np.isnan(x) | (x > 0), x, 0),
                lambda x: np.isnan(x) | (x > 0)),
       "relu6": (F.relu6, lambda x: np.where(x >= 6, 6, np.where(x < 0, 0, x)),  # as clip
                 lambda x: np.isnan(x) | ((x > 0) & (x < 6)))}


def relu_and_grad(setting, x, g, op="relu"):
    with kernels.use(setting):
        xt = tn.tensor(x, requires_grad=True)
        y = OPS[op][0](xt)
        y.backward(g)
    return y.numpy(), xt.grad


def same_bits(a, b):
    """Equal including NaN positions and the sign of zeros."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.filterwarnings("ignore:invalid value encountered")    # inf * 0, on purpose
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", sorted(OPS))
def test_numba_relu_matches_numpy_path(op, shape, dtype, rng):
    x = with_specials(rng, shape, dtype)
    g = with_specials(rng, shape, dtype)          # inf/NaN upstream where y = 0: g * 0 = NaN
    y_fast, gx_fast = relu_and_grad("auto", x, g, op)
    y_plain, gx_plain = relu_and_grad("numpy", x, g, op)
    assert same_bits(y_fast, y_plain)
    assert same_bits(gx_fast, gx_plain)
    # and against the definition, not only the other code path
    _, definition, slope_one = OPS[op]
    np.testing.assert_array_equal(y_fast, definition(x))
    assert same_bits(np.signbit(y_fast), np.signbit(definition(x)))   # signed zeros
    keep = slope_one(x)
    np.testing.assert_array_equal(gx_fast[keep], g[keep])
    np.testing.assert_array_equal(gx_fast[~keep], g[~keep] * 0)


def test_numba_relu_of_a_noncontiguous_input(rng):
    x = rng.standard_normal((6, 5, 40, 40))[:, :, ::2].transpose(0, 2, 1, 3)
    g = rng.standard_normal(x.shape)
    y_fast, gx_fast = relu_and_grad("auto", x, g)
    y_plain, gx_plain = relu_and_grad("numpy", x, g)
    assert same_bits(np.ascontiguousarray(y_fast), np.ascontiguousarray(y_plain))
    assert same_bits(np.ascontiguousarray(gx_fast), np.ascontiguousarray(gx_plain))


@pytest.mark.parametrize("op", sorted(OPS))
def test_numba_relu_is_the_path_taken(op, rng, monkeypatch):
    """'auto' runs the Numba kernels, 'numpy' and 'reference' the plain code."""
    from tinynet.kernels import numba_activation

    def broken(*args):
        raise RuntimeError("numba kernel called")
    monkeypatch.setattr(numba_activation, f"{op}_backward", broken)
    x = tn.tensor(rng.standard_normal((4, 3, 32, 32)).astype(np.float32), requires_grad=True)
    assert x.numpy().size >= activation._NUMBA_RELU_MIN_SIZE
    for setting in ("numpy", "reference"):
        with kernels.use(setting):
            OPS[op][0](x).sum().backward()
    with kernels.use("auto"), pytest.raises(RuntimeError, match="numba kernel called"):
        OPS[op][0](x).sum().backward()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu6_forward_kernel_on_large_activations(dtype, rng, monkeypatch):
    """From _NUMBA_RELU6_FORWARD_MIN_SIZE elements on, ReLU6's forward is the Numba loop:
    bitwise np.clip's result (NaN, +-inf, -0.0 and exactly 6 included), with any split over
    the threads; below it, np.clip itself."""
    from tinynet.kernels import numba_activation, numba_threads
    size = activation._NUMBA_RELU6_FORWARD_MIN_SIZE
    x = with_specials(rng, (1, 3, 3, size // 9 + 7), dtype)       # an odd last block
    calls = []
    original = numba_activation.relu6_forward
    monkeypatch.setattr(numba_activation, "relu6_forward",
                        lambda a: calls.append(a.size) or original(a))
    for threads in (1, 3):
        monkeypatch.setattr(numba_threads, "THREADS", threads)
        y, _ = relu_and_grad("auto", x, np.ones_like(x), "relu6")
        assert same_bits(y, np.clip(x, 0, 6))
    assert calls == [x.size, x.size]
    small = with_specials(rng, (size - 1,), dtype)
    relu_and_grad("auto", small, np.ones_like(small), "relu6")
    assert calls == [x.size, x.size]                      # np.clip ran
