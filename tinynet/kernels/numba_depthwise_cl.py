"""Depthwise 3x3 convolution on small planes, channels last (numba_depthwise.py chooses
the layout; see CHANNELS_LAST_MAX_PIXELS there).

On 8x8 and 4x4 planes (MobileNet's late layers: 4x4 x 256 channels) one (n, c) task has
too little work (16 outputs) to pay for its loop set-up, and its rows are shorter than a
SIMD register.  So each example is transposed once into a padded (H, W, C) buffer, and
every output position computes all C channels in one loop, which vectorizes along the
channels; the forward writes y's planes directly, the backward's dL/dx is transposed back.
Each kernel's task is one example n.

    forward           y[n, c, i, j] = sum_{u, v} wt[u, v, c] x_last[i SH + u, j SW + v, c]
    backward_input    every output scatters wt * dL/dy[i, j] back into its window
    backward_weight   each example's nine sums per channel, added up by the caller

wt[u, v, c] = w[c, 0, u, v] (``weight_channels_last``).  The channel index c is always the
innermost loop (contiguous in the (H, W, C) buffers), and every index is a range variable
from 0: a loop offset of unknown sign (c0 + c) makes Numba test for negative indices inside
the loop, which stops vectorization.
"""
import numpy as np

from .jit import njit


def weight_channels_last(weight):
    """wt[u, v, c] = w[c, 0, u, v]."""
    return np.ascontiguousarray(weight.reshape(weight.shape[0], 9).T).reshape(3, 3, -1)


@njit(cache=True, nogil=True)
def _to_channels_last(a, n, ph, pw, out):
    """out[r + PH, q + PW, c] = a[n, c, r, q] where that lands inside out (out's border is
    left as it is: zeroed once by the caller)."""
    c_ = a.shape[1]
    rows = min(a.shape[2], out.shape[0] - ph)
    cols = min(a.shape[3], out.shape[1] - pw)
    for r in range(rows):
        for q in range(cols):
            for c in range(c_):
                out[r + ph, q + pw, c] = a[n, c, r, q]


@njit(cache=True, nogil=True)
def _to_channels_first(a_last, ph, pw, n, out):
    """out[n, c, r, q] = a_last[r + PH, q + PW, c]."""
    for r in range(out.shape[2]):
        for q in range(out.shape[3]):
            for c in range(out.shape[1]):
                out[n, c, r, q] = a_last[r + ph, q + pw, c]


@njit(cache=True, nogil=True)
def forward(x, wt, sh, sw, ph, pw, y, t0, t1):
    """wt[u, v, c] = w[c, 0, u, v]; one example n per task.  The outputs go straight into
    y's (C, OH, OW) planes, strided along c: 1.05x-1.18x faster than writing a
    channels-last y and transposing it back (32x256x4x4, 32x128x8x8 at stride 2, Intel
    Xeon, 2026-12-05 night)."""
    c_ = x.shape[1]
    oh, ow = y.shape[2], y.shape[3]
    x_last = np.zeros(((oh - 1) * sh + 3, (ow - 1) * sw + 3, c_), dtype=x.dtype)
    for n in range(t0, t1):
        _to_channels_last(x, n, ph, pw, x_last)
        y_n = y[n]
        for i in range(oh):
            r = i * sh
            for j in range(ow):
                q = j * sw
                for c in range(c_):
                    y_n[c, i, j] = (
                        wt[0, 0, c] * x_last[r, q, c] + wt[0, 1, c] * x_last[r, q + 1, c]
                        + wt[0, 2, c] * x_last[r, q + 2, c]
                        + wt[1, 0, c] * x_last[r + 1, q, c]
                        + wt[1, 1, c] * x_last[r + 1, q + 1, c]
                        + wt[1, 2, c] * x_last[r + 1, q + 2, c]
                        + wt[2, 0, c] * x_last[r + 2, q, c]
                        + wt[2, 1, c] * x_last[r + 2, q + 1, c]
                        + wt[2, 2, c] * x_last[r + 2, q + 2, c])


@njit(cache=True, nogil=True)
def backward_input(gy, wt, sh, sw, ph, pw, gx, t0, t1):
    """dL/dx as a scatter (numba_depthwise._backward_input's), one example per task,
    vectorized along c."""
    c_, h_, w_ = gx.shape[1], gx.shape[2], gx.shape[3]
    oh, ow = gy.shape[2], gy.shape[3]
    gy_last = np.empty((oh, ow, c_), dtype=gx.dtype)
    gx_last = np.empty((max((oh - 1) * sh + 3, h_ + ph), max((ow - 1) * sw + 3, w_ + pw), c_),
                       dtype=gx.dtype)
    for n in range(t0, t1):
        _to_channels_last(gy, n, 0, 0, gy_last)
        gx_last[:] = 0
        for i in range(oh):
            for j in range(ow):
                for u in range(3):
                    for v in range(3):
                        r, q = i * sh + u, j * sw + v
                        for c in range(c_):
                            gx_last[r, q, c] += wt[u, v, c] * gy_last[i, j, c]
        _to_channels_first(gx_last, ph, pw, n, gx)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def backward_weight(gy, x, sh, sw, ph, pw, per_example, t0, t1):
    """per_example[n, u, v, c] = example n's part of dL/dw[c, 0, u, v] (in x's dtype,
    vectorized along c); one example per task, so the threads share no accumulator."""
    c_ = x.shape[1]
    oh, ow = gy.shape[2], gy.shape[3]
    x_last = np.zeros(((oh - 1) * sh + 3, (ow - 1) * sw + 3, c_), dtype=x.dtype)
    gy_last = np.empty((oh, ow, c_), dtype=x.dtype)
    for n in range(t0, t1):
        _to_channels_last(x, n, ph, pw, x_last)
        _to_channels_last(gy, n, 0, 0, gy_last)
        part = per_example[n]
        part[:] = 0
        for i in range(oh):
            for j in range(ow):
                for u in range(3):
                    for v in range(3):
                        r, q = i * sh + u, j * sw + v
                        for c in range(c_):
                            part[u, v, c] += gy_last[i, j, c] * x_last[r, q, c]
