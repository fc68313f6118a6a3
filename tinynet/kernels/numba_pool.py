"""Max and average pooling for NumPy arrays as compiled loops (Numba), one (n, c) plane per
task; the notation and the meaning of ``argmax`` are those of reference.py.

Max pooling keeps, for every output, the flat index h*W + w of its window's maximum (the
first one in row-major window order wins a tie; padding never wins; a NaN wins, and of
several NaNs the last, as in PyTorch's CPU kernel); backward adds each output's gradient
at that index.  Average pooling divides every window sum by KH KW (zero padding counted,
PyTorch's count_include_pad=True); each sum starts at 0, so an inf or NaN stays in its
own windows.
"""
import numpy as np

from ..geometry import conv_output_hw
from .jit import njit
from .numba_threads import run as _run
from .scratch import empty


@njit(cache=True, inline="always")
def _takes_over(value, best):
    """value replaces best as the maximum: it is larger, or NaN (PyTorch's rule: a NaN
    wins, and a later NaN replaces an earlier one)."""
    return value > best or value != value


@njit(cache=True, nogil=True)
def _max_pool_forward(x, kh, kw, sh, sw, ph, pw, y, argmax, t0, t1):
    """Window maximum and its flat index h*W + w; padding never wins; the first maximum (in
    row-major window order) wins a tie."""
    n_, c_, h_, w_ = x.shape
    oh, ow = y.shape[2], y.shape[3]
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        for i in range(oh):
            h0 = max(i * sh - ph, 0)
            h1 = min(i * sh - ph + kh, h_)
            for j in range(ow):
                w0 = max(j * sw - pw, 0)
                w1 = min(j * sw - pw + kw, w_)
                best = x[n, c, h0, w0]
                where = h0 * w_ + w0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        v = x[n, c, h, w]
                        if _takes_over(v, best):
                            best = v
                            where = h * w_ + w
                y[n, c, i, j] = best
                argmax[n, c, i, j] = where


@njit(cache=True, nogil=True)
def _max_pool_2x2_forward(x, y, argmax, t0, t1):
    """The common case (2x2 window, stride 2, no padding), NaN-aware: the loops above with
    the window written out.  Used as it is for the planes that hold a NaN."""
    n_, c_, h_, w_ = x.shape
    oh, ow = y.shape[2], y.shape[3]
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        for i in range(oh):
            top, bottom = x[n, c, 2 * i], x[n, c, 2 * i + 1]
            for j in range(ow):
                k = 2 * i * w_ + 2 * j
                best, where = top[2 * j], k
                if _takes_over(top[2 * j + 1], best):
                    best, where = top[2 * j + 1], k + 1
                if _takes_over(bottom[2 * j], best):
                    best, where = bottom[2 * j], k + w_
                if _takes_over(bottom[2 * j + 1], best):
                    best, where = bottom[2 * j + 1], k + w_ + 1
                y[n, c, i, j] = best
                argmax[n, c, i, j] = where


@njit(cache=True, nogil=True)
def _max_pool_2x2_forward_fast(x, y, argmax, t0, t1):
    """_max_pool_2x2_forward for planes without NaN; a plane in which it sees a NaN is redone
    by _max_pool_2x2_forward.

    Why it is faster: with no NaN, "takes over" is the single comparison v > best, so each
    window is a small tournament of three selects (the top pair, the bottom pair, then the
    winners; a tie keeps the earlier one in row-major order, as the first maximum should),
    which the compiler emits without branches.  Written as the sequence "if b > best: ...,
    if d > best: ...", the compiler kept jumps wherever a row is too short for its SIMD loop
    (outputs rows of 16 and 32: the demo's and the reference CNN's second and third pools),
    and random data mispredicts them half the time.  One thread, against that version
    (2026-12-06, Xeon): 64x64x32x32 10.5 -> 2.4 ms, 64x128x16x16 4.8 -> 1.2 ms,
    64x32x64x64 3.4 -> 2.4 ms, the same y and argmax."""
    n_, c_, h_, w_ = x.shape
    oh, ow = y.shape[2], y.shape[3]
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        nan_seen = False
        for i in range(oh):
            top, bottom = x[n, c, 2 * i], x[n, c, 2 * i + 1]
            y_row, argmax_row = y[n, c, i], argmax[n, c, i]
            corner = 2 * i * w_                  # the flat index of the row's first window
            for j in range(ow):
                a, b = top[2 * j], top[2 * j + 1]
                d, e = bottom[2 * j], bottom[2 * j + 1]
                right_on_top = b > a
                top_best = b if right_on_top else a
                top_at = 1 if right_on_top else 0
                right_below = e > d
                bottom_best = e if right_below else d
                bottom_at = w_ + 1 if right_below else w_
                below = bottom_best > top_best
                y_row[j] = bottom_best if below else top_best
                argmax_row[j] = corner + 2 * j + (bottom_at if below else top_at)
                nan_seen |= (a != a) | (b != b) | (d != d) | (e != e)
        if nan_seen:
            _max_pool_2x2_forward(x, y, argmax, t, t + 1)


@njit(cache=True, nogil=True)
def _max_pool_backward(gy, argmax, gx, t0, t1):
    """gx[n, c].flat[argmax[n, c, i, j]] += gy[n, c, i, j]; one plane per task."""
    n_, c_, _ = gx.shape
    p = gy.shape[2]
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        for q in range(gx.shape[2]):
            gx[n, c, q] = 0
        for q in range(p):
            gx[n, c, argmax[n, c, q]] += gy[n, c, q]


@njit(cache=True, nogil=True)
def _avg_pool_forward(x, kh, kw, sh, sw, ph, pw, y, t0, t1):
    n_, c_, h_, w_ = x.shape
    oh, ow = y.shape[2], y.shape[3]
    scale = 1.0 / (kh * kw)          # count_include_pad=True: always the full window
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        for i in range(oh):
            h0 = max(i * sh - ph, 0)
            h1 = min(i * sh - ph + kh, h_)
            for j in range(ow):
                w0 = max(j * sw - pw, 0)
                w1 = min(j * sw - pw + kw, w_)
                s = 0.0              # not x[...] * 0: that is NaN when x holds inf or NaN
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        s += x[n, c, h, w]
                y[n, c, i, j] = s * scale


@njit(cache=True, nogil=True)
def _avg_pool_backward(gy, kh, kw, sh, sw, ph, pw, gx, t0, t1):
    n_, c_, h_, w_ = gx.shape
    oh, ow = gy.shape[2], gy.shape[3]
    scale = 1.0 / (kh * kw)
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        plane = gx[n, c]
        for q0 in range(h_):
            for q1 in range(w_):
                plane[q0, q1] = 0
        for i in range(oh):
            h0 = max(i * sh - ph, 0)
            h1 = min(i * sh - ph + kh, h_)
            for j in range(ow):
                w0 = max(j * sw - pw, 0)
                w1 = min(j * sw - pw + kw, w_)
                share = gy[n, c, i, j] * scale
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        plane[h, w] += share


def max_pool2d_forward(x, kernel, stride, padding):
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    y = empty((n, c) + conv_output_hw(x.shape, kernel, stride, padding), x.dtype)
    argmax = empty(y.shape, np.int64)
    if tuple(kernel) == (2, 2) and tuple(stride) == (2, 2) and tuple(padding) == (0, 0):
        _run(_max_pool_2x2_forward_fast, n * c, x.size, x, y, argmax)
        return y, argmax
    _run(_max_pool_forward, n * c, x.size, x, kernel[0], kernel[1], stride[0], stride[1],
         padding[0], padding[1], y, argmax)
    return y, argmax


def max_pool2d_backward(grad_y, argmax, x_shape):
    n, c, h, w = x_shape
    outputs = grad_y.shape[2] * grad_y.shape[3]          # not -1: N = 0 must work too
    gy = np.ascontiguousarray(grad_y).reshape(n, c, outputs)
    where = np.ascontiguousarray(argmax, dtype=np.int64).reshape(n, c, outputs)
    grad_x = empty((n, c, h * w), grad_y.dtype)
    _run(_max_pool_backward, n * c, grad_x.size, gy, where, grad_x)
    return grad_x.reshape(x_shape)


def avg_pool2d_forward(x, kernel, stride, padding):
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    y = empty((n, c) + conv_output_hw(x.shape, kernel, stride, padding), x.dtype)
    _run(_avg_pool_forward, n * c, x.size, x, kernel[0], kernel[1], stride[0], stride[1],
         padding[0], padding[1], y)
    return y


def avg_pool2d_backward(grad_y, x_shape, kernel, stride, padding):
    grad_y = np.ascontiguousarray(grad_y)
    grad_x = empty(x_shape, grad_y.dtype)
    _run(_avg_pool_backward, x_shape[0] * x_shape[1], grad_x.size, grad_y, kernel[0],
         kernel[1], stride[0], stride[1], padding[0], padding[1], grad_x)
    return grad_x
