"""Pooling (subsampling), forward and backward side by side.

Notation as in conv.py: x is (N, C, H, W); a KH x KW window moves with stride (SH, SW)
over the input padded by (PH, PW) on each side; OH = floor((H + 2 PH - KH) / SH) + 1.

    max pooling      y[n, c, i, j] = max_{u, v} x[n, c, i SH + u - PH, j SW + v - PW]
                     (padding counts as -inf); dL/dx gets dL/dy[i, j] at the position of the
                     maximum only, so forward remembers where it was (``argmax``).
    average pooling  y[n, c, i, j] = 1/(KH KW) sum_{u, v} x[n, c, i SH + u - PH, j SW + v - PW]
                     (padding counts as 0 and is counted, PyTorch's count_include_pad=True);
                     each input of a window gets 1/(KH KW) of the window's dL/dy.
    adaptive average (max) pooling: a fixed output size; bin i covers rows
                     floor(i H / OH) .. ceil((i + 1) H / OH) - 1 (bins may overlap), as PyTorch.
    global average pooling: the mean over H and W, (N, C, H, W) -> (N, C).

PyTorch's options are built around the kernels (so every kernel setting has them):
ceil_mode rounds OH up, OH = ceil((H + 2 PH - KH) / SH) + 1 (less 1 if the last window
would start in the right padding), by padding the bottom/right explicitly beforehand
(with -inf for max, 0 for average); count_include_pad=False and divisor_override rescale
the kernel's window means by KH KW / divisor, a constant per output position.
"""
import numpy as np

from .. import backend, kernels
from ..autograd import Function, Tensor
from ..geometry import conv_output_hw, pair
from ._checks import float_tensor
from .activation import ReLU
from .math import mean as _mean
from .math import mul as _mul
from .shape import pad as _pad


class MaxPool2d(Function):
    def __init__(self, kernel, stride, padding):
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        self.x_shape = x.shape
        y, self.argmax = kernels.max_pool2d_forward(x, self.kernel, self.stride, self.padding)
        return y

    def backward(self, grad):
        return kernels.max_pool2d_backward(grad, self.argmax, self.x_shape)


class ReLUMaxPool2d(MaxPool2d):
    """max_pool2d(relu(x)), computed as relu(max_pool2d(x)): ReLU keeps the order of its
    inputs (a <= b gives relu(a) <= relu(b)), so the maximum of the ReLUs is the ReLU of
    the maximum, the same number.  The ReLU then runs on the pooled output, a quarter of x
    for 2x2 windows, in both directions, and x's ReLU is never made.  Each op's own code
    does its part:

        forward   y = relu(max_pool(x))
        backward  dL/dx = max_pool_backward(relu_backward(dL/dy))

    The gradients equal the two ops' run the other way round, but where every value of a
    window is <= 0 the (zero) gradient goes to the window's maximum instead of its first
    position.  So an infinite dL/dy gives its NaN at another place, and a zero may differ
    in sign."""

    def forward(self, x):
        self.relu = ReLU()
        return self.relu.forward(super().forward(x))

    def backward(self, grad):
        return super().backward(self.relu.backward(grad))


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


class AdaptiveMaxPool2d(Function):
    """Max over PyTorch's adaptive bins (see _bin_bounds).  Forward loops over the OH x OW
    bins (vectorized over N and C) and remembers each maximum's flat index h*W + w, so
    backward is max pooling's own scatter kernel.  The first maximum wins a tie; NaN wins."""

    def __init__(self, output_size):
        self.output_size = output_size

    def forward(self, x):
        xp = backend.get_array_module(x)
        n, c, h, w = self.x_shape = x.shape
        (oh, ow) = self.output_size
        rows, cols = _bin_bounds(h, oh), _bin_bounds(w, ow)
        y = xp.empty((n, c, oh, ow), dtype=x.dtype)
        self.argmax = xp.empty((n, c, oh, ow), dtype=np.int64)
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                window = x[:, :, h0:h1, w0:w1].reshape(n, c, -1)
                k = xp.argmax(window, axis=2)             # first maximum, or first NaN
                y[:, :, i, j] = xp.take_along_axis(window, k[:, :, None], axis=2)[:, :, 0]
                self.argmax[:, :, i, j] = (h0 + k // (w1 - w0)) * w + w0 + k % (w1 - w0)
        return y

    def backward(self, grad):
        return kernels.max_pool2d_backward(grad, self.argmax, self.x_shape)


def _bin_bounds(size, out):
    """[(start, end)] of PyTorch's adaptive bins: floor(i size/out) .. ceil((i+1) size/out)."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


# ---- the functional API --------------------------------------------------------------

def relu_max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """max_pool2d(relu(x), ...) as one op (ReLUMaxPool2d: the ReLU runs on the pooled
    output).  nn.Sequential runs a ReLU followed by a MaxPool2d this way.  Arguments as
    max_pool2d."""
    return _max_pool2d("relu_max_pool2d", x, kernel_size, stride, padding, 1, ceil_mode,
                       False, relu_first=True)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max over KH x KW windows of ``x`` (N, C, H, W); ``stride`` defaults to the kernel:

        y[n, c, i, j] = max_{u, v} x[n, c, i SH + u - PH, j SW + v - PW]   (padding: -inf)
        OH = floor((H + 2 PH - KH) / SH) + 1                                (likewise OW)

    Backward: dL/dx[n, c, h, w] = sum of dL/dy[n, c, i, j] over the windows (i, j) whose
    maximum is at (h, w) (the first in row-major order on a tie); 0 elsewhere.

    ceil_mode       round the output size up (windows may hang over the bottom/right edge)
    return_indices  also return each maximum's flat index h*W + w in its (n, c) plane, as
                    PyTorch (an integer Tensor)
    dilation        only 1 (PyTorch's max pooling also dilates; tinynet's does not)"""
    return _max_pool2d("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode,
                       return_indices, relu_first=False)


def _max_pool2d(op, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                relu_first):
    if dilation not in (1, (1, 1)):
        raise ValueError(f"{op}: dilation must be 1 (tinynet's max pooling does not dilate), "
                         f"got {dilation!r}")
    x, kernel, stride, padding = _pool_args(op, x, kernel_size, stride, padding)
    x, extra = _ceil_mode_padding(x, kernel, stride, padding, ceil_mode, -np.inf)
    fn = (ReLUMaxPool2d if relu_first else MaxPool2d)(kernel, stride, padding)
    y = fn(x)
    if not return_indices:
        return y
    indices = fn.argmax                 # forward keeps it (backward needs it)
    if extra[1]:          # an index into the padded plane: the same row and column
        w, wp = x.shape[3] - extra[1], x.shape[3]
        indices = (indices // wp) * w + indices % wp
    return y, Tensor(indices)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Mean over KH x KW windows of ``x`` (N, C, H, W); ``stride`` defaults to the kernel:

        y[n, c, i, j] = 1/(KH KW) sum_{u, v} x[n, c, i SH + u - PH, j SW + v - PW]  (padding: 0)
        OH = floor((H + 2 PH - KH) / SH) + 1                                (likewise OW)

    Backward: each input of window (i, j) gets dL/dy[n, c, i, j] / (KH KW) (summed over the
    windows that overlap it).

    count_include_pad  True (PyTorch's default): zero padding counts in the divisor;
                       False: only the real inputs of each window count
    ceil_mode          round the output size up; the part of a window hanging over the
                       padded input never counts (as PyTorch)
    divisor_override   divide every window sum by this number instead"""
    op = "avg_pool2d"
    x, kernel, stride, padding = _pool_args(op, x, kernel_size, stride, padding)
    if divisor_override is not None and (isinstance(divisor_override, bool) or not isinstance(
            divisor_override, (int, np.integer)) or divisor_override <= 0):
        raise ValueError(f"{op}: divisor_override must be a positive int or None, got "
                         f"{divisor_override!r}")
    h, w = x.shape[2:]
    x, _ = _ceil_mode_padding(x, kernel, stride, padding, ceil_mode, 0.0)
    y = AvgPool2d(kernel, stride, padding)(x)
    divisor = _avg_divisor((h, w), y.shape[2:], kernel, stride, padding, count_include_pad,
                           divisor_override)
    if divisor is None:
        return y
    scale = (kernel[0] * kernel[1] / divisor).astype(x.dtype)   # kernel mean -> wanted mean
    return _mul(y, backend.move(scale, x.device))


def _ceil_mode_padding(x, kernel, stride, padding, ceil_mode, value):
    """With ceil_mode, pad the bottom/right with ``value`` so that the kernels (which floor)
    produce PyTorch's ceil-mode output size.  Returns (x, (extra rows, extra columns))."""
    if not ceil_mode:
        return x, (0, 0)
    extra = []
    for size, k, s, p in zip(x.shape[2:], kernel, stride, padding):
        out = _ceil_output_size(size, k, s, p)
        extra.append(max(0, (out - 1) * s + k - (size + 2 * p)))
    if any(extra):
        x = _pad(x, (0, extra[1], 0, extra[0]), value=value)
    return x, tuple(extra)


def _ceil_output_size(size, kernel, stride, padding):
    """PyTorch's pooling output size with ceil_mode=True."""
    out = -(-(size + 2 * padding - kernel) // stride) + 1
    if (out - 1) * stride >= size + padding:       # the last window would start in padding
        out -= 1
    return out


def _avg_divisor(size, out, kernel, stride, padding, count_include_pad, divisor_override):
    """(OH, OW) array of what each window sum is divided by, as PyTorch; None when that is
    KH KW everywhere (the kernels' own mean)."""
    if divisor_override is not None:
        return np.full(out, float(divisor_override))
    counts = []
    for n, o, k, s, p in zip(size, out, kernel, stride, padding):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)              # the window within the padded input
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)   # within the real input
        counts.append(end - start)
    divisor = counts[0][:, None] * counts[1][None, :]
    if np.all(divisor == kernel[0] * kernel[1]):
        return None
    return divisor.astype(np.float64)


def adaptive_max_pool2d(x, output_size, return_indices=False):
    """Max pooling to a fixed ``output_size`` (int or (OH, OW); None keeps that axis), over
    PyTorch's adaptive bins; with ``return_indices`` also each maximum's flat index."""
    op = "adaptive_max_pool2d"
    x, (oh, ow) = _adaptive_args(x, output_size, op)
    fn = AdaptiveMaxPool2d((oh, ow))
    y = fn(x)
    return (y, Tensor(fn.argmax)) if return_indices else y


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed ``output_size`` (int or (OH, OW); None keeps that axis)."""
    op = "adaptive_avg_pool2d"
    x, (oh, ow) = _adaptive_args(x, output_size, op)
    h, w = x.shape[2:]
    if h % oh == 0 and w % ow == 0:             # equal bins: a plain average pooling
        kernel = (h // oh, w // ow)
        return AvgPool2d(kernel, kernel, (0, 0))(x)
    return AdaptiveAvgPool2d((oh, ow))(x)


def _adaptive_args(x, output_size, op):
    x = _input_4d(x, op)
    h, w = x.shape[2:]
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        output_size = tuple(size if out is None else out
                            for out, size in zip(output_size, (h, w)))
    return x, check_output_size(output_size, op)


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


def check_output_size(output_size, op):
    """(OH, OW) from an int or a pair, each >= 1 (None keeps an input axis: (OH, None))."""
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        if any(size is None for size in output_size):     # checked once the input is known
            output_size = tuple(1 if size is None else size for size in output_size)
    oh, ow = pair(output_size, "output_size", op)
    if oh < 1 or ow < 1:
        raise ValueError(f"{op}: output_size must be >= 1, got {(oh, ow)}")
    return oh, ow


def check_window(op, kernel_size, stride, padding):
    """(kernel, stride, padding) pairs, checked: kernel and stride >= 1, padding between 0
    and half the kernel (as PyTorch).  Layers call this in their constructor."""
    kernel = pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else pair(stride, "stride", op)
    padding = pair(padding, "padding", op)
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
    out = conv_output_hw(x.shape, kernel, stride, padding)
    if min(out) < 1:
        raise ValueError(f"{op}: kernel {kernel} is larger than the padded input "
                         f"{(h + 2 * padding[0], w + 2 * padding[1])} (input {(h, w)}, "
                         f"padding {padding}); the output would be {out}")
    return x, kernel, stride, padding


__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
           "global_avg_pool2d"]
