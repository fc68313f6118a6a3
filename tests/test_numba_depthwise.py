"""The depthwise 3x3 Numba kernels (kernels/numba_depthwise.py) against the reference loops:
forward, dL/dx and dL/dw on random shapes, strides and paddings, float64 and float32; the
dispatch that routes depthwise 3x3 convolutions there; a gradient check through F.conv2d."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import kernels
from tinynet.kernels import reference

pytest.importorskip("numba")
from tinynet.kernels import numba_depthwise  # noqa: E402

CASES = [  # N, C, H, W, stride, padding
    (2, 3, 7, 6, (1, 1), (1, 1)), (2, 3, 7, 6, (2, 2), (1, 1)), (1, 4, 8, 8, (2, 2), (0, 0)),
    (2, 2, 5, 9, (1, 2), (2, 0)), (1, 2, 3, 3, (1, 1), (0, 0)), (1, 3, 6, 6, (3, 3), (1, 1)),
    (3, 5, 4, 4, (1, 1), (2, 2)), (1, 2, 9, 5, (2, 1), (1, 3)), (2, 8, 16, 16, (2, 2), (1, 1)),
    (2, 3, 9, 17, (2, 2), (1, 1)), (1, 2, 6, 10, (1, 3), (1, 1)), (2, 3, 8, 7, (2, 2), (0, 1)),
    (1, 2, 11, 13, (2, 2), (0, 2)), (2, 3, 10, 9, (2, 2), (2, 0)),    # stride 2, any padding
    (2, 3, 7, 9, (1, 1), (0, 1)), (1, 2, 5, 5, (1, 1), (1, 2)),       # stride 1, not 1 and 1
    (2, 37, 8, 8, (1, 1), (1, 1)),                                   # dL/dw of channels last
    (3, 40, 6, 6, (2, 2), (1, 1)),   # on two threads (grad_y * 9 >= MIN_ELEMENTS_TO_SPLIT)
    (2, 3, 6, 10, (2, 2), (1, 1)), (1, 2, 2, 2, (2, 2), (1, 1))]     # stride 2 read in place


def three_products(module, x, weight, grad_y, stride, padding):
    geometry = (stride, padding, (1, 1), x.shape[1])
    return (module.conv2d_forward(x, weight, *geometry)[0],
            module.conv2d_backward_input(grad_y, weight, x.shape, *geometry),
            module.conv2d_backward_weight(grad_y, x, weight.shape, *geometry))


@pytest.fixture(params=["planes", "channels last"])
def layout(request, monkeypatch):
    """Every case through both layouts of numba_depthwise (chosen by plane size)."""
    pixels = 0 if request.param == "planes" else 10 ** 9
    monkeypatch.setattr(numba_depthwise, "CHANNELS_LAST_MAX_PIXELS", pixels)
    monkeypatch.setattr(numba_depthwise, "CHANNELS_LAST_MAX_PIXELS_FAST_PLANES", pixels)
    return request.param


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES)
def test_depthwise_matches_reference(case, dtype, layout, rng):
    n, c, h, w, stride, padding = case
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((c, 1, 3, 3))
    y_shape = reference.conv2d_forward(x, weight, stride, padding, (1, 1), c)[0].shape
    grad_y = rng.standard_normal(y_shape)
    assert numba_depthwise.applies(x.shape, weight.shape, stride, padding, (1, 1), c)
    exact = three_products(reference, x, weight, grad_y, stride, padding)
    got = three_products(numba_depthwise, *(a.astype(dtype) for a in (x, weight, grad_y)),
                         stride, padding)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for name, g, want in zip(["y", "dx", "dw"], got, exact):
        assert g.dtype == dtype and g.shape == want.shape, name
        np.testing.assert_allclose(g, want, rtol=tol, atol=tol * np.abs(want).max(),
                                   err_msg=name)


def test_depthwise_layout_rule():
    """Small planes (MobileNet's 8x8 and 4x4 layers) go channels last, larger ones not;
    where the fast planes kernels run the forward (stride 1, and stride 2 read in place),
    8x8 planes stay in the planes layout."""
    assert numba_depthwise._channels_last((32, 256, 4, 4))
    assert numba_depthwise._channels_last((32, 128, 8, 8))
    assert not numba_depthwise._channels_last((32, 64, 16, 16))
    assert numba_depthwise._channels_last((32, 256, 4, 4), fast_planes_kernel=True)
    assert not numba_depthwise._channels_last((32, 128, 8, 8), fast_planes_kernel=True)


@pytest.mark.parametrize("stride, channels_last", [(1, False), (2, True)])
def test_depthwise_weight_gradient_layout(stride, channels_last, monkeypatch, rng):
    """dL/dw on 8x8 planes: the planes loop at stride 1, channels last at stride 2."""
    called = []
    original = numba_depthwise.cl.backward_weight
    monkeypatch.setattr(numba_depthwise.cl, "backward_weight",
                        lambda *args: called.append(1) or original(*args))
    x, weight = rng.standard_normal((2, 4, 8, 8)), rng.standard_normal((4, 1, 3, 3))
    grad_y = rng.standard_normal((2, 4, 8 // stride, 8 // stride))
    got = numba_depthwise.conv2d_backward_weight(grad_y, x, weight.shape, (stride, stride),
                                                 (1, 1), (1, 1), 4)
    want = reference.conv2d_backward_weight(grad_y, x, weight.shape, (stride, stride),
                                            (1, 1), (1, 1), 4)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert bool(called) == channels_last


def test_depthwise_dispatch(rng):
    """Numba settings send depthwise 3x3 here; other grouped or dilated convolutions, and
    the plain settings, go elsewhere."""
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    pick = lambda w_shape, groups, dilation=(1, 1), setting="auto": _pick(  # noqa: E731
        x, w_shape, groups, dilation, setting)
    for setting in ("auto", "numba", "winograd"):
        assert pick((4, 1, 3, 3), 4, setting=setting) is numba_depthwise.conv2d_forward
    assert pick((4, 1, 3, 3), 4, setting="numpy") is not numba_depthwise.conv2d_forward
    assert pick((8, 1, 3, 3), 4) is not numba_depthwise.conv2d_forward      # multiplier 2
    assert pick((4, 1, 5, 5), 4) is not numba_depthwise.conv2d_forward      # 5x5
    assert pick((4, 1, 3, 3), 4, (2, 2)) is not numba_depthwise.conv2d_forward
    assert pick((4, 2, 3, 3), 2) is not numba_depthwise.conv2d_forward      # 2 groups


def _pick(x, w_shape, groups, dilation, setting):
    with kernels.use(setting):
        return kernels.choose_conv("conv2d_forward", x, x.shape, w_shape, (1, 1), (1, 1),
                                   dilation, groups)


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_gradcheck(stride, layout, rng):
    x, weight = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((3, 1, 3, 3))
    with kernels.use("auto"):
        assert tn.gradcheck(lambda x, w: F.conv2d(x, w, stride=stride, padding=1, groups=3),
                            x, weight)
