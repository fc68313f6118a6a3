"""Fast CPU kernels: Numba moves the memory, BLAS does the arithmetic.

A convolution is a matrix product once the input windows are laid out as columns
(im2col, as in Caffe and Chainer):

    col[(c, u, v), n, (i, j)] = x_pad[n, c, i SH + u DH, j SW + v DW]      (C KH KW, N, OH OW)
    y[n, o, (i, j)]           = sum_k  W[o, k] col[k, n, (i, j)]             W as (O, C KH KW)

and its two backward products are matrix products too:

    dL/dcol = W^T  dL/dy           then col2im adds every column back into its window
    dL/dW   = dL/dy  col^T         summed over n and (i, j)

Writing the GEMM as loops in Numba reaches a few GFLOP/s; NumPy's BLAS reaches close to the
machine's peak.  So the Numba kernels here do only the memory-bound parts (im2col, col2im,
the (N, O) <-> (O, N) layout swap, pooling), and every multiply-add of a convolution goes
through ``np.matmul``.  Two layouts of the same product:

* "per example": y[n] = W @ col[:, n, :] for each n, written straight into y.  Best when
  OH*OW is large (first layers): no layout swap of the (big) output.
* "one GEMM": Y = W @ col as one (O, N OH OW) product, then swap to (N, O, OH OW).  Best when
  OH*OW is small (deep layers), where per-example products would be too small for BLAS.

Depthwise convolution (groups == C, one input channel per group) has almost no arithmetic
per byte, so it gets direct loops instead of a GEMM.

Parallelism.  Every kernel loops over a range [t0, t1) of independent tasks (an (n, c)
plane, a row of col) and releases the GIL (``nogil=True``); ``_run`` splits the tasks into
one chunk per core and runs the chunks on a small thread pool.  This is Numba's
``parallel=True``/``prange`` done by hand, for two measured reasons: a ``parallel=True``
kernel takes 3-5x longer to compile (the first conv call of a fresh process must stay
under 3 s), and OpenMP worker threads that spin after a parallel region fight OpenBLAS's
threads for the same two cores in the im2col -> GEMM -> swap sequence.

Each kernel is compiled on its first call for each dtype (float32, float64), and cached on
disk (``cache=True``), so only the first run on a machine pays the compile time.  Importing
this module compiles nothing; ``tinynet.kernels`` imports it on the first conv/pool call.

Notation as in reference.py: N, C, H, W input; O output channels; G groups; KH, KW kernel;
SH, SW stride; PH, PW padding; DH, DW dilation; OH, OW output size; P = OH OW.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from . import conv_output_size

# Below this many output pixels per example, one big GEMM beats N small ones (measured on a
# 2-core AVX2 machine with OpenBLAS: see benchmarks/RESULTS.md).
_PER_EXAMPLE_MIN_PIXELS = 1024

# Below this many array elements touched, one thread does the whole job (a hand-off to a
# worker thread costs tens of microseconds).
_MIN_ELEMENTS_TO_SPLIT = 1 << 15
# Convolutions whose col would exceed this run in slices of the batch (peak memory).
MAX_COL_BYTES = 256 * 2**20

_fast = njit(cache=True, nogil=True)

try:
    THREADS = len(os.sched_getaffinity(0))
except AttributeError:                       # not Linux
    THREADS = os.cpu_count() or 1
_pool = None


def _run(kernel, tasks, elements, *args):
    """kernel(*args, t0, t1) over tasks [0, tasks), split across the cores when worth it."""
    global _pool
    chunks = min(THREADS, tasks)
    if chunks < 2 or elements < _MIN_ELEMENTS_TO_SPLIT:
        kernel(*args, 0, tasks)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(THREADS - 1, thread_name_prefix="tinynet-kernel")
    bounds = [tasks * i // chunks for i in range(chunks + 1)]
    futures = [_pool.submit(kernel, *args, bounds[i], bounds[i + 1]) for i in range(1, chunks)]
    kernel(*args, bounds[0], bounds[1])      # the first chunk on this thread
    for future in futures:
        future.result()


# ---- index helpers (compiled inline) --------------------------------------------------------

@njit(cache=True, inline="always")
def _valid_range(offset, stride, size, count):
    """The b in [0, count) with 0 <= b*stride + offset < size, as [b0, b1)."""
    b0 = 0 if offset >= 0 else (-offset + stride - 1) // stride
    b1 = 0 if size - offset <= 0 else (size - offset + stride - 1) // stride
    b1 = min(b1, count)
    return b0, max(b0, b1)


# ---- im2col / col2im ---------------------------------------------------------------------

@_fast
def _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, col, t0, t1):
    """col[(c, u, v), n, i*OW + j] = x[n, c, i SH + u DH - PH, j SW + v DW - PW] (0 outside)."""
    n_, c_, h_, w_ = x.shape
    for t in range(t0, t1):          # t = r * N + n
        r = t // n_
        n = t - r * n_
        c = r // (kh * kw)
        u = (r // kw) % kh
        v = r % kw
        off = v * dw - pw
        b0, b1 = _valid_range(off, sw, w_, ow)
        for i in range(oh):
            h = i * sh - ph + u * dh
            base = i * ow
            if h < 0 or h >= h_:
                for j in range(ow):
                    col[r, n, base + j] = 0
                continue
            for j in range(b0):
                col[r, n, base + j] = 0
            for j in range(b0, b1):
                col[r, n, base + j] = x[n, c, h, j * sw + off]
            for j in range(b1, ow):
                col[r, n, base + j] = 0


@_fast
def _col2im(col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, gx, t0, t1):
    """The adjoint of _im2col: every column entry is added back to the input pixel it came
    from.  One (n, c) plane per task, so no two threads write the same pixel."""
    n_, c_, h_, w_ = gx.shape
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        plane = gx[n, c]
        for q0 in range(h_):
            for q1 in range(w_):
                plane[q0, q1] = 0
        for u in range(kh):
            for v in range(kw):
                r = (c * kh + u) * kw + v
                off = v * dw - pw
                b0, b1 = _valid_range(off, sw, w_, ow)
                for i in range(oh):
                    h = i * sh - ph + u * dh
                    if h < 0 or h >= h_:
                        continue
                    base = i * ow
                    for j in range(b0, b1):
                        plane[h, j * sw + off] += col[r, n, base + j]


@_fast
def _swap01(src, dst, t0, t1):
    """dst[b, a, :] = src[a, b, :]: (N, O, P) <-> (O, N, P), whole rows at a time."""
    a_, b_, _ = src.shape
    for t in range(t0, t1):
        a = t // b_
        b = t - a * b_
        for q in range(src.shape[2]):      # an explicit loop: much faster than a slice copy
            dst[b, a, q] = src[a, b, q]


def _geometry(x_shape, w_shape, stride, padding, dilation):
    kh, kw = w_shape[2:]
    oh = conv_output_size(x_shape[2], kh, stride[0], padding[0], dilation[0])
    ow = conv_output_size(x_shape[3], kw, stride[1], padding[1], dilation[1])
    return kh, kw, oh, ow


def _flat(stride, padding, dilation):
    return stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1]


def _im2col_array(x, kh, kw, geometry, oh, ow):
    n, c = x.shape[:2]
    col = np.empty((c * kh * kw, n, oh * ow), dtype=x.dtype)
    _run(_im2col, c * kh * kw * n, col.size, x, kh, kw, *geometry, oh, ow, col)
    return col


def _swapped(a):
    """(A, B, P) -> (B, A, P), contiguous."""
    out = np.empty((a.shape[1], a.shape[0], a.shape[2]), dtype=a.dtype)
    _run(_swap01, a.shape[0] * a.shape[1], a.size, a, out)
    return out


def _is_pointwise(kh, kw, stride, padding, groups):
    """1x1, stride 1, no padding: col is x itself, no im2col needed."""
    return (kh, kw, tuple(stride), tuple(padding), groups) == (1, 1, (1, 1), (0, 0), 1)


def _is_depthwise(c, weight_shape, groups):
    return groups == c and groups > 1 and weight_shape[1] == 1


def _per_example(n, groups, p):
    return groups == 1 and (p >= _PER_EXAMPLE_MIN_PIXELS or n == 1)


def _batch_step(x_shape, w_shape, out_pixels, itemsize):
    """Examples per slice so that col stays under MAX_COL_BYTES."""
    per_example = w_shape[1] * w_shape[2] * w_shape[3] * out_pixels * itemsize
    if x_shape[1] != w_shape[1]:      # groups: col holds all C input channels
        per_example = per_example * x_shape[1] // w_shape[1]
    return max(1, MAX_COL_BYTES // max(per_example, 1))


# ---- convolution ---------------------------------------------------------------------------

def conv2d_forward(x, weight, stride, padding, dilation, groups):
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight, dtype=x.dtype)
    n, c = x.shape[:2]
    o = weight.shape[0]
    kh, kw, oh, ow = _geometry(x.shape, weight.shape, stride, padding, dilation)
    geometry = _flat(stride, padding, dilation)
    y = np.empty((n, o, oh, ow), dtype=x.dtype)
    if _is_depthwise(c, weight.shape, groups):
        _run(_depthwise_forward, n * o, y.size, x, weight, *geometry, y)
        return y
    p, k = oh * ow, weight.shape[1] * kh * kw
    if _is_pointwise(kh, kw, stride, padding, groups):
        return np.matmul(weight.reshape(o, c), x.reshape(n, c, p)).reshape(y.shape)
    step = _batch_step(x.shape, weight.shape, p, x.itemsize)
    for b in range(0, n, step):
        xb, m = x[b:b + step], min(step, n - b)
        col = _im2col_array(xb, kh, kw, geometry, oh, ow)                # (G K, m, P)
        if _per_example(m, groups, p):
            np.matmul(weight.reshape(o, k), col.transpose(1, 0, 2), out=y[b:b + m].reshape(m, o, p))
        else:
            y_t = np.matmul(weight.reshape(groups, o // groups, k), col.reshape(groups, k, m * p))
            _run(_swap01, o * m, y_t.size, y_t.reshape(o, m, p), y[b:b + m].reshape(m, o, p))
    return y


def conv2d_backward_input(grad_y, weight, x_shape, stride, padding, dilation, groups):
    grad_y = np.ascontiguousarray(grad_y)
    weight = np.ascontiguousarray(weight, dtype=grad_y.dtype)
    n, c = x_shape[:2]
    o = weight.shape[0]
    kh, kw, oh, ow = _geometry(x_shape, weight.shape, stride, padding, dilation)
    geometry = _flat(stride, padding, dilation)
    grad_x = np.empty(x_shape, dtype=grad_y.dtype)
    if _is_depthwise(c, weight.shape, groups):
        _run(_depthwise_backward_input, n * c, grad_x.size, grad_y, weight, *geometry, grad_x)
        return grad_x
    p, k = oh * ow, weight.shape[1] * kh * kw
    gy = grad_y.reshape(n, o, p)
    if _is_pointwise(kh, kw, stride, padding, groups):
        return np.matmul(weight.reshape(o, c).T, gy).reshape(x_shape)
    step = _batch_step(x_shape, weight.shape, p, grad_y.itemsize)
    for b in range(0, n, step):
        gyb, m = gy[b:b + step], min(step, n - b)
        if _per_example(m, groups, p):
            # (m, K, P): one product per example, read by col2im as a (K, m, P) view
            grad_col = np.matmul(weight.reshape(o, k).T, gyb).transpose(1, 0, 2)
        else:
            gy_t = _swapped(gyb).reshape(groups, o // groups, m * p)
            grad_col = np.matmul(weight.reshape(groups, o // groups, k).transpose(0, 2, 1), gy_t)
            grad_col = grad_col.reshape(groups * k, m, p)
        _run(_col2im, m * c, grad_col.size, grad_col, kh, kw, *geometry, oh, ow,
             grad_x[b:b + m])
    return grad_x


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups):
    grad_y = np.ascontiguousarray(grad_y)
    x = np.ascontiguousarray(x, dtype=grad_y.dtype)
    n, c = x.shape[:2]
    o = weight_shape[0]
    kh, kw, oh, ow = _geometry(x.shape, weight_shape, stride, padding, dilation)
    geometry = _flat(stride, padding, dilation)
    if _is_depthwise(c, weight_shape, groups):
        grad_w = np.empty(weight_shape, dtype=grad_y.dtype)
        _run(_depthwise_backward_weight, grad_w.size, grad_y.size * kh * kw, grad_y, x,
             *geometry, grad_w)
        return grad_w
    p, k = oh * ow, weight_shape[1] * kh * kw
    gy = grad_y.reshape(n, o, p)
    if _is_pointwise(kh, kw, stride, padding, groups):
        # sum over n of gy[n] @ x[n]^T
        return np.matmul(gy, x.reshape(n, c, p).transpose(0, 2, 1)).sum(axis=0).reshape(
            weight_shape)
    grad_w = np.zeros((groups, o // groups, k), dtype=grad_y.dtype)
    step = _batch_step(x.shape, weight_shape, p, grad_y.itemsize)
    for b in range(0, n, step):
        xb, m = x[b:b + step], min(step, n - b)
        col = _im2col_array(xb, kh, kw, geometry, oh, ow)                # (G K, m, P)
        if _per_example(m, groups, p) and k * m <= 4 * p:
            # sum over examples of gy[n] @ col[:, n, :]^T: m small products, no swap of gy
            grad_w += np.matmul(gy[b:b + m], col.transpose(1, 2, 0)).sum(axis=0)
        else:
            gy_t = _swapped(gy[b:b + m]).reshape(groups, o // groups, m * p)
            grad_w += np.matmul(gy_t, col.reshape(groups, k, m * p).transpose(0, 2, 1))
    return grad_w.reshape(weight_shape)


# ---- depthwise convolution: direct loops -------------------------------------------------------

@_fast
def _depthwise_forward(x, w, sh, sw, ph, pw, dh, dw, y, t0, t1):
    """y[n, o, i, j] = sum_{u,v} x_pad[n, o // M, i SH + u DH, j SW + v DW] w[o, 0, u, v],
    M = O / C outputs per input channel."""
    n_, c_, h_, w_ = x.shape
    o_, _, kh, kw = w.shape
    oh, ow = y.shape[2], y.shape[3]
    m = o_ // c_
    for t in range(t0, t1):
        n = t // o_
        o = t - n * o_
        c = o // m
        out = y[n, o]
        for i in range(oh):
            for j in range(ow):
                out[i, j] = 0
        for u in range(kh):
            for v in range(kw):
                wt = w[o, 0, u, v]
                off = v * dw - pw
                b0, b1 = _valid_range(off, sw, w_, ow)
                for i in range(oh):
                    h = i * sh - ph + u * dh
                    if h < 0 or h >= h_:
                        continue
                    for j in range(b0, b1):
                        out[i, j] += wt * x[n, c, h, j * sw + off]


@_fast
def _depthwise_backward_input(gy, w, sh, sw, ph, pw, dh, dw, gx, t0, t1):
    n_, c_, h_, w_ = gx.shape
    o_, _, kh, kw = w.shape
    oh, ow = gy.shape[2], gy.shape[3]
    m = o_ // c_
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        plane = gx[n, c]
        for q0 in range(h_):
            for q1 in range(w_):
                plane[q0, q1] = 0
        for o in range(c * m, (c + 1) * m):
            for u in range(kh):
                for v in range(kw):
                    wt = w[o, 0, u, v]
                    off = v * dw - pw
                    b0, b1 = _valid_range(off, sw, w_, ow)
                    for i in range(oh):
                        h = i * sh - ph + u * dh
                        if h < 0 or h >= h_:
                            continue
                        for j in range(b0, b1):
                            plane[h, j * sw + off] += wt * gy[n, o, i, j]


@_fast
def _depthwise_backward_weight(gy, x, sh, sw, ph, pw, dh, dw, gw, t0, t1):
    n_, c_, h_, w_ = x.shape
    o_, _, kh, kw = gw.shape
    oh, ow = gy.shape[2], gy.shape[3]
    m = o_ // c_
    for t in range(t0, t1):
        o = t // (kh * kw)
        u = (t // kw) % kh
        v = t % kw
        c = o // m
        off = v * dw - pw
        b0, b1 = _valid_range(off, sw, w_, ow)
        acc = 0.0
        for n in range(n_):
            for i in range(oh):
                h = i * sh - ph + u * dh
                if h < 0 or h >= h_:
                    continue
                for j in range(b0, b1):
                    acc += gy[n, o, i, j] * x[n, c, h, j * sw + off]
        gw[o, 0, u, v] = acc


# ---- pooling -----------------------------------------------------------------------------------

@_fast
def _max_pool_forward(x, kh, kw, sh, sw, ph, pw, y, argmax, t0, t1):
    """Window maximum and its flat index h*W + w; padding never wins; the first maximum (in
    row-major window order) wins a tie; a NaN wins like in np.argmax."""
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
                        if v > best or (v != v and best == best):
                            best = v
                            where = h * w_ + w
                y[n, c, i, j] = best
                argmax[n, c, i, j] = where


@_fast
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


@_fast
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
                s = x[n, c, 0, 0] * 0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        s += x[n, c, h, w]
                y[n, c, i, j] = s * scale


@_fast
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


def _pool_size(x_shape, kernel, stride, padding):
    return (conv_output_size(x_shape[2], kernel[0], stride[0], padding[0]),
            conv_output_size(x_shape[3], kernel[1], stride[1], padding[1]))


def max_pool2d_forward(x, kernel, stride, padding):
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    y = np.empty((n, c) + _pool_size(x.shape, kernel, stride, padding), dtype=x.dtype)
    argmax = np.empty(y.shape, dtype=np.int64)
    _run(_max_pool_forward, n * c, x.size, x, kernel[0], kernel[1], stride[0], stride[1],
         padding[0], padding[1], y, argmax)
    return y, argmax


def max_pool2d_backward(grad_y, argmax, x_shape):
    n, c, h, w = x_shape
    gy = np.ascontiguousarray(grad_y).reshape(n, c, -1)
    where = np.ascontiguousarray(argmax, dtype=np.int64).reshape(n, c, -1)
    grad_x = np.empty((n, c, h * w), dtype=grad_y.dtype)
    _run(_max_pool_backward, n * c, grad_x.size, gy, where, grad_x)
    return grad_x.reshape(x_shape)


def avg_pool2d_forward(x, kernel, stride, padding):
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    y = np.empty((n, c) + _pool_size(x.shape, kernel, stride, padding), dtype=x.dtype)
    _run(_avg_pool_forward, n * c, x.size, x, kernel[0], kernel[1], stride[0], stride[1],
         padding[0], padding[1], y)
    return y


def avg_pool2d_backward(grad_y, x_shape, kernel, stride, padding):
    grad_y = np.ascontiguousarray(grad_y)
    grad_x = np.empty(x_shape, dtype=grad_y.dtype)
    _run(_avg_pool_backward, x_shape[0] * x_shape[1], grad_x.size, grad_y, kernel[0],
         kernel[1], stride[0], stride[1], padding[0], padding[1], grad_x)
    return grad_x
