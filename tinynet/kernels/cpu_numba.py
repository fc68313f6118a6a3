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
through ``np.matmul``, as ONE large product per group: Y = W @ col is (O, N OH OW), and a
memory-bound swap makes it (N, O, OH OW).  (First layers multiply per example instead,
straight into NCHW: see ``_per_example_wins``.)  One exception to "BLAS does the
arithmetic": where NumPy's OpenBLAS runs narrower vectors than the CPU has, the forward's
and dL/dcol's products go through products.py's Numba kernels instead, the columns split
over the kernel threads (``_per_group``, ``_per_example``), and dL/dW's, the pixels split
over the threads (``_weight_part``): against np.matmul 1.02x-1.73x on five batched layers
(forward and dL/dx, stride 2 and 1x1 among them), dL/dW 1.23x-1.61x, 1.04x-1.76x per
example (AMD Zen 5 with OPENBLAS_CORETYPE=Haswell, 2026-12-06, RESULTS.md).

Depthwise convolution (groups == C, one input channel per group) has almost no arithmetic
per byte, so it gets direct loops instead of a GEMM.

The loops run on one or more threads through numba_threads.py; the arrays that live only
inside one call come from scratch.py (reused memory, no page faults).

Saved state: ``conv2d_forward(..., save=True)`` returns ``(y, col)``, and the caller (the
Conv2d Function) keeps col and hands it back to ``conv2d_backward_weight(..., saved=col)``,
which then needs no second im2col.  Nothing is kept here between calls.

Each kernel is compiled on its first call for each dtype (float32, float64), and cached on
disk (``cache=True``), so only the first run on a machine pays the compile time.  Importing
this module compiles nothing; ``tinynet.kernels`` imports it on the first conv/pool call.

Notation as in reference.py: N, C, H, W input; O output channels; G groups; KH, KW kernel;
SH, SW stride; PH, PW padding; DH, DW dilation; OH, OW output size; P = OH OW.
"""
import numpy as np

from ..geometry import batch_step, conv_output_hw, is_depthwise
from .jit import njit
from .numba_pool import (avg_pool2d_backward, avg_pool2d_forward,  # noqa: F401 (interface)
                         max_pool2d_backward, max_pool2d_forward)
from . import numba_first_layer, numba_threads, products
from .numba_threads import run as _run
from .scratch import empty, new_buffer, scratch


# ---- index helpers (compiled inline) --------------------------------------------------------

@njit(cache=True, inline="always")
def _valid_range(offset, stride, size, count):
    """The b in [0, count) with 0 <= b*stride + offset < size, as [b0, b1)."""
    b0 = 0 if offset >= 0 else (-offset + stride - 1) // stride
    b1 = 0 if size - offset <= 0 else (size - offset + stride - 1) // stride
    b1 = min(b1, count)
    return b0, max(b0, b1)


# ---- im2col / col2im ---------------------------------------------------------------------

# Inner loops run over 1-D row views with indices counted from 0.  Why: Numba wraps negative
# indices (x[-1] is the last element), so an index that might be negative, such as
# j * SW + offset, costs a check per element and keeps LLVM from vectorising the loop; over
# views, im2col and col2im ran 1.5-3x faster on the demo's layers.

@njit(cache=True, nogil=True)
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
        out = col[r, n]
        for i in range(oh):
            h = i * sh - ph + u * dh
            row = out[i * ow:(i + 1) * ow]
            if h < 0 or h >= h_:
                for j in range(ow):
                    row[j] = 0
                continue
            for j in range(b0):
                row[j] = 0
            if sw == 1:
                inside = row[b0:b1]
                source = x[n, c, h, b0 + off:b1 + off]
                for j in range(inside.size):
                    inside[j] = source[j]
            else:
                source = x[n, c, h]
                for j in range(b0, b1):
                    row[j] = source[j * sw + off]
            for j in range(b1, ow):
                row[j] = 0


@njit(cache=True, nogil=True)
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
                columns = col[r, n]
                for i in range(oh):
                    h = i * sh - ph + u * dh
                    if h < 0 or h >= h_:
                        continue
                    source = columns[i * ow + b0:i * ow + b1]
                    if sw == 1:
                        target = plane[h, b0 + off:b1 + off]
                        for j in range(source.size):
                            target[j] += source[j]
                    else:
                        target = plane[h]
                        for j in range(source.size):
                            target[(b0 + j) * sw + off] += source[j]


@njit(cache=True, nogil=True)
def _swap01(src, dst, t0, t1):
    """dst[b, a, :] = src[a, b, :]: (N, O, P) <-> (O, N, P), whole rows at a time."""
    a_, b_, _ = src.shape
    for t in range(t0, t1):
        a = t // b_
        b = t - a * b_
        source = src[a, b]
        target = dst[b, a]
        for q in range(source.size):       # an explicit loop: much faster than a slice copy
            target[q] = source[q]


def _geometry(x_shape, w_shape, stride, padding, dilation):
    kh, kw = w_shape[2:]
    return (kh, kw) + conv_output_hw(x_shape, (kh, kw), stride, padding, dilation)


def _flat(stride, padding, dilation):
    return stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1]


def _swap(a, out=None):
    """(A, B, P) -> (B, A, P), contiguous (into ``out``, or a scratch buffer)."""
    if out is None:
        out = scratch("swap", (a.shape[1], a.shape[0], a.shape[2]), a.dtype)
    _run(_swap01, a.shape[0] * a.shape[1], a.size, a, out)
    return out


def _to_onp(a):
    """(m, O, P) -> (O, m, P): for one example the same memory (a view), else _swap."""
    return a.reshape(a.shape[1], 1, a.shape[2]) if a.shape[0] == 1 else _swap(a)


def _columns(x, kh, kw, stride, padding, dilation, oh, ow, keep=False):
    """col (C KH KW, N, OH OW), in the scratch buffer or, with ``keep``, an array of its own
    (to be saved for backward).  A 1x1 kernel with stride 1 and no padding needs no im2col:
    col is x with axes 0, 1 swapped, and for one example x itself (a view, no copy) unless
    col is to be kept: a kept col goes to ``recycle`` after backward, which cannot tell a
    view of x (a kernel's output, allocated the same way) from a buffer of its own, and
    would hand x's memory out again while x lives."""
    n, c = x.shape[:2]
    shape = (c * kh * kw, n, oh * ow)
    pointwise = (kh, kw, tuple(stride), tuple(padding)) == (1, 1, (1, 1), (0, 0))
    if pointwise and n == 1 and not keep:
        return x.reshape(shape)
    col = new_buffer(shape, x.dtype) if keep else scratch("col", shape, x.dtype)
    if pointwise:
        return _swap(x.reshape(n, c, oh * ow), col)
    _run(_im2col, c * kh * kw * n, col.size, x, kh, kw, *_flat(stride, padding, dilation),
         oh, ow, col)
    return col


PANEL = 32     # columns per thread: a whole number of the products' panels (AVX-512, float32)


def _split_by_columns(a, b, out):
    """out[s] = a[s] b[s] for every slab s by products.py's kernels: each slab's columns in
    one chunk per kernel thread (whole panels), the (slab, chunk) tasks over the threads."""
    columns = out.shape[2]
    chunk = -(-columns // numba_threads.THREADS // PANEL) * PANEL
    chunks = -(-columns // chunk)
    _run(_column_chunks, out.shape[0] * chunks, out.size * a.shape[2], a, b, out, chunks,
         chunk)


def _column_chunks(a, b, out, chunks, chunk, t0, t1):
    """out[s, :, q0: q1] = a[s] b[s, :, q0: q1] for the tasks t in [t0, t1): slab s = t //
    chunks, columns [q0, q1) its chunk t % chunks."""
    for t in range(t0, t1):
        s, q0 = t // chunks, t % chunks * chunk
        q1 = min(q0 + chunk, out.shape[2])
        products.slab_products(a[s:s + 1], b[s:s + 1, :, q0:q1], out[s:s + 1, :, q0:q1])


def _repeated(matrix, count):
    """``matrix`` as ``count`` slabs: one view, slab stride 0 (writeable, as the kernels'
    signatures take, though nothing writes it)."""
    return np.lib.stride_tricks.as_strided(matrix, (count,) + matrix.shape,
                                           (0,) + matrix.strides)


def _per_group(a, b):
    """a[g] @ b[g] for every group g, as plain 2-D products (NumPy hands those straight to
    BLAS, transposed operands included); where products.py's kernels run, by them, the
    columns split over the kernel threads."""
    out = scratch("product", (a.shape[0], a.shape[1], b.shape[2]), a.dtype)
    if products.KERNELS:
        _split_by_columns(a, b, out)
        return out
    for g in range(a.shape[0]):
        np.matmul(a[g], b[g], out=out[g])
    return out


def _per_example(w_matrix, col, out):
    """out[i] = W col[:, i, :] for each example i (and group), written straight into out
    (m, O, P), NCHW: no layout swap.  col (G K, m, P) is read in place (BLAS takes its
    strided rows).  Where products.py's kernels run, they take the products, the examples
    as slabs (W repeated), each example's columns split over the kernel threads: against
    np.matmul (AMD Zen 5, 2026-12-06, alternated) 1.28x-1.46x on MobileNet's pointwise
    layers of one photo, 1.76x on a stride-2 first layer at batch 32, 1.04x-1.06x on
    224x224 first layers, the MobileNet v2 forward 1.12x."""
    groups, o_per_group, k = w_matrix.shape
    m, p = col.shape[1], col.shape[2]
    col4 = col.reshape(groups, k, m, p)
    out4 = out.reshape(m, groups, o_per_group, p)
    for g in range(groups):
        if products.KERNELS:
            _split_by_columns(_repeated(w_matrix[g], m), col4[g].transpose(1, 0, 2),
                              out4[:, g])
            continue
        for i in range(m):
            np.matmul(w_matrix[g], col4[g, :, i, :], out=out4[i, g])


def _per_example_grad_col(w_t, grad_y, out):
    """out[:, i, :] = W^T dL/dy[i] for each example i (and group): dL/dcol (G K, m, P) from
    dL/dy (m, O, P) read in place, NCHW, no layout swap."""
    groups, k, o_per_group = w_t.shape
    m, p = grad_y.shape[0], grad_y.shape[2]
    out4 = out.reshape(groups, k, m, p)
    gy4 = grad_y.reshape(m, groups, o_per_group, p)
    for i in range(m):
        for g in range(groups):
            np.matmul(w_t[g], gy4[i, g], out=out4[g, :, i, :])


def _per_example_grad_weight(col, grad_y, grad_w_t):
    """grad_w_t[g] += sum_i col[g, :, i, :] dL/dy[i, g]^T: dL/dW^T (G, K, O/G) from col
    (G K, m, P) and dL/dy (m, O, P), both read in place."""
    groups, k, o_per_group = grad_w_t.shape
    m, p = grad_y.shape[0], grad_y.shape[2]
    col4 = col.reshape(groups, k, m, p)
    gy4 = grad_y.reshape(m, groups, o_per_group, p)
    term = np.empty((k, o_per_group), dtype=grad_w_t.dtype)
    for i in range(m):
        for g in range(groups):
            np.matmul(col4[g, :, i, :], gy4[i, g].T, out=term)
            grad_w_t[g] += term


# Per-example products beat one large product plus the swap (measured on the 2-vCPU AMD
# EPYC, 2026-11-28, float32) for a single-example slice, where the swap is a plain copy
# (1x64x224x224: 48.7 -> 32.1 ms), and for first layers, K <= 72 with P >= 1024 (K = 27:
# 1.2-1.6x; K = 72: 1.15x); with K >= 144 they lost (0.8-0.9x), with P <= 784 they tied.
# The same rule holds for a backward product that has dL/dy to itself (a first layer in
# training wants dL/dW only): it then needs no swap.  K = 27, batch 32-64 at 56-64 px: dL/dW
# 1.0-1.2x and dL/dcol 1.2-1.3x faster in isolation, the first layer's step faster in 7 of
# 8 alternated pairs (0-15%); K = 288 a tie.  When both gradients are wanted, the one swap
# they share is cheaper than per-example products for both (measured 0.95-1.0x), so
# conv2d_backward keeps it.
def _per_example_wins(m, k, p):
    return m == 1 or (k <= 72 and p >= 1024)


# ---- convolution ---------------------------------------------------------------------------
# One GEMM per group (and per batch slice) in every direction: on a shared 2-core machine
# each multi-threaded BLAS call is a barrier, and N small per-example products were up to
# 10x slower than one large product plus a memory-bound layout swap.  The exception is
# where _per_example_wins (above), in all three directions: one example, or a first
# layer's small K with large planes, where each per-example product is big enough.

def conv2d_forward(x, weight, stride, padding, dilation, groups, save=False):
    """y, and col when ``save`` (dL/dW will be wanted) and the batch ran as one slice."""
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight, dtype=x.dtype)
    n, c = x.shape[:2]
    o = weight.shape[0]
    kh, kw, oh, ow = _geometry(x.shape, weight.shape, stride, padding, dilation)
    y = empty((n, o, oh, ow), x.dtype)
    if is_depthwise(weight.shape, groups):
        _run(_depthwise_forward, n * o, y.size, x, weight,
             *_flat(stride, padding, dilation), y)
        return y, None
    p, k = oh * ow, weight.shape[1] * kh * kw
    w_matrix = weight.reshape(groups, o // groups, k)
    step = batch_step(x.shape, weight.shape, p, x.itemsize)
    # one slice: col is dL/dW's too, keep it (a first layer's dL/dW needs none)
    keep = (save and step >= n and not numba_first_layer.applies(
        x.shape, weight.shape, stride, padding, dilation, groups))
    col = None
    for b in range(0, n, step):
        m = min(step, n - b)
        col = _columns(x[b:b + m], kh, kw, stride, padding, dilation, oh, ow, keep)
        if _per_example_wins(m, k, p):
            _per_example(w_matrix, col.reshape(groups * k, m, p), y[b:b + m])
            continue
        y_t = _per_group(w_matrix, col.reshape(groups, k, m * p))      # (G, O/G, m P)
        _swap(y_t.reshape(o, m, p), out=y[b:b + m].reshape(m, o, p))
    return y, (col if keep else None)


def conv2d_backward(grad_y, x, weight, stride, padding, dilation, groups, saved=None,
                    need_x=True, need_w=True, need_b=False):
    """(dL/dx, dL/dW, dL/db), each None when not needed: the two functions below, but with
    dL/dy swapped to (O, N, P) once for both products when each takes the batch in one
    slice (the usual case; the swap is a pass over dL/dy, about 6% of a first layer's
    backward).  dL/db comes only from a first layer's dL/dW (numba_first_layer.py); else
    None, and the caller sums it."""
    if need_w and numba_first_layer.applies(x.shape, weight.shape, stride, padding,
                                            dilation, groups):
        grad_w, grad_b = numba_first_layer.weight_and_bias_grad(
            np.ascontiguousarray(grad_y), x, weight.shape, padding)
        grad_x = (conv2d_backward_input(grad_y, weight, x.shape, stride, padding, dilation,
                                        groups) if need_x else None)
        return grad_x, grad_w, (grad_b if need_b else None)
    swapped = None
    if need_x and need_w and saved is not None and not is_depthwise(weight.shape, groups):
        grad_y = np.ascontiguousarray(grad_y)
        n, o = grad_y.shape[:2]
        p = grad_y.shape[2] * grad_y.shape[3]
        if batch_step(x.shape, weight.shape, p, grad_y.itemsize) >= n:
            swapped = _to_onp(grad_y.reshape(n, o, p))                  # (O, N, P)
    grad_x = (conv2d_backward_input(grad_y, weight, x.shape, stride, padding, dilation,
                                    groups, swapped) if need_x else None)
    grad_w = (conv2d_backward_weight(grad_y, x, weight.shape, stride, padding, dilation,
                                     groups, saved, swapped) if need_w else None)
    return grad_x, grad_w, None


def conv2d_backward_input(grad_y, weight, x_shape, stride, padding, dilation, groups,
                          swapped=None):
    """dL/dx; ``swapped``: dL/dy as (O, N, P), when the caller has it (conv2d_backward)."""
    grad_y = np.ascontiguousarray(grad_y)
    weight = np.ascontiguousarray(weight, dtype=grad_y.dtype)
    n, c = x_shape[:2]
    o = weight.shape[0]
    kh, kw, oh, ow = _geometry(x_shape, weight.shape, stride, padding, dilation)
    if numba_first_layer.input_grad_applies(x_shape, weight.shape, stride, padding, dilation,
                                            groups, grad_y.itemsize, numba_threads.THREADS):
        return numba_first_layer.conv2d_backward_input(grad_y, weight, x_shape, padding)
    grad_x = empty(x_shape, grad_y.dtype)
    if is_depthwise(weight.shape, groups):
        _run(_depthwise_backward_input, n * c, grad_x.size, grad_y, weight,
             *_flat(stride, padding, dilation), grad_x)
        return grad_x
    p, k = oh * ow, weight.shape[1] * kh * kw
    w_t = weight.reshape(groups, o // groups, k).transpose(0, 2, 1)     # (G, K, O/G)
    step = batch_step(x_shape, weight.shape, p, grad_y.itemsize)
    for b in range(0, n, step):
        m = min(step, n - b)
        if swapped is None and _per_example_wins(m, k, p):
            grad_col = scratch("product", (groups * k, m, p), grad_y.dtype)
            _per_example_grad_col(w_t, grad_y[b:b + m].reshape(m, o, p), grad_col)
        else:
            gy_t = (swapped if swapped is not None and m == n
                    else _to_onp(grad_y[b:b + m].reshape(m, o, p)))     # (O, m, P)
            grad_col = _per_group(w_t, gy_t.reshape(groups, o // groups, m * p))
        _run(_col2im, m * c, grad_col.size, grad_col.reshape(groups * k, m, p), kh, kw,
             *_flat(stride, padding, dilation), oh, ow, grad_x[b:b + m])
    return grad_x


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups,
                           saved=None, swapped=None):
    """dL/dW; ``saved`` is the col conv2d_forward returned for this x (None: rebuilt);
    ``swapped`` as in conv2d_backward_input."""
    grad_y = np.ascontiguousarray(grad_y)
    x = np.ascontiguousarray(x, dtype=grad_y.dtype)
    n, c = x.shape[:2]
    o = weight_shape[0]
    kh, kw, oh, ow = _geometry(x.shape, weight_shape, stride, padding, dilation)
    if is_depthwise(weight_shape, groups):
        grad_w = empty(weight_shape, grad_y.dtype)
        _run(_depthwise_backward_weight, grad_w.size, grad_y.size * kh * kw, grad_y, x,
             *_flat(stride, padding, dilation), grad_w)
        return grad_w
    if numba_first_layer.applies(x.shape, weight_shape, stride, padding, dilation, groups):
        return numba_first_layer.conv2d_backward_weight(grad_y, x, weight_shape, padding)
    p, k = oh * ow, weight_shape[1] * kh * kw
    # Computed transposed, dL/dW^T = col dL/dy^T of shape (K, O/G) per group: the same
    # product, but OpenBLAS splits it into far fewer synchronized blocks than
    # dL/dy col^T, which stalled for seconds (20x) when another process held a core.
    grad_w_t = np.zeros((groups, k, o // groups), dtype=grad_y.dtype)
    step = n if saved is not None else batch_step(x.shape, weight_shape, p, grad_y.itemsize)
    for b in range(0, n, step):
        m = min(step, n - b)
        col = saved if saved is not None else _columns(
            x[b:b + m], kh, kw, stride, padding, dilation, oh, ow)
        if swapped is None and _per_example_wins(m, k, p):
            _per_example_grad_weight(col.reshape(groups * k, m, p),
                                     grad_y[b:b + m].reshape(m, o, p), grad_w_t)
            continue
        col = col.reshape(groups, k, m * p)
        gy_t = (swapped if swapped is not None and m == n
                else _to_onp(grad_y[b:b + m].reshape(m, o, p))).reshape(groups, o // groups,
                                                                         m * p)
        if products.KERNELS:
            threads = numba_threads.THREADS
            partials = np.zeros((threads,) + grad_w_t.shape, grad_w_t.dtype)
            _run(_weight_part, threads, col.size * (o // groups), col, gy_t, partials)
            grad_w_t += partials.sum(axis=0)
            continue
        for g in range(groups):
            grad_w_t[g] += col[g] @ gy_t[g].T
    return np.ascontiguousarray(grad_w_t.transpose(0, 2, 1)).reshape(weight_shape)


WEIGHT_CHUNK = 256     # dL/dW: pixels per product (the packed panel, 256 x 32, in L1)


def _weight_part(col, gy_t, partials, t0, t1):
    """partials[t, g] = col[g] dL/dy^T[g] over part t of the N P pixels, t in [t0, t1), in
    products of WEIGHT_CHUNK pixels (products.py's kernels)."""
    parts, size = partials.shape[0], col.shape[2]
    for t in range(t0, t1):
        low, high = size * t // parts, size * (t + 1) // parts
        for c0 in range(low, high, WEIGHT_CHUNK):
            c1 = min(c0 + WEIGHT_CHUNK, high)
            products.slab_products_transposed(col[:, :, c0:c1], gy_t[:, :, c0:c1], partials[t],
                                              accumulate=True)



# ---- depthwise convolution: direct loops -------------------------------------------------------

@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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
