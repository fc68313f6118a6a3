"""Pooling (subsampling), forward and backward side by side.

Notation as in conv.py: x is (N, C, H, W); a KH x KW window moves with stride (SH, SW)
over the input padded by (PH, PW) on each side; OH = floor((H + 2 PH - KH) / SH) + 1.

    max pooling      y[n, c, i, j] = max_{u, v} x[n, c, i SH + u - PH, j SW + v - PW]
                     (padding counts as -inf); dL/dx gets dL/dy[i, j] at the position of the
                     maximum only, so forward remembers where it was (``argmax``).
    average pooling  y[n, c, i, j] = 1/(KH KW) sum_{u, v} x[n, c, i SH + u - PH, j SW + v - PW]
                     (padding counts as 0 and is counted, PyTorch's count_include_pad=True);
                     each input of a window gets 1/(KH KW) of the window's dL/dy.
    adaptive average pooling: a fixed output size; bin i covers rows
                     floor(i H / OH) .. ceil((i + 1) H / OH) - 1 (bins may overlap), as PyTorch.
    global average pooling: the mean over H and W, (N, C, H, W) -> (N, C).
"""
import numpy as np

from .. import backend, kernels
from ..autograd import Function
from ..kernels import conv_output_size
from ._checks import float_tensor
from .math import mean as _mean


class MaxPool2d(Function):
    def __init__(self, kernel, stride, padding):
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        self.x_shape = x.shape
        y, self.argmax = kernels.max_pool2d_forward(x, self.kernel, self.stride, self.padding)
        return y

    def backward(self, grad):
        return kernels.max_pool2d_backward(grad, self.argmax, self.x_shape)


class AvgPool2d(Function):
    def __init__(self, kernel, stride, padding):
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        self.x_shape = x.shape
        return kernels.avg_pool2d_forward(x, self.kernel, self.stride, self.padding)

    def backward(self, grad):
        return kernels.avg_pool2d_backward(grad, self.x_shape, self.kernel, self.stride,
                                           self.padding)


class AdaptiveAvgPool2d(Function):
    """y = A_H x A_W^T for each (n, c) plane, where row i of A_H (OH, H) holds 1/len(bin i)
    on the rows of bin i.  The op is linear, so dL/dx = A_H^T dL/dy A_W."""

    def __init__(self, output_size):
        self.output_size = output_size

    def forward(self, x):
        xp = backend.get_array_module(x)
        (h, w), (oh, ow) = x.shape[2:], self.output_size
        self.a_h = _bin_matrix(xp, h, oh, x.dtype)
        self.a_w = _bin_matrix(xp, w, ow, x.dtype)
        return self.a_h @ x @ self.a_w.T

    def backward(self, grad):
        return self.a_h.T @ grad @ self.a_w


def _bin_matrix(xp, size, out, dtype):
    """(out, size) averaging matrix of PyTorch's adaptive bins along one axis."""
    i = xp.arange(out)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)                    # ceil((i + 1) size / out)
    k = xp.arange(size)
    inside = (k[None, :] >= start[:, None]) & (k[None, :] < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


# ---- the functional API --------------------------------------------------------------

def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max over KH x KW windows of ``x`` (N, C, H, W); ``stride`` defaults to the kernel."""
    op = "max_pool2d"
    x, kernel, stride, padding = _pool_args(op, x, kernel_size, stride, padding)
    return MaxPool2d(kernel, stride, padding)(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Mean over KH x KW windows of ``x`` (N, C, H, W), zero padding included in the count;
    ``stride`` defaults to the kernel."""
    op = "avg_pool2d"
    x, kernel, stride, padding = _pool_args(op, x, kernel_size, stride, padding)
    return AvgPool2d(kernel, stride, padding)(x)


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed ``output_size`` (int or (OH, OW); None keeps that axis)."""
    op = "adaptive_avg_pool2d"
    x = _input_4d(x, op)
    h, w = x.shape[2:]
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(size if out is None else out
                            for out, size in zip(output_size, (h, w)))
    oh, ow = check_output_size(output_size, op)
    if h % oh == 0 and w % ow == 0:             # equal bins: a plain average pooling
        kernel = (h // oh, w // ow)
        return AvgPool2d(kernel, kernel, (0, 0))(x)
    return AdaptiveAvgPool2d((oh, ow))(x)


def global_avg_pool2d(x):
    """The mean of every channel over H and W: (N, C, H, W) -> (N, C)."""
    return _mean(_input_4d(x, "global_avg_pool2d"), axis=(2, 3))


# ---- argument checks -----------------------------------------------------------------

def _input_4d(x, op):
    x = float_tensor(x, "input", op)
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got {x.ndim}-D "
                         f"with shape {tuple(x.shape)}")
    return x


def _pair(value, name, op):
    try:
        return kernels.pair(value, name)
    except TypeError as exc:
        raise TypeError(f"{op}: {exc}") from None


def check_output_size(output_size, op):
    """(OH, OW) from an int or a pair, each >= 1 (None keeps an input axis: (OH, None))."""
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        if any(size is None for size in output_size):     # checked once the input is known
            output_size = tuple(1 if size is None else size for size in output_size)
    oh, ow = _pair(output_size, "output_size", op)
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: output_size must be >= 1, got {(oh, ow)}")
    return oh, ow


def check_window(op, kernel_size, stride, padding):
    """(kernel, stride, padding) pairs, checked: kernel and stride >= 1, padding between 0
    and half the kernel (as PyTorch).  Layers call this in their constructor."""
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else _pair(stride, "stride", op)
    padding = _pair(padding, "padding", op)
    if min(kernel) < 1:
        raise ValueError(f"{op}: kernel_size must be >= 1, got {kernel}")
    if min(stride) < 1:
        raise ValueError(f"{op}: stride must be >= 1, got {stride}")
    if min(padding) < 0 or padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding must be between 0 and half the kernel size "
                         f"{(kernel[0] // 2, kernel[1] // 2)}, got {padding}")
    return kernel, stride, padding


def _pool_args(op, x, kernel_size, stride, padding):
    x = _input_4d(x, op)
    kernel, stride, padding = check_window(op, kernel_size, stride, padding)
    h, w = x.shape[2:]
    out = (conv_output_size(h, kernel[0], stride[0], padding[0]),
           conv_output_size(w, kernel[1], stride[1], padding[1]))
    if min(out) < 1:
        raise ValueError(f"{op}: kernel {kernel} is larger than the padded input "
                         f"{(h + 2 * padding[0], w + 2 * padding[1])} (input {(h, w)}, "
                         f"padding {padding}); the output would be {out}")
    return x, kernel, stride, padding


__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "global_avg_pool2d"]
