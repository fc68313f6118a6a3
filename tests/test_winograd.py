"""Winograd F(2x2, 3x3) (kernels/winograd.py) against the reference loops: forward, dL/dx
and dL/dW on random shapes (odd and even sizes, padding 0-2) in float64 and float32, the
float32 error against im2col's, the 1-D F(2, 3) worked by hand, and the dispatch."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import kernels
from tinynet.kernels import reference

pytest.importorskip("numba")
from tinynet.kernels import cpu_numba, winograd  # noqa: E402

GEOMETRY = ((1, 1), None, (1, 1), 1)    # stride, padding (per case), dilation, groups

CASES = [  # N, C, H, W, O, (PH, PW)
    (2, 3, 5, 6, 4, (1, 1)), (1, 2, 7, 7, 3, (0, 0)), (2, 4, 6, 5, 3, (2, 1)),
    (3, 5, 8, 8, 6, (1, 1)), (1, 1, 3, 3, 1, (0, 0)), (2, 6, 4, 9, 2, (0, 2)),
    (1, 3, 1, 2, 2, (1, 2))]


def problem(case, dtype, rng):
    n, c, h, w, o, padding = case
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((o, c, 3, 3))
    y_shape = reference.conv2d_forward(x, weight, (1, 1), padding, (1, 1), 1)[0].shape
    grad_y = rng.standard_normal(y_shape)
    return [a.astype(dtype) for a in (x, weight, grad_y)], padding


def three_products(module, x, weight, grad_y, padding):
    geometry = ((1, 1), padding, (1, 1), 1)
    return (module.conv2d_forward(x, weight, *geometry)[0],
            module.conv2d_backward_input(grad_y, weight, x.shape, *geometry),
            module.conv2d_backward_weight(grad_y, x, weight.shape, *geometry))


@pytest.mark.parametrize("case", CASES)
def test_winograd_matches_reference_float64(case, rng):
    (x, weight, grad_y), padding = problem(case, np.float64, rng)
    assert winograd.applies(x.shape, weight.shape, (1, 1), padding, (1, 1), 1)
    for got, want in zip(three_products(winograd, x, weight, grad_y, padding),
                         three_products(reference, x, weight, grad_y, padding)):
        assert got.shape == want.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("case", CASES[:4] + [(4, 32, 16, 16, 16, (1, 1))])
def test_winograd_float32_error_is_near_im2col(case, rng):
    """Both fast kernels in float32 against the float64 reference: the transforms add and
    subtract inputs, so Winograd's error may be a few times im2col's, never more than 4x
    (measured in float32 forward: 0.3x-1.7x, benchmarks/RESULTS.md)."""
    (x, weight, grad_y), padding = problem(case, np.float64, rng)
    exact = three_products(reference, x, weight, grad_y, padding)
    f32 = [a.astype(np.float32) for a in (x, weight, grad_y)]
    for name, wino, im2col, want in zip(
            ["y", "dx", "dW"], three_products(winograd, *f32, padding),
            three_products(cpu_numba, *f32, padding), exact):
        assert wino.dtype == np.float32
        scale = np.abs(want).max()
        error_wino = np.abs(wino - want).max() / scale
        error_im2col = np.abs(im2col - want).max() / scale
        assert error_wino < max(4 * error_im2col, 1e-6), (name, error_wino, error_im2col)


def test_one_dimensional_f23_by_hand():
    """The docstring's worked example: 4 multiplications give the 2 outputs of a 3-tap
    correlation, y = A^T [(G g) * (B^T d)]."""
    d, g = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, -1.0, 0.5])
    y = winograd.A_T @ ((winograd.G @ g) * (winograd.B_T @ d))
    # by hand: y0 = 1*2 + 2*(-1) + 3*0.5 = 1.5, y1 = 2*2 + 3*(-1) + 4*0.5 = 3
    np.testing.assert_allclose(y, [1.5, 3.0])


@pytest.mark.parametrize("shape, kwargs", [
    ((2, 3, 6, 6), dict(stride=2, padding=1)), ((1, 4, 7, 7), dict(dilation=2, padding=2)),
    ((1, 4, 5, 5), dict(groups=2, padding=1)), ((1, 2, 5, 5), dict(padding=3))])
def test_use_winograd_leaves_other_convolutions_to_im2col(shape, kwargs, rng):
    """Under use('winograd') a convolution Winograd cannot compute still gives the right
    answer (the Numba im2col kernels run it)."""
    x = rng.standard_normal(shape)
    weight = rng.standard_normal((4, shape[1] // kwargs.get("groups", 1), 3, 3))
    results = []
    for setting in ("winograd", "reference"):
        with kernels.use(setting):
            xt, wt = tn.tensor(x, requires_grad=True), tn.tensor(weight, requires_grad=True)
            y = F.conv2d(xt, wt, **kwargs)
            y.backward(np.ones(y.shape))
            results.append((y.numpy(), xt.grad, wt.grad))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_dispatch_follows_the_setting(rng, monkeypatch):
    """'winograd' forces it, 'numba' and 'numpy' never pick it, 'auto' asks the rule."""
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    weight = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    args = ((1, 1), (1, 1), (1, 1), 1)
    pick = lambda: kernels.choose_conv("conv2d_forward", x, x.shape, weight.shape, *args)  # noqa
    with kernels.use("winograd"):
        assert pick() is winograd.conv2d_forward
    for setting in ("numba", "numpy", "reference"):
        with kernels.use(setting):
            assert pick() is not winograd.conv2d_forward
    for verdict in (True, False):
        monkeypatch.setattr(winograd, "faster", lambda *a, verdict=verdict: verdict)
        with kernels.use("auto"):
            assert (pick() is winograd.conv2d_forward) == verdict


def test_conv2d_gradcheck_under_winograd(rng):
    x, weight = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 3, 3))
    bias = rng.standard_normal(2)
    with kernels.use("winograd"):
        assert tn.gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1), x, weight, bias)
        assert tn.gradcheck(lambda x, w: F.conv2d(x, w), x, weight)
