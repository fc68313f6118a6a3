"""Convolution and pooling with im2col + GEMM, written once against ``xp`` (NumPy or CuPy).

Notation as in reference.py: N, C, H, W input; O output channels; G groups; KH, KW kernel;
SH, SW stride; PH, PW padding; DH, DW dilation; OH, OW output size.

The idea (Chainer, DeZero, Caffe).  Output pixel (i, j) of a convolution is a dot product
of the kernel with the input window under it.  Lay every window out as one column,

    col[c, u, v, n, i, j] = x_pad[n, c, i SH + u DH, j SW + v DW]

and the whole convolution is one matrix product per group:

    y[o, (n, i, j)] = sum_{(c, u, v)} w[o, (c, u, v)] col[(c, u, v), (n, i, j)]

Filling ``col`` loops over the KH * KW kernel offsets (u, v), never over output pixels:
for a fixed offset, the (i, j) grid of inputs it touches is one strided slice of x_pad.
Backward reuses the two halves of the picture:

    dL/dcol = w^T  dL/dy            then col2im adds each column back onto its window
    dL/dw   = dL/dy  col^T

``col`` is laid out (C, KH, KW, N, OH, OW) so that each group is a (C/G KH KW) x (N OH OW)
matrix: one large GEMM instead of N small ones.  The price is that y comes out (O, N, OH, OW)
and is transposed once at the end.  A very large batch is processed in a few slices so that
``col`` (KH KW times the size of the input) stays within MAX_COL_BYTES.

Depthwise convolution (one input channel per group) would make G GEMMs with inner size
KH KW only; there an elementwise multiply-accumulate over the kernel offsets is faster.
Pooling uses the same offset loops: max and mean over KH * KW shifted slices.
"""
import numpy as np

from .. import backend
from ..geometry import batch_step, conv_output_hw, is_depthwise


def _offset_slices(u, v, out_size, stride, dilation):
    """Rows and columns of the padded input that kernel offset (u, v) reads for all (i, j)."""
    (oh, ow), (sh, sw), (dh, dw) = out_size, stride, dilation
    return (slice(u * dh, u * dh + sh * (oh - 1) + 1, sh),
            slice(v * dw, v * dw + sw * (ow - 1) + 1, sw))


def _padded(xp, x, padding, value=0.0, channels_first=False):
    """x with PH, PW borders of ``value``; a (C, N, Hp, Wp) view when ``channels_first``.

    Without padding the input itself (or its transposed view) is returned: it is only read."""
    n, c, h, w = x.shape
    ph, pw = padding
    if channels_first:
        x = x.transpose(1, 0, 2, 3)
    if ph == 0 and pw == 0:
        return x
    out = xp.full(x.shape[:2] + (h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


# ---- im2col / col2im ------------------------------------------------------------------------

def im2col(x, kernel, stride, padding, dilation):
    """col (C, KH, KW, N, OH, OW): col[c, u, v, n, i, j] = x_pad[n, c, i SH + u DH, j SW + v DW]."""
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    kh, kw = kernel
    oh, ow = conv_output_hw(x.shape, kernel, stride, padding, dilation)
    x_pad = _padded(xp, x, padding, channels_first=True)          # (C, N, Hp, Wp)
    col = xp.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            rows, cols = _offset_slices(u, v, (oh, ow), stride, dilation)
            col[:, u, v] = x_pad[:, :, rows, cols]
    return col


def col2im(col, x_shape, stride, padding, dilation):
    """The adjoint of im2col: add every column entry back onto the input pixel it came from.
    Returns dL/dx (N, C, H, W)."""
    xp = backend.get_array_module(col)
    grad = _col2im_cnhw(col, x_shape[2:], stride, padding, dilation)
    return xp.ascontiguousarray(grad.transpose(1, 0, 2, 3))


def _col2im_cnhw(col, size, stride, padding, dilation):
    """col2im's result as a (C, N, H, W) view (the caller decides where to copy it)."""
    xp = backend.get_array_module(col)
    c, kh, kw, n, oh, ow = col.shape
    (h, w), (ph, pw) = size, padding
    grad_pad = xp.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=col.dtype)
    for u in range(kh):
        for v in range(kw):
            rows, cols = _offset_slices(u, v, (oh, ow), stride, dilation)
            grad_pad[:, :, rows, cols] += col[:, u, v]    # windows overlap: accumulate
    return grad_pad[:, :, ph:ph + h, pw:pw + w]



# ---- convolution -----------------------------------------------------------------------------
# ``col`` holds KH KW copies of the input; for a large batch that can be gigabytes.  The
# batch is therefore processed in slices whose ``col`` stays under MAX_COL_BYTES (one slice,
# the whole batch, for the usual sizes).

def _batch_slices(x_shape, weight_shape, out_size, itemsize):
    n = x_shape[0]
    step = batch_step(x_shape, weight_shape, out_size[0] * out_size[1], itemsize)
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _grad_y_matrix(grad_y, groups):
    """dL/dy as (G, O/G, N OH OW): the layout the GEMMs of both backwards want."""
    n, o, oh, ow = grad_y.shape
    return grad_y.transpose(1, 0, 2, 3).reshape(groups, o // groups, n * oh * ow)


def conv2d_forward(x, weight, stride, padding, dilation, groups, save=False):
    if is_depthwise(weight.shape, groups):
        return _depthwise_forward(x, weight, stride, padding, dilation), None
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    oh, ow = conv_output_hw(x.shape, (kh, kw), stride, padding, dilation)
    w_matrix = weight.reshape(groups, o // groups, cg * kh * kw)
    y = xp.empty((n, o, oh, ow), dtype=x.dtype)
    for batch in _batch_slices(x.shape, weight.shape, (oh, ow), x.dtype.itemsize):
        col = im2col(x[batch], (kh, kw), stride, padding, dilation)
        m = col.shape[3]
        col = col.reshape(groups, cg * kh * kw, m * oh * ow)
        y_t = xp.matmul(w_matrix, col)                          # (G, O/G, n OH OW)
        y[batch] = y_t.reshape(o, m, oh, ow).transpose(1, 0, 2, 3)
    return y, None   # nothing saved: dL/dW rebuilds what it needs


def conv2d_backward_input(grad_y, weight, x_shape, stride, padding, dilation, groups):
    if is_depthwise(weight.shape, groups):
        return _depthwise_backward_input(grad_y, weight, x_shape, stride, padding, dilation)
    xp = backend.get_array_module(grad_y)
    n, c = x_shape[:2]
    oh, ow = grad_y.shape[2:]
    o, cg, kh, kw = weight.shape
    w_t = weight.reshape(groups, o // groups, cg * kh * kw).transpose(0, 2, 1)
    grad_x = xp.empty(x_shape, dtype=grad_y.dtype)
    for batch in _batch_slices(x_shape, weight.shape, (oh, ow), grad_y.dtype.itemsize):
        gy = grad_y[batch]
        grad_col = xp.matmul(w_t, _grad_y_matrix(gy, groups))   # (G, C/G KH KW, n OH OW)
        grad_col = grad_col.reshape(c, kh, kw, gy.shape[0], oh, ow)
        grad_x[batch] = _col2im_cnhw(grad_col, x_shape[2:], stride, padding,
                                     dilation).transpose(1, 0, 2, 3)
    return grad_x


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups,
                           saved=None):
    o, cg, kh, kw = weight_shape
    if is_depthwise(weight_shape, groups):
        return _depthwise_backward_weight(grad_y, x, weight_shape, stride, padding, dilation)
    xp = backend.get_array_module(grad_y)
    n, c = x.shape[:2]
    oh, ow = grad_y.shape[2:]
    grad_w = xp.zeros((groups, o // groups, cg * kh * kw), dtype=grad_y.dtype)
    for batch in _batch_slices(x.shape, weight_shape, (oh, ow), grad_y.dtype.itemsize):
        col = im2col(x[batch], (kh, kw), stride, padding, dilation)
        col = col.reshape(groups, cg * kh * kw, -1)
        # dL/dW^T = col @ dL/dy^T, then transposed: the same product as dL/dy @ col^T, but
        # OpenBLAS splits this orientation (huge inner dimension) far better when the other
        # core is busy (benchmarks/RESULTS.md: 0.18 s against 3.2 s under load).
        grad_y_matrix = _grad_y_matrix(grad_y[batch], groups)
        grad_w += xp.matmul(col, grad_y_matrix.transpose(0, 2, 1)).transpose(0, 2, 1)
    return grad_w.reshape(weight_shape)


# ---- depthwise: multiply-accumulate over kernel offsets ----------------------------------------
# With M = O / C outputs per input channel, y viewed as (N, C, M, OH, OW):
#     y[n, c, m] = sum_{u, v} w[c M + m, 0, u, v] * x_pad[n, c, rows(u), cols(v)]

def _depthwise_forward(x, weight, stride, padding, dilation):
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    m = o // c
    oh, ow = conv_output_hw(x.shape, (kh, kw), stride, padding, dilation)
    x_pad = _padded(xp, x, padding)
    w4 = weight.reshape(c, m, kh, kw)
    y = xp.zeros((n, c, m, oh, ow), dtype=x.dtype)
    product = xp.empty_like(y)                      # reused: no allocation per offset
    for u in range(kh):
        for v in range(kw):
            rows, cols = _offset_slices(u, v, (oh, ow), stride, dilation)
            xp.multiply(x_pad[:, :, None, rows, cols], w4[:, :, u, v, None, None], out=product)
            y += product
    return y.reshape(n, o, oh, ow)


def _depthwise_backward_input(grad_y, weight, x_shape, stride, padding, dilation):
    xp = backend.get_array_module(grad_y)
    n, c, h, w = x_shape
    o, _, kh, kw = weight.shape
    m = o // c
    oh, ow = grad_y.shape[2:]
    ph, pw = padding
    gy = grad_y.reshape(n, c, m, oh, ow)
    w4 = weight.reshape(c, m, kh, kw)
    grad_pad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad_y.dtype)
    product = xp.empty((n, c, oh, ow), dtype=grad_y.dtype)
    for u in range(kh):
        for v in range(kw):
            rows, cols = _offset_slices(u, v, (oh, ow), stride, dilation)
            if m == 1:
                xp.multiply(gy[:, :, 0], w4[:, 0, u, v, None, None], out=product)
            else:
                product = xp.einsum("ncmij,cm->ncij", gy, w4[:, :, u, v])
            grad_pad[:, :, rows, cols] += product
    return xp.ascontiguousarray(grad_pad[:, :, ph:ph + h, pw:pw + w])


def _depthwise_backward_weight(grad_y, x, weight_shape, stride, padding, dilation):
    xp = backend.get_array_module(grad_y)
    n, c = x.shape[:2]
    o, _, kh, kw = weight_shape
    m = o // c
    oh, ow = grad_y.shape[2:]
    x_pad = _padded(xp, x, padding)
    gy = grad_y.reshape(n, c, m, oh, ow)
    grad_w = xp.empty((c, m, kh, kw), dtype=grad_y.dtype)
    for u in range(kh):
        for v in range(kw):
            rows, cols = _offset_slices(u, v, (oh, ow), stride, dilation)
            grad_w[:, :, u, v] = xp.einsum("ncmij,ncij->cm", gy, x_pad[:, :, rows, cols])
    return grad_w.reshape(weight_shape)


# ---- pooling ---------------------------------------------------------------------------------
# Padding never needs to be materialized here: for kernel offset (u, v) only the outputs
# whose input row i SH + u - PH and column j SW + v - PW fall inside the image take part
# (padding is -inf for max and 0 for the average: it never changes the result).

def _inside(offset, stride, pad, size, out):
    """For kernel offset ``offset`` along one axis: the outputs whose input lies inside
    [0, size), and those inputs, as two slices (None when there are none)."""
    first = max(0, -(-(pad - offset) // stride))              # ceil((P - u) / S)
    last = min(out - 1, (size - 1 + pad - offset) // stride)  # floor((size - 1 + P - u) / S)
    if last < first:
        return None
    start = first * stride + offset - pad
    return slice(first, last + 1), slice(start, start + stride * (last - first) + 1, stride)


def _offsets(x_shape, out_size, kernel, stride, padding):
    """(u, v, output block, input block) for every kernel offset that touches the image."""
    h, w = x_shape[2:]
    for u in range(kernel[0]):
        rows = _inside(u, stride[0], padding[0], h, out_size[0])
        for v in range(kernel[1]):
            cols = _inside(v, stride[1], padding[1], w, out_size[1])
            if rows is not None and cols is not None:
                yield (u, v, (Ellipsis, rows[0], cols[0]), (Ellipsis, rows[1], cols[1]))


def _flat_index(xp, in_block, w):
    """h * W + w of every input in the block (rows, columns) of one (H, W) plane."""
    rows, cols = in_block[1:]
    return (xp.arange(rows.start, rows.stop, rows.step)[:, None] * w
            + xp.arange(cols.start, cols.stop, cols.step)[None, :])


def max_pool2d_forward(x, kernel, stride, padding):
    """Two passes over the KH * KW offsets: the running maximum, then (offsets in reverse,
    so that the first one in row-major window order is written last and wins ties) where
    it was.  NaN propagates to y, and its gradient goes to the window's last NaN, as in
    the reference and Numba kernels (and PyTorch): a third pass, in forward order."""
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    (sh, sw), (ph, pw) = stride, padding
    oh, ow = conv_output_hw(x.shape, kernel, stride, padding)
    blocks = list(_offsets(x.shape, (oh, ow), kernel, stride, padding))
    y = xp.full((n, c, oh, ow), -np.inf, dtype=x.dtype)
    for _, _, out_block, in_block in blocks:
        xp.maximum(y[out_block], x[in_block], out=y[out_block])
    # flat index h * W + w of each window's first real input: the default answer
    first = (xp.maximum(xp.arange(oh) * sh - ph, 0)[:, None] * w
             + xp.maximum(xp.arange(ow) * sw - pw, 0)[None, :])
    argmax = xp.empty((n, c, oh, ow), dtype=np.int64)
    argmax[...] = first
    for _, _, out_block, in_block in reversed(blocks):
        xp.copyto(argmax[out_block], _flat_index(xp, in_block, w),
                  where=x[in_block] == y[out_block])
    if xp.isnan(y).any():
        for _, _, out_block, in_block in blocks:
            xp.copyto(argmax[out_block], _flat_index(xp, in_block, w),
                      where=xp.isnan(x[in_block]))
    return y, argmax


def max_pool2d_backward(grad_y, argmax, x_shape):
    """Route each output's gradient to the input that was its maximum.

    Overlapping windows can share a maximum, so the gradients are summed per target:
    ``bincount`` with weights is a scatter-add that NumPy and CuPy both have."""
    xp = backend.get_array_module(grad_y)
    n, c, h, w = x_shape
    plane = xp.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * (h * w)
    grad_x = xp.bincount((argmax + plane).ravel(), weights=grad_y.ravel(),
                         minlength=n * c * h * w)
    return grad_x.astype(grad_y.dtype, copy=False).reshape(x_shape)


def avg_pool2d_forward(x, kernel, stride, padding):
    """Sum over the KH * KW offsets divided by KH KW (padding counts as zeros)."""
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    oh, ow = conv_output_hw(x.shape, kernel, stride, padding)
    y = xp.zeros((n, c, oh, ow), dtype=x.dtype)
    for _, _, out_block, in_block in _offsets(x.shape, (oh, ow), kernel, stride, padding):
        y[out_block] += x[in_block]
    y /= kernel[0] * kernel[1]
    return y


def avg_pool2d_backward(grad_y, x_shape, kernel, stride, padding):
    """Every input of a window gets 1/(KH KW) of the window's output gradient."""
    xp = backend.get_array_module(grad_y)
    share = grad_y / (kernel[0] * kernel[1])
    grad_x = xp.zeros(x_shape, dtype=grad_y.dtype)
    for _, _, out_block, in_block in _offsets(x_shape, grad_y.shape[2:], kernel, stride,
                                              padding):
        grad_x[in_block] += share[out_block]
    return grad_x
