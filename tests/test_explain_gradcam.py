"""Grad-CAM: a hand-computed case (the lecture's convolution example), gradients at the
layer against finite differences, layer lookup errors, and a CNN trained here to find a
bright square (its Grad-CAM peak and its saliency mass must fall on the square)."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import nn

import explain
from explain import _common, toy


def hand_net():
    """conv 2x2 (2 kernels) -> global average pool -> linear (2 classes), weights set by hand.

    Kernel 0 is the lecture's [[0, 1], [2, 3]]: on the input 0..8 it gives [[19, 25], [37, 43]].
    Kernel 1 is [[1, 0], [0, -1]]: x[i, j] - x[i+1, j+1] = -4 everywhere."""
    conv = nn.Conv2d(1, 2, 2, bias=False)
    conv.weight.data[...] = np.array([[[[0, 1], [2, 3]]], [[[1, 0], [0, -1]]]], dtype=np.float64)
    fc = nn.Linear(2, 2)
    fc.weight.data[...] = np.array([[1.0, 2.0], [-1.0, 0.5]])
    fc.bias.data[...] = np.array([0.3, -0.2])
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc).double()


LECTURE_INPUT = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)


def test_grad_cam_by_hand():
    model = hand_net()
    # y^c = sum_k W[c, k] mean_uv A^k + b  =>  dy^c/dA^k_uv = W[c, k] / Z,  alpha_k = W[c, k] / 4
    a0 = np.array([[19.0, 25.0], [37.0, 43.0]])
    a1 = np.full((2, 2), -4.0)
    expected0 = 1.0 / 4 * a0 + 2.0 / 4 * a1                    # [[2.75, 4.25], [7.25, 8.75]]
    raw = explain.grad_cam(model, LECTURE_INPUT, 0, layer="0", relu=False, upsample=False,
                           normalize=False)
    assert raw.shape == (1, 2, 2)
    assert np.allclose(raw[0], expected0)
    # step 8: min-max scaling at the layer's resolution
    scaled = explain.grad_cam(model, LECTURE_INPUT, 0, layer="0", upsample=False)
    assert np.allclose(scaled[0], [[0.0, 0.25], [0.75, 1.0]])
    # class 1: alpha = (-1/4, 1/8), every value negative; ReLU (step 7) leaves zeros
    expected1 = -0.25 * a0 + 0.125 * a1
    assert np.all(expected1 < 0)
    assert np.allclose(explain.grad_cam(model, LECTURE_INPUT, 1, layer="0", relu=False,
                                        upsample=False, normalize=False)[0], expected1)
    assert np.allclose(explain.grad_cam(model, LECTURE_INPUT, 1, layer="0", upsample=False,
                                        normalize=False), 0)
    # the default layer is the last Conv2d; upsampling gives the input's 3x3
    up = explain.grad_cam(model, LECTURE_INPUT, 0)
    assert up.shape == (1, 3, 3) and up.min() == 0 and np.isclose(up.max(), 1)
    assert explain.grad_cam(model, LECTURE_INPUT, 0, layer=model[0], upsample=False).shape == (1, 2, 2)


def test_bilinear_upsampling_matches_f_interpolate():
    maps = np.array([[[0.0, 1.0], [2.0, 3.0]]])
    from explain.gradcam import upsample_maps
    up = upsample_maps(maps, (4, 4))
    # align_corners=False: the first row is [0, 0.25, 0.75, 1]
    assert np.allclose(up[0, 0], [0, 0.25, 0.75, 1.0])
    assert np.allclose(up[0, :, 0], [0, 0.5, 1.5, 2.0])


def smooth_cnn():
    tn.manual_seed(3)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 3, 3),
                         nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3)).double()


def test_gradient_at_the_layer_matches_finite_differences(rng):
    """dy^c/dA at the conv layer (what Grad-CAM's alpha averages) against finite differences
    of the head h(A) = logits computed from the layer's output A."""
    model = smooth_cnn()
    x = rng.standard_normal((2, 2, 6, 6))
    target = np.array([2, 0])
    _, grad, act = _common.class_score_gradients(model, tn.tensor(x), target, wrt="layer",
                                                 layer_module=model[2])
    from explain.tcav import layer_head
    head = layer_head(model, "2")
    eps = 1e-6
    for _ in range(3):
        d = rng.standard_normal(act.shape)
        with tn.no_grad():
            up = head(x, tn.tensor(act + eps * d)).numpy()[np.arange(2), target].sum()
            down = head(x, tn.tensor(act - eps * d)).numpy()[np.arange(2), target].sum()
        assert np.isclose(np.sum(grad * d), (up - down) / (2 * eps), rtol=1e-6, atol=1e-8)
    # and the raw Grad-CAM is exactly sum_k mean_uv(grad_k) A^k
    raw = explain.grad_cam(model, x, target, layer="2", relu=False, upsample=False, normalize=False)
    assert np.allclose(raw, (grad.mean(axis=(2, 3), keepdims=True) * act).sum(axis=1))


def test_grad_cam_matches_captum_on_the_same_weights(rng):
    torch = pytest.importorskip("torch")
    captum_attr = pytest.importorskip("captum.attr")
    model = smooth_cnn()
    tm = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.Tanh(),
                             torch.nn.Conv2d(4, 3, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                             torch.nn.Linear(48, 3)).double()
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = rng.standard_normal((2, 2, 6, 6))
    ours = explain.grad_cam(model, x, 1, layer="2", relu=False, upsample=False, normalize=False)
    theirs = captum_attr.LayerGradCam(tm, tm[2]).attribute(torch.from_numpy(x), target=1,
                                                           relu_attributions=False)
    assert np.allclose(ours, theirs.detach().numpy()[:, 0])


def test_unknown_layer_lists_the_available_ones():
    model = hand_net()
    with pytest.raises(ValueError, match=r"unknown layer 'features.7'.*'0', '1', '2', '3'"):
        explain.grad_cam(model, LECTURE_INPUT, 0, layer="features.7")
    with pytest.raises(ValueError, match="not a module of this model"):
        explain.grad_cam(model, LECTURE_INPUT, 0, layer=nn.Conv2d(1, 1, 1))
    no_conv = nn.Sequential(nn.Flatten(), nn.Linear(9, 2))
    with pytest.raises(ValueError, match="has none; name a layer, one of: '0', '1'"):
        explain.grad_cam(no_conv, LECTURE_INPUT, 0)
    with pytest.raises(ValueError, match="feature maps"):
        explain.grad_cam(no_conv, LECTURE_INPUT, 0, layer="1", upsample=False)


# ---- a CNN trained to find a bright square (explain.toy) ------------------------------------

@pytest.fixture(scope="module")
def squares():
    model = toy.bright_square_model()
    x, y, masks = toy.bright_squares(48, seed=1)
    keep = y == 1
    return model, x[keep], masks[keep]


def test_the_square_model_learned_its_task():
    model = toy.bright_square_model()
    x, y, _ = toy.bright_squares(64, seed=2)
    with tn.no_grad():
        assert np.mean(model(tn.tensor(x)).numpy().argmax(axis=1) == y) >= 0.9


def test_grad_cam_peak_falls_on_the_square(squares):
    model, x, masks = squares
    cam = explain.grad_cam(model, x, 1)
    assert cam.shape == masks.shape
    on_square = [m.ravel()[c.argmax()] for c, m in zip(cam, masks)]
    assert np.mean(on_square) >= 0.9


def test_saliency_mass_on_the_square_is_three_times_its_area(squares):
    model, x, masks = squares
    sal = explain.channel_max(explain.vanilla_gradient(model, x, 1))
    mass = (sal * masks).sum(axis=(1, 2)) / sal.sum(axis=(1, 2))
    area = masks.sum(axis=(1, 2)) / masks[0].size
    assert np.mean(mass / area) >= 3


def test_guided_grad_cam_shape_and_focus(squares):
    model, x, masks = squares
    ggc = explain.guided_grad_cam(model, x[:6], 1)
    assert ggc.shape == x[:6].shape
    heat = np.abs(ggc).max(axis=1)
    mass = (heat * masks[:6]).sum(axis=(1, 2)) / heat.sum(axis=(1, 2))
    assert np.mean(mass) > 3 * masks[0].mean()
