"""kernels/numba_first_layer.py: a first layer's forward pass and dL/dW, direct, against
the reference loops (float64, to rounding) and against im2col's error in float32, on the
shapes they take (odd sizes, padding 0-2, KH 1-5 for dL/dW, odd O, bias or none); and the
dispatch around them."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import kernels
from tinynet.kernels import reference

pytest.importorskip("numba")
from tinynet.kernels import cpu_numba, numba_first_layer  # noqa: E402

CASES = [  # N, C, H, W, O, KH, (PH, PW)
    (2, 3, 32, 33, 4, 3, (1, 1)), (3, 1, 40, 31, 5, 3, (0, 0)), (1, 2, 33, 35, 3, 5, (2, 1)),
    (2, 8, 32, 32, 2, 3, (1, 2)), (1, 24, 34, 32, 1, 1, (0, 1)), (2, 3, 31, 37, 7, 3, (2, 2)),
    (1, 3, 64, 50, 6, 3, (1, 1))]   # dL/dW: 3 chunks of pixels and part of one, O = 4 + 2


def problem(case, rng, dtype=np.float64):
    n, c, h, w, o, kh, padding = case
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((o, c, kh, 3))
    grad_y = rng.standard_normal(
        reference.conv2d_forward(x, weight, (1, 1), padding, (1, 1), 1)[0].shape)
    return x.astype(dtype), weight.astype(dtype), grad_y.astype(dtype), padding


@pytest.mark.parametrize("case", CASES)
def test_grad_weight_matches_reference_float64(case, rng):
    x, weight, grad_y, padding = problem(case, rng)
    assert numba_first_layer.applies(x.shape, weight.shape, (1, 1), padding, (1, 1), 1)
    got = numba_first_layer.conv2d_backward_weight(grad_y, x, weight.shape, padding)
    want = reference.conv2d_backward_weight(grad_y, x, weight.shape, (1, 1), padding,
                                            (1, 1), 1)
    assert got.dtype == np.float64 and got.shape == weight.shape
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11 * np.abs(want).max())


@pytest.mark.parametrize("case", CASES[:3])
def test_grad_weight_float32_error_is_near_im2col(case, rng):
    x, weight, grad_y, padding = problem(case, rng)
    exact = reference.conv2d_backward_weight(grad_y, x, weight.shape, (1, 1), padding,
                                             (1, 1), 1)
    x32, gy32 = x.astype(np.float32), grad_y.astype(np.float32)
    direct = numba_first_layer.conv2d_backward_weight(gy32, x32, weight.shape, padding)
    col = cpu_numba._columns(x32, weight.shape[2], 3, (1, 1), padding, (1, 1),
                             grad_y.shape[2], grad_y.shape[3])              # (K, N, P)
    o, k = weight.shape[0], col.shape[0]
    im2col = (gy32.transpose(1, 0, 2, 3).reshape(o, -1)                     # im2col's product
              @ col.reshape(k, -1).T).reshape(weight.shape)
    scale = np.abs(exact).max()
    assert direct.dtype == np.float32
    assert np.abs(direct - exact).max() / scale < max(
        4 * np.abs(im2col - exact).max() / scale, 1e-6)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, expected", [
    ((64, 3, 64, 64), (32, 3, 3, 3), (1, 1), (1, 1), True),     # the reference CNN's first
    ((8, 8, 32, 32), (16, 8, 3, 3), (1, 1), (1, 1), True),      # K = 72
    ((8, 16, 32, 32), (16, 16, 3, 3), (1, 1), (1, 1), False),   # K = 144: im2col
    ((8, 3, 64, 64), (32, 3, 3, 3), (2, 2), (1, 1), False),     # stride 2
    ((8, 3, 16, 16), (32, 3, 3, 3), (1, 1), (1, 1), False),     # 256 pixels
    ((8, 3, 64, 64), (32, 3, 3, 5), (1, 1), (1, 1), False)])    # KW = 5
def test_which_layers_it_takes(x_shape, w_shape, stride, padding, expected):
    assert numba_first_layer.applies(x_shape, w_shape, stride, padding, (1, 1), 1) == expected


def test_im2col_forward_keeps_no_col_for_such_a_layer_and_dw_is_right(rng):
    """cpu_numba's forward saves col only where its dL/dW will read it: not for a first
    layer, whose dL/dW goes to the dot products; and the whole path gives the reference."""
    x, weight, grad_y, padding = problem(CASES[0], rng)
    geometry = ((1, 1), padding, (1, 1), 1)
    y, saved = cpu_numba.conv2d_forward(x, weight, *geometry, save=True)
    assert saved is None
    grad_x, grad_w, _ = cpu_numba.conv2d_backward(grad_y, x, weight, *geometry, saved)
    want_x = reference.conv2d_backward_input(grad_y, weight, x.shape, *geometry)
    want_w = reference.conv2d_backward_weight(grad_y, x, weight.shape, *geometry)
    np.testing.assert_allclose(grad_x, want_x, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(grad_w, want_w, rtol=1e-11, atol=1e-11 * np.abs(want_w).max())
    wide = rng.standard_normal((2, 16, 32, 32))           # K = 144: col kept as before
    assert cpu_numba.conv2d_forward(wide, rng.standard_normal((4, 16, 3, 3)), *geometry,
                                    save=True)[1] is not None


FORWARD_CASES = [case for case in CASES if case[5] == 3] + [(1, 3, 32, 32, 9, 3, (1, 1))]


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("case", FORWARD_CASES)
def test_forward_matches_reference_float64(case, with_bias, rng):
    x, weight, _, padding = problem(case, rng)
    bias = rng.standard_normal(weight.shape[0]) if with_bias else None
    assert numba_first_layer.forward_applies(x.shape, weight.shape, (1, 1), padding, (1, 1), 1)
    got, saved = numba_first_layer.conv2d_forward(x, weight, (1, 1), padding, (1, 1), 1,
                                                  bias=bias)
    want = reference.conv2d_forward(x, weight, (1, 1), padding, (1, 1), 1)[0]
    if with_bias:
        want = want + bias.reshape(1, -1, 1, 1)
    assert saved is None and got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("case", FORWARD_CASES[:3])
def test_forward_float32_error_is_near_im2col(case, rng):
    x, weight, _, padding = problem(case, rng)
    bias = rng.standard_normal(weight.shape[0])
    geometry = ((1, 1), padding, (1, 1), 1)
    exact = (reference.conv2d_forward(x, weight, *geometry)[0] + bias.reshape(1, -1, 1, 1))
    x32, w32, b32 = (a.astype(np.float32) for a in (x, weight, bias))
    direct = numba_first_layer.conv2d_forward(x32, w32, *geometry, bias=b32)[0]
    im2col = cpu_numba.conv2d_forward(x32, w32, *geometry)[0] + b32.reshape(1, -1, 1, 1)
    scale = np.abs(exact).max()
    assert direct.dtype == np.float32
    assert np.abs(direct - exact).max() / scale < max(
        4 * np.abs(im2col - exact).max() / scale, 1e-6)


def test_dispatch_sends_a_first_layers_forward_here_with_its_bias(rng, monkeypatch):
    """Under 'auto' and 'numba' a first layer's forward runs here, the bias added by the
    kernel (ADDS_BIAS: no separate pass); its backward stays with cpu_numba.py (whose dL/dW
    comes here); under 'winograd', Winograd takes the layer; a 5x5 kernel goes to im2col."""
    x, weight = rng.standard_normal((2, 3, 32, 32)), rng.standard_normal((4, 3, 3, 3))
    bias = rng.standard_normal(4)
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    want = reference.conv2d_forward(x, weight, *geometry)[0] + bias.reshape(1, -1, 1, 1)
    passes = []
    monkeypatch.setattr(kernels, "add_bias", lambda *a: passes.append(a))
    for setting in ("auto", "numba"):
        with kernels.use(setting):
            assert kernels.choose_conv("conv2d_forward", x, x.shape, weight.shape,
                                       *geometry) is numba_first_layer.conv2d_forward
            assert kernels.choose_conv("conv2d_backward_input", x, x.shape, weight.shape,
                                       *geometry).__module__ == cpu_numba.__name__
            y, _ = kernels.conv2d_forward(x, weight, *geometry, bias=bias)
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    assert passes == []
    with kernels.use("winograd"):             # F(4x4) here: C = 3, a 32x32 plane
        assert kernels.choose_conv("conv2d_forward", x, x.shape, weight.shape,
                                   *geometry).__module__.endswith(("winograd", "winograd4"))
    five = rng.standard_normal((4, 3, 5, 5))
    assert not numba_first_layer.forward_applies(x.shape, five.shape, *geometry)
    with kernels.use("auto"):
        assert kernels.choose_conv("conv2d_forward", x, x.shape, five.shape,
                                   *geometry).__module__ == cpu_numba.__name__
    with kernels.use("numpy"):                   # the readable path stays im2col
        assert kernels.choose_conv("conv2d_forward", x, x.shape, weight.shape,
                                   *geometry).__module__.endswith("im2col")


@pytest.mark.parametrize("case", CASES)
def test_bias_gradient_is_summed_while_rows_are_copied(case, rng, monkeypatch):
    """weight_and_bias_grad's dL/db is the plain sum of dL/dy (odd O included), and a first
    layer with bias makes no separate bias pass in training (dL/dx not wanted)."""
    x, weight, grad_y, padding = problem(case, rng)
    grad_w, grad_b = numba_first_layer.weight_and_bias_grad(grad_y, x, weight.shape, padding)
    np.testing.assert_allclose(grad_b, grad_y.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(
        grad_w, numba_first_layer.conv2d_backward_weight(grad_y, x, weight.shape, padding))
    passes = []
    monkeypatch.setattr(kernels, "bias_grad", lambda *a: passes.append(a))
    xt = tn.tensor(x)
    wt, bt = (tn.tensor(a, requires_grad=True) for a in (weight, rng.standard_normal(len(weight))))
    with kernels.use("numba"):
        F.conv2d(xt, wt, bt, padding=padding).backward(grad_y)
    assert passes == []
    np.testing.assert_allclose(bt.grad, grad_y.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("setting", ["auto", "numba"])
def test_conv2d_gradcheck_on_a_first_layer(setting, rng):
    """F.conv2d with bias on a shape these kernels take (1024 pixels, C = 3), float64 finite
    differences with a random upstream gradient: the direct forward, dL/dW with dL/db
    summed on the way, and dL/dx (im2col's) when x wants one."""
    x, weight, bias = (rng.standard_normal((1, 3, 32, 32)), rng.standard_normal((2, 3, 3, 3)),
                       rng.standard_normal(2))
    with kernels.use(setting):
        assert kernels.choose_conv("conv2d_forward", x, x.shape, weight.shape, (1, 1), (1, 1),
                                   (1, 1), 1) is numba_first_layer.conv2d_forward
        assert tn.gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1), x, weight, bias)
        assert tn.gradcheck(lambda w, b: F.conv2d(tn.tensor(x), w, b, padding=1),
                            weight, bias)


@pytest.mark.parametrize("case", FORWARD_CASES)
def test_input_grad_matches_reference_float64(case, rng):
    """dL/dx as the forward kernel run on dL/dy with the flipped, swapped kernel: every
    padding 0-2, odd and even C (the forward's channel pairs), O from 2 to 9."""
    x, weight, grad_y, padding = problem(case, rng)
    got = numba_first_layer.conv2d_backward_input(grad_y, weight, x.shape, padding)
    want = reference.conv2d_backward_input(grad_y, weight, x.shape, (1, 1), padding, (1, 1), 1)
    assert got.dtype == np.float64 and got.shape == x.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("x_shape, o, padding, threads, expected", [
    ((32, 3, 64, 64), 32, (1, 1), 2, True),      # dL/dy per example 557 KB
    ((2, 8, 32, 32), 16, (1, 1), 2, True),
    ((1, 3, 64, 64), 32, (1, 1), 2, False),      # one example: one core
    ((1, 3, 64, 64), 32, (1, 1), 1, True),
    ((4, 3, 128, 128), 32, (1, 1), 2, False),    # 2.2 MB: past the L2 cache
    ((4, 3, 64, 64), 32, (3, 3), 2, False),      # padding 3: 2 - P < 0
    ((4, 16, 64, 64), 32, (1, 1), 2, False)])    # K = 144: not a first layer
def test_which_input_grads_it_takes(x_shape, o, padding, threads, expected):
    weight_shape = (o, x_shape[1], 3, 3)
    assert numba_first_layer.input_grad_applies(x_shape, weight_shape, (1, 1), padding, (1, 1),
                                                1, 4, threads) == expected


def test_im2col_backward_sends_such_a_layers_input_grad_here(rng, monkeypatch):
    """cpu_numba.conv2d_backward_input takes the direct path where the rule says so, and its
    answer is im2col's."""
    x, weight, grad_y, padding = problem((4, 3, 32, 32, 5, 3, (1, 1)), rng)
    geometry = ((1, 1), padding, (1, 1), 1)
    calls = []
    direct = numba_first_layer.conv2d_backward_input
    monkeypatch.setattr(numba_first_layer, "conv2d_backward_input",
                        lambda *args: calls.append(1) or direct(*args))
    monkeypatch.setattr(cpu_numba.numba_threads, "THREADS", 2)
    got = cpu_numba.conv2d_backward_input(grad_y, weight, x.shape, *geometry)
    assert calls == [1]
    monkeypatch.setattr(numba_first_layer, "MAX_GRAD_PLANES_BYTES", 0)   # im2col's now
    want = cpu_numba.conv2d_backward_input(grad_y, weight, x.shape, *geometry)
    assert calls == [1]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_conv2d_gradcheck_through_the_direct_input_grad(rng, monkeypatch):
    """F.conv2d on a first layer whose dL/dx the direct kernel takes (two examples, one per
    thread): float64 finite differences with a random upstream gradient, and the direct
    path really ran."""
    calls = []
    direct = numba_first_layer.conv2d_backward_input
    monkeypatch.setattr(numba_first_layer, "conv2d_backward_input",
                        lambda *args: calls.append(1) or direct(*args))
    monkeypatch.setattr(cpu_numba.numba_threads, "THREADS", 2)
    x, weight, bias = (rng.standard_normal((2, 3, 32, 32)), rng.standard_normal((3, 3, 3, 3)),
                       rng.standard_normal(3))
    assert tn.gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1), x, weight, bias)
    assert calls
