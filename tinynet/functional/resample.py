"""Differentiable resampling of NCHW images: resize (``interpolate``) and ``affine_warp``.

Both are linear in the image: every output pixel is a weighted sum of a few input pixels,
y = A x for a fixed sparse matrix A that depends only on the geometry.  So backward is the
transposed map, dL/dx = A^T dL/dy: each output pixel's gradient is scattered back to the
input pixels it was read from, with the same weights.

Grad-CAM upsamples its coarse map with ``interpolate``; feature visualization jitters,
scales and rotates the image it optimizes with ``interpolate`` and ``affine_warp`` inside
the graph, so the gradient flows through the transform.  Both follow PyTorch exactly
(``F.interpolate``, and ``F.grid_sample(x, F.affine_grid(theta, ...))``), including which
source pixel a given output pixel reads.
"""
import math
import numbers

import numpy as np

from .. import backend
from ..autograd import Function, Tensor
from ._checks import check_ndim, float_tensor

# ---- interpolate: resize along H and W separately ------------------------------------------
#
# Resizing is separable: y = A_h x A_w^T, where A_h (OH, H) resizes the columns and A_w
# (OW, W) the rows.  Each row of A holds the weights one output index gives to the input
# indices ("taps"): nearest has one tap of weight 1, bilinear two taps (1 - lam, lam).


def _nearest_taps(in_size, out_size, scale_factor, xp):
    """Source index of each output index, as PyTorch's 'nearest': floor(dst * scale).

    PyTorch computes this in float32 (and special-cases sizes x1 and x2); we do the same so
    that every output pixel reads the same source pixel as in PyTorch."""
    dst = xp.arange(out_size)
    if out_size == in_size:
        return dst
    if out_size == 2 * in_size:
        return dst // 2
    scale = np.float32(1.0 / scale_factor) if scale_factor else np.float32(in_size) / np.float32(out_size)
    src = xp.floor(dst.astype(np.float32) * scale).astype(np.int64)
    return xp.minimum(src, in_size - 1)


def _linear_taps(in_size, out_size, scale_factor, align_corners, xp, dtype):
    """(i0, i1, lam0, lam1) per output index: y[dst] = lam0 * x[i0] + lam1 * x[i1].

    align_corners=True   the corner pixels' centers line up: src = dst * (in - 1)/(out - 1)
    align_corners=False  pixel areas line up (half-pixel centers):
                         src = (dst + 0.5) * scale - 0.5, clamped at 0, scale = in/out
                         (or 1/scale_factor when a scale factor was given, as in PyTorch)"""
    dtype = np.dtype(dtype).type
    dst = xp.arange(out_size)
    if out_size == in_size:                  # plain copy, as PyTorch special-cases it
        return dst, dst, xp.ones(out_size, dtype), xp.zeros(out_size, dtype)
    if align_corners:
        ratio = dtype(in_size - 1) / dtype(out_size - 1) if out_size > 1 else dtype(0)
        src = ratio * dst.astype(dtype)
    else:
        ratio = dtype(1.0 / scale_factor) if scale_factor else dtype(in_size) / dtype(out_size)
        src = xp.maximum(ratio * (dst.astype(dtype) + dtype(0.5)) - dtype(0.5), dtype(0))
    i0 = xp.minimum(xp.floor(src).astype(np.int64), in_size - 1)
    lam1 = xp.clip(src - i0.astype(dtype), 0, 1)
    i1 = xp.minimum(i0 + 1, in_size - 1)
    return i0, i1, 1 - lam1, lam1


def _tap_matrix(taps, weights, in_size, xp, dtype):
    """The (out, in) matrix with weight w at column i of each row, summed over the taps."""
    columns = xp.arange(in_size)
    matrix = xp.zeros((len(taps[0]), in_size), dtype)
    for index, weight in zip(taps, weights):
        matrix += weight[:, None] * (columns == index[:, None])
    return matrix


class Interpolate(Function):
    """Resize x (N, C, H, W) to (N, C, OH, OW).

    forward   nearest: y[..., i, j] = x[..., src_h[i], src_w[j]]  (a gather)
              bilinear: y = A_h x A_w^T
    backward  dL/dx = A_h^T (dL/dy) A_w    (for nearest, A has a single 1 per row)"""

    def __init__(self, out_size, scale_factors, mode, align_corners):
        self.out_size, self.scale_factors = out_size, scale_factors
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x):
        xp = backend.get_array_module(x)
        (h, w), (oh, ow), (sh, sw) = x.shape[2:], self.out_size, self.scale_factors
        if self.mode == "nearest":
            rows, cols = _nearest_taps(h, oh, sh, xp), _nearest_taps(w, ow, sw, xp)
            one_h, one_w = xp.ones(oh, x.dtype), xp.ones(ow, x.dtype)
            self.a_h = _tap_matrix((rows,), (one_h,), h, xp, x.dtype)
            self.a_w = _tap_matrix((cols,), (one_w,), w, xp, x.dtype)
            return x[:, :, rows[:, None], cols[None, :]]
        taps_h = _linear_taps(h, oh, sh, self.align_corners, xp, x.dtype)
        taps_w = _linear_taps(w, ow, sw, self.align_corners, xp, x.dtype)
        self.a_h = _tap_matrix(taps_h[:2], taps_h[2:], h, xp, x.dtype)
        self.a_w = _tap_matrix(taps_w[:2], taps_w[2:], w, xp, x.dtype)
        return self.a_h @ x @ self.a_w.T

    def backward(self, grad):
        return self.a_h.T @ grad @ self.a_w


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=False):
    """Resize the H and W axes of ``x`` (N, C, H, W), as PyTorch's ``F.interpolate``.

    size           (OH, OW) or one int for both
    scale_factor   a number or (sh, sw): OH = floor(H * sh); the given factor (not OH/H) sets
                   the sampling positions, as in PyTorch
    mode           'nearest' (source index floor(dst * H/OH)) or 'bilinear'
    align_corners  bilinear only: True maps corner pixel centers onto each other; False
                   (the default) uses half-pixel centers
    """
    op = "interpolate"
    x = float_tensor(x, "x", op)
    check_ndim(x, (4,), "x", op, " (N, C, H, W)")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"{op}: mode must be 'nearest' or 'bilinear', got {mode!r}")
    if align_corners is None:
        align_corners = False
    if not isinstance(align_corners, (bool, np.bool_)):
        raise TypeError(f"{op}: align_corners must be True or False, got {align_corners!r}")
    if align_corners and mode == "nearest":
        raise ValueError(f"{op}: align_corners=True only applies to mode='bilinear', "
                         "got mode='nearest'")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor, got size={size!r}, "
                         f"scale_factor={scale_factor!r}")
    in_size = x.shape[2:]
    if min(in_size) < 1:
        raise ValueError(f"{op}: x must have H, W >= 1, got shape {tuple(x.shape)}")
    if size is not None:
        out_size = _pair(size, "size", op, numbers.Integral)
        if min(out_size) < 1:
            raise ValueError(f"{op}: size must be positive, got {size!r}")
        scales = (None, None)
    else:
        scales = _pair(scale_factor, "scale_factor", op, numbers.Real)
        if min(scales) <= 0 or not all(map(math.isfinite, scales)):
            raise ValueError(f"{op}: scale_factor must be positive and finite, got "
                             f"{scale_factor!r}")
        out_size = tuple(int(math.floor(n * s)) for n, s in zip(in_size, scales))
        if min(out_size) < 1:
            raise ValueError(f"{op}: scale_factor {scale_factor!r} turns input size "
                             f"{tuple(in_size)} into {out_size}; the output needs at least 1 pixel")
    return Interpolate(out_size, scales, mode, bool(align_corners))(x)


def _pair(value, name, op, kind):
    """One number for both axes, or a pair: returns (h, w)."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2 or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, kind)
                              for v in items):
        what = "an int" if kind is numbers.Integral else "a number"
        raise TypeError(f"{op}: {name} must be {what} or a pair of them, got {value!r}")
    return tuple(int(v) if kind is numbers.Integral else float(v) for v in items)


# ---- affine warp: affine_grid + grid_sample ------------------------------------------------


def _sample_points(theta, height, width, xp):
    """Where each output pixel reads from, in input pixel coordinates (PyTorch's affine_grid
    then grid_sample's unnormalize, both with align_corners=False).

    Output pixel (i, j) has the normalized center (u, v) = ((2j + 1)/W - 1, (2i + 1)/H - 1)
    in [-1, 1]; theta maps it to (u', v') = theta @ (u, v, 1), and the source position in
    pixels is ix = ((u' + 1) W - 1) / 2, iy = ((v' + 1) H - 1) / 2."""
    dtype = theta.dtype.type
    u = (2 * xp.arange(width, dtype=theta.dtype) + 1) / dtype(width) - 1        # (W,)
    v = (2 * xp.arange(height, dtype=theta.dtype) + 1) / dtype(height) - 1      # (H,)
    t = theta[:, :, :, None, None]                                            # (N, 2, 3, 1, 1)
    gx = t[:, 0, 0] * u + t[:, 0, 1] * v[:, None] + t[:, 0, 2]               # (N, H, W)
    gy = t[:, 1, 0] * u + t[:, 1, 1] * v[:, None] + t[:, 1, 2]
    return ((gx + 1) * width - 1) / 2, ((gy + 1) * height - 1) / 2


class AffineWarp(Function):
    """Sample x at affinely transformed positions; zeros outside the image.

    Each output pixel p reads up to four input pixels q (bilinear; one for nearest) with
    weights w_pq, and a pixel outside the image counts as 0.  Forward gathers
    y_p = sum_q w_pq x_q; backward scatters dL/dx_q = sum_p w_pq dL/dy_p."""

    def __init__(self, theta, mode):
        self.theta, self.mode = theta, mode

    def forward(self, x):
        xp = backend.get_array_module(x)
        n, c, h, w = x.shape
        ix, iy = _sample_points(self.theta, h, w, xp)
        if self.mode == "nearest":            # round half to even, as PyTorch's nearbyint
            x0, y0 = xp.rint(ix), xp.rint(iy)
            corners = [(x0, y0, xp.ones_like(ix))]
        else:                                 # the four neighbours and their bilinear weights
            x0, y0 = xp.floor(ix), xp.floor(iy)
            x1, y1 = x0 + 1, y0 + 1
            corners = [(x0, y0, (x1 - ix) * (y1 - iy)), (x1, y0, (ix - x0) * (y1 - iy)),
                       (x0, y1, (x1 - ix) * (iy - y0)), (x1, y1, (ix - x0) * (iy - y0))]
        self.x_shape = x.shape
        self.indices, self.weights = [], []
        flat = x.reshape(n, c, h * w)
        y = xp.zeros((n, c, h * w), x.dtype)
        for cx, cy, weight in corners:
            inside = (cx >= 0) & (cx <= w - 1) & (cy >= 0) & (cy <= h - 1)
            index = (xp.clip(cy, 0, h - 1) * w + xp.clip(cx, 0, w - 1)).astype(np.int64)
            index = index.reshape(n, 1, h * w)
            weight = (weight * inside).reshape(n, 1, h * w)     # outside: weight 0 (zeros)
            y += xp.take_along_axis(flat, index, axis=2) * weight
            self.indices.append(index)
            self.weights.append(weight)
        return y.reshape(x.shape)

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        n, c, h, w = self.x_shape
        g = grad.reshape(n, c, h * w)
        # One flat index into the (N, C, H*W) input per gradient value; bincount adds up
        # the values that land on the same input pixel (a vectorized scatter-add).
        plane = (xp.arange(n)[:, None, None] * c + xp.arange(c)[None, :, None]) * (h * w)
        total = xp.zeros(n * c * h * w, np.float64)
        for index, weight in zip(self.indices, self.weights):
            total += xp.bincount((plane + index).ravel(), weights=(g * weight).ravel(),
                                 minlength=n * c * h * w)
        return total.astype(grad.dtype).reshape(self.x_shape)


def affine_warp(x, theta, mode="bilinear"):
    """Warp ``x`` (N, C, H, W) by the affine maps ``theta`` (N, 2, 3), keeping the size.

    Equals PyTorch's ``F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=False),
    mode, padding_mode='zeros', align_corners=False)``.  theta maps output coordinates to
    input coordinates, both normalized to [-1, 1] (x right, y down): theta = [[s, 0, tx],
    [0, s, ty]] zooms in by 1/s and shifts by (tx, ty) half-widths.

    Differentiable with respect to ``x`` only: theta is a constant (the gradient with respect
    to theta is not implemented; a theta that requires grad is refused)."""
    op = "affine_warp"
    x = float_tensor(x, "x", op)
    check_ndim(x, (4,), "x", op, " (N, C, H, W)")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"{op}: mode must be 'bilinear' or 'nearest', got {mode!r}")
    if isinstance(theta, Tensor) and theta.requires_grad:
        raise ValueError(f"{op}: gradients with respect to theta are not implemented; pass "
                         "theta.detach() or a plain array")
    theta = float_tensor(theta, "theta", op)
    if theta.shape != (x.shape[0], 2, 3):
        raise ValueError(f"{op}: theta must have shape ({x.shape[0]}, 2, 3), one 2x3 matrix "
                         f"per image of x {tuple(x.shape)}, got {tuple(theta.shape)}")
    if theta.device != x.device:
        raise ValueError(f"{op}: theta is on '{theta.device}' but x on '{x.device}'; move "
                         "them to one device")
    return AffineWarp(theta.data.astype(x.dtype, copy=False), mode)(x)
