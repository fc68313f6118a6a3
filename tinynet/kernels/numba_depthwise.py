"""Depthwise 3x3 convolution (MobileNet's layers) as direct Numba loops, forward and backward.

Depthwise: groups = C = O, one 3x3 kernel per channel, any stride and padding, dilation 1:

    y[n, c, i, j] = sum_{u, v} x_pad[n, c, i SH + u, j SW + v] w[c, 0, u, v]

Nine multiply-adds per output and nothing to share between channels, so there is no GEMM to
hand to BLAS: the loops themselves must be fast.  The general depthwise loops of
cpu_numba.py add one tap at a time into the output plane (nine read-modify-write passes) and
check the borders per tap; here each task copies its (n, c) plane once into a zero-padded
buffer that stays in cache, and then every output is one expression of nine taps with the
kernel in registers (stride 1 vectorizes along the row).  Measured 1.3-4x faster than the
general loops on MobileNet's shapes, forward and backward (benchmarks/RESULTS.md).

    dL/dx: stride 1: the forward loop on dL/dy (padding 2 - P) with the kernel flipped;
           else every output scatters w * dL/dy[i, j] back into its window of a padded
           buffer, whose interior is dL/dx (one (n, c) plane per task)
    dL/dw: nine accumulators per channel over all n, i, j (one channel per task)

Notation as in reference.py.
"""
import numpy as np
from numba import njit

from ..geometry import conv_output_size
from .numba_threads import run


def applies(x_shape, weight_shape, stride, padding, dilation, groups):
    """Depthwise with one output per channel, 3x3 kernel, dilation 1."""
    c = x_shape[1]
    return (groups == c and tuple(weight_shape) == (c, 1, 3, 3)
            and tuple(dilation) == (1, 1))


# No array views inside the loops (x[n, c], pad[r]): each one costs a reference-count
# update, which dominated on the 8x8 and 4x4 planes of MobileNet's last layers.

@njit(cache=True, nogil=True)
def _pad_plane(x, n, c, ph, pw, pad):
    """pad[r, q] = x[n, c, r - PH, q - PW], zero outside x (the border zeroed, the inside
    copied row by row: no test per pixel)."""
    h_, w_ = x.shape[2], x.shape[3]
    hp, wp = pad.shape
    rows = min(h_, hp - ph)              # rows of x that land inside pad
    cols = min(w_, wp - pw)
    for r in range(hp):
        sr = r - ph
        if sr < 0 or sr >= rows:
            for q in range(wp):
                pad[r, q] = 0
            continue
        for q in range(pw):
            pad[r, q] = 0
        for q in range(cols):
            pad[r, pw + q] = x[n, c, sr, q]
        for q in range(pw + cols, wp):
            pad[r, q] = 0


@njit(cache=True, nogil=True)
def _forward(x, w, sh, sw, ph, pw, y, t0, t1):
    c_ = x.shape[1]
    oh, ow = y.shape[2], y.shape[3]
    pad = np.empty(((oh - 1) * sh + 3, (ow - 1) * sw + 3), dtype=x.dtype)
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        _pad_plane(x, n, c, ph, pw, pad)
        w00, w01, w02 = w[c, 0, 0, 0], w[c, 0, 0, 1], w[c, 0, 0, 2]
        w10, w11, w12 = w[c, 0, 1, 0], w[c, 0, 1, 1], w[c, 0, 1, 2]
        w20, w21, w22 = w[c, 0, 2, 0], w[c, 0, 2, 1], w[c, 0, 2, 2]
        for i in range(oh):
            r = i * sh
            for j in range(ow):
                q = j * sw
                y[n, c, i, j] = (
                    w00 * pad[r, q] + w01 * pad[r, q + 1] + w02 * pad[r, q + 2]
                    + w10 * pad[r + 1, q] + w11 * pad[r + 1, q + 1] + w12 * pad[r + 1, q + 2]
                    + w20 * pad[r + 2, q] + w21 * pad[r + 2, q + 1] + w22 * pad[r + 2, q + 2])


@njit(cache=True, nogil=True)
def _backward_input(gy, w, sh, sw, ph, pw, gx, t0, t1):
    c_, h_, w_ = gx.shape[1], gx.shape[2], gx.shape[3]
    oh, ow = gy.shape[2], gy.shape[3]
    hp = max((oh - 1) * sh + 3, h_ + ph)
    wp = max((ow - 1) * sw + 3, w_ + pw)
    pad = np.empty((hp, wp), dtype=gx.dtype)
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        for r in range(hp):
            for q in range(wp):
                pad[r, q] = 0
        for i in range(oh):
            for u in range(3):
                r = i * sh + u
                ku0, ku1, ku2 = w[c, 0, u, 0], w[c, 0, u, 1], w[c, 0, u, 2]
                for j in range(ow):
                    q = j * sw
                    gij = gy[n, c, i, j]
                    pad[r, q] += ku0 * gij
                    pad[r, q + 1] += ku1 * gij
                    pad[r, q + 2] += ku2 * gij
        for r in range(h_):
            for q in range(w_):
                gx[n, c, r, q] = pad[r + ph, q + pw]


@njit(cache=True, nogil=True, fastmath={"reassoc"})     # the 9 sums may use SIMD lanes
def _backward_weight(gy, x, sh, sw, ph, pw, gw, t0, t1):
    n_ = x.shape[0]
    oh, ow = gy.shape[2], gy.shape[3]
    pad = np.empty(((oh - 1) * sh + 3, (ow - 1) * sw + 3), dtype=x.dtype)
    for c in range(t0, t1):
        a00 = a01 = a02 = a10 = a11 = a12 = a20 = a21 = a22 = 0.0
        for n in range(n_):
            _pad_plane(x, n, c, ph, pw, pad)
            for i in range(oh):
                r = i * sh
                for j in range(ow):
                    q = j * sw
                    gij = gy[n, c, i, j]
                    a00 += gij * pad[r, q]
                    a01 += gij * pad[r, q + 1]
                    a02 += gij * pad[r, q + 2]
                    a10 += gij * pad[r + 1, q]
                    a11 += gij * pad[r + 1, q + 1]
                    a12 += gij * pad[r + 1, q + 2]
                    a20 += gij * pad[r + 2, q]
                    a21 += gij * pad[r + 2, q + 1]
                    a22 += gij * pad[r + 2, q + 2]
        gw[c, 0, 0, 0], gw[c, 0, 0, 1], gw[c, 0, 0, 2] = a00, a01, a02
        gw[c, 0, 1, 0], gw[c, 0, 1, 1], gw[c, 0, 1, 2] = a10, a11, a12
        gw[c, 0, 2, 0], gw[c, 0, 2, 1], gw[c, 0, 2, 2] = a20, a21, a22


# ---- the kernel interface (depthwise 3x3 only: see applies) ---------------------------------

def conv2d_forward(x, weight, stride, padding, dilation, groups, save=False):
    """(y, None): a direct kernel keeps nothing for the weight gradient, which reads x."""
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight, dtype=x.dtype)
    n, c, h, w = x.shape
    oh = conv_output_size(h, 3, stride[0], padding[0])
    ow = conv_output_size(w, 3, stride[1], padding[1])
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    run(_forward, n * c, 9 * y.size, x, weight, stride[0], stride[1], padding[0], padding[1],
        y)
    return y, None


def conv2d_backward_input(grad_y, weight, x_shape, stride, padding, dilation, groups):
    grad_y = np.ascontiguousarray(grad_y)
    weight = np.ascontiguousarray(weight, dtype=grad_y.dtype)
    if tuple(stride) == (1, 1) and max(padding) <= 2:
        # stride 1: the correlation of dL/dy, padded by 2 - P, with the flipped kernel
        # (a gather like the forward, which vectorizes; the scatter below does not)
        flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1])
        grad_x, _ = conv2d_forward(grad_y, flipped, (1, 1), (2 - padding[0], 2 - padding[1]),
                                   dilation, groups)
        assert grad_x.shape == tuple(x_shape)
        return grad_x
    grad_x = np.empty(x_shape, dtype=grad_y.dtype)
    run(_backward_input, x_shape[0] * x_shape[1], 9 * grad_y.size, grad_y, weight,
        stride[0], stride[1], padding[0], padding[1], grad_x)
    return grad_x


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups,
                           saved=None):
    grad_y = np.ascontiguousarray(grad_y)
    x = np.ascontiguousarray(x, dtype=grad_y.dtype)
    grad_w = np.empty(weight_shape, dtype=grad_y.dtype)
    run(_backward_weight, weight_shape[0], 9 * grad_y.size, grad_y, x, stride[0], stride[1],
        padding[0], padding[1], grad_w)
    return grad_w
