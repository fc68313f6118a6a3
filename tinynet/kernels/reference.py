"""Convolution and pooling as plain loops: the definition, and the oracle the fast kernels are
tested against.  Slow on purpose: one Python iteration per output position (i, j); each
iteration works on all examples and channels at once so that test shapes stay quick.

Notation (NCHW):

    N  batch size            C, O   input and output channels      G  groups
    H, W    input height and width          KH, KW   kernel height and width
    SH, SW  stride     PH, PW  zero padding on each side     DH, DW  dilation
    OH, OW  output height and width: OH = floor((H + 2 PH - DH (KH - 1) - 1) / SH) + 1

Convolution (a cross-correlation, as in PyTorch): with x padded by zeros,

    y[n, o, i, j] = sum_{c, u, v} x[n, g*C/G + c, i SH + u DH - PH, j SW + v DW - PW] w[o, c, u, v]

where g = o // (O/G) is the group of output channel o and c runs over its C/G inputs.
Each output pixel is the dot product of the kernel with the input window under it, so in
backward every window gives back: dL/dwindow += dL/dy[i, j] * w, dL/dw += dL/dy[i, j] * window.
"""
import numpy as np

from .. import backend
from ..geometry import conv_output_hw


def _window(i, j, stride, dilation, kernel):
    """The slices of the padded input that output pixel (i, j) sees."""
    (sh, sw), (dh, dw), (kh, kw) = stride, dilation, kernel
    return (slice(i * sh, i * sh + dh * (kh - 1) + 1, dh),
            slice(j * sw, j * sw + dw * (kw - 1) + 1, dw))


def _pad(xp, x, padding, value=0.0):
    ph, pw = padding
    return xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="constant",
                  constant_values=value)


# ---- convolution ---------------------------------------------------------------------------

def conv2d_forward(x, weight, stride, padding, dilation, groups, save=False):
    xp = backend.get_array_module(x)
    n, c = x.shape[:2]
    o, cg, kh, kw = weight.shape
    og = o // groups
    oh, ow = conv_output_hw(x.shape, (kh, kw), stride, padding, dilation)
    x_pad = _pad(xp, x, padding)
    y = xp.zeros((n, o, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            rows, cols = _window(i, j, stride, dilation, (kh, kw))
            for g in range(groups):
                window = x_pad[:, g * cg:(g + 1) * cg, rows, cols]      # (N, C/G, KH, KW)
                w = weight[g * og:(g + 1) * og]                         # (O/G, C/G, KH, KW)
                y[:, g * og:(g + 1) * og, i, j] = xp.einsum("ncuv,ocuv->no", window, w)
    return y, None   # nothing saved: dL/dW rebuilds what it needs


def conv2d_backward_input(grad_y, weight, x_shape, stride, padding, dilation, groups):
    xp = backend.get_array_module(grad_y)
    n, c, h, w_ = x_shape
    o, cg, kh, kw = weight.shape
    og = o // groups
    (ph, pw), (oh, ow) = padding, grad_y.shape[2:]
    grad_pad = xp.zeros((n, c, h + 2 * ph, w_ + 2 * pw), dtype=grad_y.dtype)
    for i in range(oh):
        for j in range(ow):
            rows, cols = _window(i, j, stride, dilation, (kh, kw))
            for g in range(groups):
                gy = grad_y[:, g * og:(g + 1) * og, i, j]               # (N, O/G)
                w = weight[g * og:(g + 1) * og]
                grad_pad[:, g * cg:(g + 1) * cg, rows, cols] += xp.einsum("no,ocuv->ncuv", gy, w)
    return grad_pad[:, :, ph:ph + h, pw:pw + w_]                        # drop the padding


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups,
                           saved=None):
    xp = backend.get_array_module(grad_y)
    o, cg, kh, kw = weight_shape
    og = o // groups
    oh, ow = grad_y.shape[2:]
    x_pad = _pad(xp, x, padding)
    grad_w = xp.zeros(weight_shape, dtype=grad_y.dtype)
    for i in range(oh):
        for j in range(ow):
            rows, cols = _window(i, j, stride, dilation, (kh, kw))
            for g in range(groups):
                gy = grad_y[:, g * og:(g + 1) * og, i, j]               # (N, O/G)
                window = x_pad[:, g * cg:(g + 1) * cg, rows, cols]      # (N, C/G, KH, KW)
                grad_w[g * og:(g + 1) * og] += xp.einsum("no,ncuv->ocuv", gy, window)
    return grad_w


# ---- pooling -------------------------------------------------------------------------------

def max_pool2d_forward(x, kernel, stride, padding):
    """y[n, c, i, j] = max of the window; padding counts as -inf (it never wins).

    argmax[n, c, i, j] = h * W + w of that maximum in the unpadded plane; the first one in
    row-major window order wins a tie.  A NaN is the maximum of its window, and of several
    NaNs the last one wins (PyTorch's CPU rule)."""
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = conv_output_hw(x.shape, kernel, stride, padding)
    y = xp.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = xp.empty((n, c, oh, ow), dtype=np.int64)
    for i in range(oh):
        # the window clipped to the real input (the padded part holds only -inf)
        h0, h1 = max(i * sh - ph, 0), min(i * sh - ph + kh, h)
        for j in range(ow):
            w0, w1 = max(j * sw - pw, 0), min(j * sw - pw + kw, w)
            window = x[:, :, h0:h1, w0:w1].reshape(n, c, (h1 - h0) * (w1 - w0))
            k = xp.argmax(window, axis=2)                 # first maximum (or first NaN)
            is_nan = xp.isnan(window)
            last_nan = window.shape[2] - 1 - xp.argmax(is_nan[:, :, ::-1], axis=2)
            k = xp.where(is_nan.any(axis=2), last_nan, k)
            y[:, :, i, j] = xp.take_along_axis(window, k[:, :, None], axis=2)[:, :, 0]
            width = w1 - w0
            argmax[:, :, i, j] = (h0 + k // width) * w + (w0 + k % width)
    return y, argmax


def max_pool2d_backward(grad_y, argmax, x_shape):
    """Each output's gradient goes to the one input that was its maximum."""
    xp = backend.get_array_module(grad_y)
    n, c, h, w = x_shape
    grad_x = xp.zeros((n, c, h * w), dtype=grad_y.dtype)
    rows = xp.arange(n)[:, None], xp.arange(c)[None, :]
    for i in range(grad_y.shape[2]):
        for j in range(grad_y.shape[3]):
            # within one (i, j) each (n, c) row has a single target: no collisions
            grad_x[rows[0], rows[1], argmax[:, :, i, j]] += grad_y[:, :, i, j]
    return grad_x.reshape(x_shape)


def avg_pool2d_forward(x, kernel, stride, padding):
    """y[n, c, i, j] = mean of the KH x KW window, zero padding included in the count."""
    xp = backend.get_array_module(x)
    n, c = x.shape[:2]
    oh, ow = conv_output_hw(x.shape, kernel, stride, padding)
    x_pad = _pad(xp, x, padding)
    y = xp.empty((n, c, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            rows, cols = _window(i, j, stride, (1, 1), kernel)
            y[:, :, i, j] = x_pad[:, :, rows, cols].mean(axis=(2, 3))
    return y


def avg_pool2d_backward(grad_y, x_shape, kernel, stride, padding):
    """Each input in a window gets 1/(KH KW) of that window's output gradient."""
    xp = backend.get_array_module(grad_y)
    n, c, h, w = x_shape
    (kh, kw), (ph, pw) = kernel, padding
    grad_pad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad_y.dtype)
    share = grad_y / (kh * kw)
    for i in range(grad_y.shape[2]):
        for j in range(grad_y.shape[3]):
            rows, cols = _window(i, j, stride, (1, 1), kernel)
            grad_pad[:, :, rows, cols] += share[:, :, i, j, None, None]
    return grad_pad[:, :, ph:ph + h, pw:pw + w]
