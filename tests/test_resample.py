"""interpolate and affine_warp: values against plain-loop definitions and hand-computed
cases, gradients against finite differences, dtype kept, PyTorch where installed, errors."""
import math

import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F


def gradcheck(fn, *inputs):
    """tn.gradcheck with an upstream-gradient seed other than the ``rng`` fixture's 0, so the
    random upstream gradient is never equal to the random input (for batch_norm, u = x makes
    dL/dx vanish and hides bugs)."""
    return tn.gradcheck(fn, *inputs, seed=1)


# ---- plain definitions (loops over pixels: slow, obviously right) ----------------------------


def plain_nearest(x, out_h, out_w):
    n, c, h, w = x.shape
    y = np.zeros((n, c, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            y[:, :, i, j] = x[:, :, min(math.floor(i * h / out_h), h - 1),
                              min(math.floor(j * w / out_w), w - 1)]
    return y


def source_position(dst, in_size, out_size, align_corners):
    if align_corners:
        return dst * (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    return max((dst + 0.5) * in_size / out_size - 0.5, 0.0)


def plain_bilinear(x, out_h, out_w, align_corners):
    n, c, h, w = x.shape
    y = np.zeros((n, c, out_h, out_w))
    for i in range(out_h):
        sy = source_position(i, h, out_h, align_corners)
        y0 = min(int(sy), h - 1)
        y1, ly = min(y0 + 1, h - 1), sy - y0
        for j in range(out_w):
            sx = source_position(j, w, out_w, align_corners)
            x0 = min(int(sx), w - 1)
            x1, lx = min(x0 + 1, w - 1), sx - x0
            y[:, :, i, j] = ((1 - ly) * ((1 - lx) * x[:, :, y0, x0] + lx * x[:, :, y0, x1])
                             + ly * ((1 - lx) * x[:, :, y1, x0] + lx * x[:, :, y1, x1]))
    return y


def plain_affine_warp(x, theta, mode):
    """affine_grid + grid_sample (zeros padding, align_corners=False), pixel by pixel."""
    n, c, h, w = x.shape
    y = np.zeros_like(x)

    def pixel(b, row, col):
        inside = 0 <= row < h and 0 <= col < w
        return x[b, :, row, col] if inside else np.zeros(c)

    for b in range(n):
        for i in range(h):
            for j in range(w):
                u, v = (2 * j + 1) / w - 1, (2 * i + 1) / h - 1
                gx, gy = theta[b] @ np.array([u, v, 1.0])
                ix, iy = ((gx + 1) * w - 1) / 2, ((gy + 1) * h - 1) / 2
                if mode == "nearest":
                    y[b, :, i, j] = pixel(b, int(np.rint(iy)), int(np.rint(ix)))
                    continue
                x0, y0 = math.floor(ix), math.floor(iy)
                ax, ay = ix - x0, iy - y0
                y[b, :, i, j] = ((1 - ay) * (1 - ax) * pixel(b, y0, x0)
                                 + (1 - ay) * ax * pixel(b, y0, x0 + 1)
                                 + ay * (1 - ax) * pixel(b, y0 + 1, x0)
                                 + ay * ax * pixel(b, y0 + 1, x0 + 1))
    return y


# ---- interpolate ---------------------------------------------------------------------------------

SIZES = [(8, 3), (3, 12), (5, 7), (10, 14), (1, 1)]


@pytest.mark.parametrize("size", SIZES)
def test_nearest_matches_definition(size, rng):
    x = rng.standard_normal((2, 3, 5, 7))
    y = F.interpolate(tn.tensor(x), size=size, mode="nearest")
    np.testing.assert_array_equal(y.numpy(), plain_nearest(x, *size))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("align_corners", [False, True])
def test_bilinear_matches_definition(size, align_corners, rng):
    x = rng.standard_normal((2, 3, 5, 7))
    y = F.interpolate(tn.tensor(x), size=size, mode="bilinear", align_corners=align_corners)
    np.testing.assert_allclose(y.numpy(), plain_bilinear(x, *size, align_corners),
                               rtol=1e-12, atol=1e-12)


def test_bilinear_hand_computed_2x2_to_4x4():
    x = tn.tensor(np.array([[[[0.0, 1.0], [2.0, 3.0]]]]))
    third = np.array([0, 1 / 3, 2 / 3, 1])
    corners = F.interpolate(x, size=4, mode="bilinear", align_corners=True).numpy()[0, 0]
    np.testing.assert_allclose(corners, 2 * third[:, None] + third[None, :], atol=1e-15)
    # half-pixel centers: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (edge: last pixel)
    half = np.array([0, 0.25, 0.75, 1])
    centers = F.interpolate(x, scale_factor=2, mode="bilinear").numpy()[0, 0]
    np.testing.assert_allclose(centers, 2 * half[:, None] + half[None, :], atol=1e-15)
    nearest = F.interpolate(x, scale_factor=2).numpy()[0, 0]
    np.testing.assert_array_equal(nearest, [[0, 0, 1, 1], [0, 0, 1, 1],
                                            [2, 2, 3, 3], [2, 2, 3, 3]])


@pytest.mark.parametrize("mode,align_corners", [("nearest", False), ("bilinear", False),
                                                ("bilinear", True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_interpolate_keeps_dtype_and_size(mode, align_corners, dtype, rng):
    x = tn.tensor(rng.standard_normal((1, 2, 4, 6)).astype(dtype), requires_grad=True)
    y = F.interpolate(x, scale_factor=(1.5, 0.5), mode=mode, align_corners=align_corners)
    assert y.shape == (1, 2, 6, 3) and y.dtype == dtype
    y.backward(np.ones(y.shape, dtype))
    assert x.grad.dtype == dtype and x.grad.shape == x.shape


@pytest.mark.parametrize("mode,align_corners", [("nearest", False), ("bilinear", False),
                                                ("bilinear", True)])
@pytest.mark.parametrize("kwargs", [dict(size=(7, 3)), dict(size=(2, 6)),
                                    dict(scale_factor=1.7), dict(scale_factor=(0.6, 2.0))])
def test_interpolate_gradcheck(mode, align_corners, kwargs, rng):
    x = rng.standard_normal((2, 2, 4, 5))
    assert gradcheck(
        lambda t: F.interpolate(t, mode=mode, align_corners=align_corners, **kwargs), x)


def test_interpolate_gradcheck_elementwise_small(rng):
    x = rng.standard_normal((1, 1, 3, 4))            # <= 64 elements: every entry checked
    for mode in ("nearest", "bilinear"):
        assert gradcheck(lambda t: F.interpolate(t, size=(5, 3), mode=mode), x)


@pytest.mark.parametrize("mode,align_corners", [("nearest", None), ("bilinear", False),
                                                ("bilinear", True)])
@pytest.mark.parametrize("kwargs", [dict(size=(11, 4)), dict(size=(10, 14)),
                                    dict(scale_factor=1.7), dict(scale_factor=(0.6, 2.3)),
                                    dict(scale_factor=3), dict(size=(5, 7)), dict(size=1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_interpolate_matches_torch(mode, align_corners, kwargs, dtype, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 5, 7)).astype(dtype)
    ours = tn.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    y = F.interpolate(ours, mode=mode, align_corners=align_corners, **kwargs)
    t = torch.nn.functional.interpolate(theirs, mode=mode, align_corners=align_corners,
                                        **kwargs)
    assert y.shape == tuple(t.shape)
    g = rng.standard_normal(y.shape).astype(dtype)
    y.backward(g)
    t.backward(torch.tensor(g))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y.numpy(), t.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=tol, atol=tol)


def test_interpolate_errors():
    x = tn.tensor(np.zeros((1, 1, 4, 4)))
    cases = [
        (ValueError, "exactly one of size and scale_factor", dict()),
        (ValueError, "exactly one of size and scale_factor", dict(size=2, scale_factor=2)),
        (ValueError, "mode must be 'nearest' or 'bilinear', got 'bicubic'",
         dict(size=2, mode="bicubic")),
        (ValueError, "align_corners=True only applies to mode='bilinear'",
         dict(size=2, align_corners=True)),
        (TypeError, "align_corners must be True or False, got 'yes'",
         dict(size=2, mode="bilinear", align_corners="yes")),
        (ValueError, r"size must be positive, got \(0, 2\)", dict(size=(0, 2))),
        (TypeError, r"size must be an int or a pair of them, got \(2, 2, 2\)", dict(size=(2, 2, 2))),
        (TypeError, "size must be an int or a pair of them, got 2.5", dict(size=2.5)),
        (ValueError, "scale_factor must be positive and finite, got -1", dict(scale_factor=-1)),
        (ValueError, r"turns input size \(4, 4\) into \(0, 0\)", dict(scale_factor=0.1)),
    ]
    for error, message, kwargs in cases:
        with pytest.raises(error, match=message):
            F.interpolate(x, **kwargs)
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, C, H, W\), got 3-D"):
        F.interpolate(tn.tensor(np.zeros((1, 4, 4))), size=2)
    with pytest.raises(TypeError, match="x must have a floating dtype.*int64"):
        F.interpolate(tn.tensor(np.zeros((1, 1, 4, 4), np.int64)), size=2)


# ---- affine_warp ---------------------------------------------------------------------------------

def random_theta(rng, n):
    """Rotations, scales and shifts of moderate size (part of the output falls outside)."""
    angle = rng.uniform(-0.6, 0.6, n)
    scale = rng.uniform(0.7, 1.3, n)
    shift = rng.uniform(-0.3, 0.3, (n, 2))
    theta = np.zeros((n, 2, 3))
    theta[:, 0, 0], theta[:, 0, 1] = scale * np.cos(angle), -scale * np.sin(angle)
    theta[:, 1, 0], theta[:, 1, 1] = scale * np.sin(angle), scale * np.cos(angle)
    theta[:, :, 2] = shift
    return theta


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_affine_warp_matches_definition(mode, rng):
    x = rng.standard_normal((2, 3, 5, 6))
    theta = random_theta(rng, 2)
    y = F.affine_warp(tn.tensor(x), theta, mode=mode)
    np.testing.assert_allclose(y.numpy(), plain_affine_warp(x, theta, mode), atol=1e-12)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_affine_warp_identity_flip_and_shift(mode, rng):
    x = rng.standard_normal((1, 2, 4, 5))
    identity = np.array([[[1.0, 0, 0], [0, 1, 0]]])
    np.testing.assert_allclose(F.affine_warp(tn.tensor(x), identity, mode).numpy(), x,
                               atol=1e-12)
    flip = np.array([[[-1.0, 0, 0], [0, 1, 0]]])
    np.testing.assert_allclose(F.affine_warp(tn.tensor(x), flip, mode).numpy(),
                               x[..., ::-1], atol=1e-12)
    shift = np.array([[[1.0, 0, 2 / 5], [0, 1, 0]]])     # read one pixel to the right
    expected = np.concatenate([x[..., 1:], np.zeros((1, 2, 4, 1))], axis=-1)
    np.testing.assert_allclose(F.affine_warp(tn.tensor(x), shift, mode).numpy(), expected,
                               atol=1e-12)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_affine_warp_gradcheck(mode, rng):
    theta = random_theta(rng, 2)
    assert gradcheck(lambda t: F.affine_warp(t, theta, mode), rng.standard_normal((2, 2, 5, 4)))
    small = rng.standard_normal((1, 1, 4, 5))             # every entry checked
    assert gradcheck(lambda t: F.affine_warp(t, theta[:1], mode), small)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_warp_keeps_dtype(dtype, rng):
    x = tn.tensor(rng.standard_normal((2, 1, 3, 3)).astype(dtype), requires_grad=True)
    y = F.affine_warp(x, random_theta(rng, 2))        # theta float64: follows x
    assert y.dtype == dtype and y.shape == x.shape
    y.backward(np.ones(y.shape, dtype))
    assert x.grad.dtype == dtype


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_warp_matches_torch(mode, dtype, rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = rng.standard_normal((3, 2, 7, 9)).astype(dtype)
    theta = random_theta(rng, 3).astype(dtype)
    ours = tn.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    y = F.affine_warp(ours, theta, mode)
    grid = tf.affine_grid(torch.tensor(theta), list(x.shape), align_corners=False)
    t = tf.grid_sample(theirs, grid, mode=mode, padding_mode="zeros", align_corners=False)
    g = rng.standard_normal(x.shape).astype(dtype)
    y.backward(g)
    t.backward(torch.tensor(g))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y.numpy(), t.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=tol, atol=tol)


def test_affine_warp_errors():
    x = tn.tensor(np.zeros((2, 1, 3, 3)))
    theta = np.zeros((2, 2, 3))
    with pytest.raises(ValueError, match=r"theta must have shape \(2, 2, 3\).*got \(1, 2, 3\)"):
        F.affine_warp(x, theta[:1])
    with pytest.raises(ValueError, match=r"theta must have shape \(2, 2, 3\).*got \(2, 3, 3\)"):
        F.affine_warp(x, np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="gradients with respect to theta are not implemented"):
        F.affine_warp(x, tn.tensor(theta, requires_grad=True))
    with pytest.raises(TypeError, match="theta must have a floating dtype.*int64"):
        F.affine_warp(x, np.zeros((2, 2, 3), np.int64))
    with pytest.raises(ValueError, match="mode must be 'bilinear' or 'nearest', got 'area'"):
        F.affine_warp(x, theta, mode="area")
    with pytest.raises(ValueError, match=r"x must be 4-D \(N, C, H, W\), got 2-D"):
        F.affine_warp(tn.tensor(np.zeros((3, 3))), theta)
