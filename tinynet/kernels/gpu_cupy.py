"""GPU kernels for CuPy arrays.

Convolution on the GPU is im2col + one cuBLAS GEMM per group: the array-generic code of
im2col.py does exactly that when handed CuPy arrays (``xp.matmul`` is cuBLAS), so it is
reused here unchanged; so is average pooling (sums of shifted slices, each one elementwise
CUDA kernel).  What the generic code does poorly on a GPU is max pooling, whose two passes
over the window offsets launch many small kernels; here it is one CUDA thread per output:

    y[n, c, i, j]      = max over the window (padding never wins; a NaN wins, the last one
                         in the window as in PyTorch)
    argmax[n, c, i, j] = h * W + w of the first maximum in row-major window order

and its backward is one scatter-add of dL/dy into the argmax positions (atomic adds, since
overlapping windows may share a maximum).

Kernels are built on first use, once per process (``_kernel``), and CuPy keeps the compiled
binaries in its on-disk cache (~/.cupy/kernel_cache), so later processes do not recompile.
Importing this module does not import CuPy; ``max_pool2d_backward`` is written against
``xp`` and also runs with NumPy (the CPU tests run it that way).
"""
import numpy as np

from .. import backend
from ..geometry import conv_output_hw
from . import im2col as _generic
from .im2col import (avg_pool2d_backward, avg_pool2d_forward,  # noqa: F401  (the interface)
                     conv2d_backward_input, conv2d_backward_weight, conv2d_forward)

_kernels = {}

_MAX_POOL_SOURCE = r"""
    // i: flat index of this output in (N, C, OH, OW)
    const int j = i % ow;
    const int row = (i / ow) % oh;
    const long long plane = i / ((long long)oh * ow);
    const int h0 = max(row * sh - ph, 0), h1 = min(row * sh - ph + kh, h);
    const int w0 = max(j * sw - pw, 0), w1 = min(j * sw - pw + kw, w);
    const long long base = plane * h * w;
    T best = x[base + h0 * w + w0];
    long long where = h0 * w + w0;
    for (int a = h0; a < h1; ++a) {
        for (int b = w0; b < w1; ++b) {
            const T v = x[base + a * w + b];
            if (v > best || v != v) {   // larger, or a NaN (the last one wins, as PyTorch)
                best = v;
                where = a * w + b;
            }
        }
    }
    y = best;
    argmax = where;
"""


def _kernel(name):
    """The compiled CUDA kernel ``name``, built once per process."""
    if name not in _kernels:
        cupy = backend.require_cupy()
        if name == "max_pool2d_forward":
            _kernels[name] = cupy.ElementwiseKernel(
                "raw T x, int32 h, int32 w, int32 kh, int32 kw, int32 sh, int32 sw, "
                "int32 ph, int32 pw, int32 oh, int32 ow",
                "T y, int64 argmax", _MAX_POOL_SOURCE, "tinynet_max_pool2d_forward")
        else:
            raise KeyError(name)
    return _kernels[name]


def max_pool2d_forward(x, kernel, stride, padding):
    if not backend.is_cupy_array(x):             # NumPy input: the generic code
        return _generic.max_pool2d_forward(x, kernel, stride, padding)
    cupy = backend.require_cupy()
    n, c, h, w = x.shape
    oh, ow = conv_output_hw(x.shape, kernel, stride, padding)
    y = cupy.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = cupy.empty((n, c, oh, ow), dtype=np.int64)
    if y.size:
        _kernel("max_pool2d_forward")(
            cupy.ascontiguousarray(x), h, w, kernel[0], kernel[1], stride[0], stride[1],
            padding[0], padding[1], oh, ow, y, argmax)
    return y, argmax


def scatter_add(xp, target, index, values):
    """target[index[k]] += values[k] for every k, repeated indices summed (1-D arrays)."""
    if xp is np:
        np.add.at(target, index, values)
    else:
        import cupyx
        cupyx.scatter_add(target, index, values)


def max_pool2d_backward(grad_y, argmax, x_shape):
    """dL/dx[n, c].flat[argmax[n, c, i, j]] += dL/dy[n, c, i, j]."""
    xp = backend.get_array_module(grad_y)
    n, c, h, w = x_shape
    outputs = grad_y.shape[2] * grad_y.shape[3]
    # argmax indexes one (H, W) plane; shift it to the plane of its (n, c)
    plane_start = xp.arange(n * c, dtype=np.int64).repeat(outputs) * (h * w)
    index = plane_start + argmax.reshape(-1)
    grad_x = xp.zeros(n * c * h * w, dtype=grad_y.dtype)
    scatter_add(xp, grad_x, index, xp.ascontiguousarray(grad_y).reshape(-1))
    return grad_x.reshape(x_shape)
