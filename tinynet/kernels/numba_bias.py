"""A convolution's bias as Numba kernels: y += b per channel, and dL/db = sum of dL/dy.

The readable version is two NumPy lines in kernels/__init__.py (``add_bias``, ``bias_grad``,
which Conv2d calls), the reference these kernels are tested against
(``tinynet.kernels.use("numpy")`` runs them)::

    forward    y[n, o, i, j] += b[o]                     y += b.reshape(1, -1, 1, 1)
    backward   dL/db[o] = sum_{n, i, j} dL/dy[n, o, i, j]  grad.sum(axis=(0, 2, 3))

Why kernels: both lines are single-threaded NumPy passes over the layer's whole output,
and NumPy's broadcast add runs below the memory's speed; on the reference CNN's first layer
(64x32x64x64 float32, 2-vCPU AMD EPYC) they took 5.4 and 3.7 ms of a 330 ms training step.
Here one task is one (n, o) plane (the add) or one channel o over the batch (the sum), split
over the cores.  The sum accumulates each plane in float64, so it may differ from NumPy's
float32 pairwise sum in the last bits (it is the more accurate of the two).
"""
import numpy as np

from .jit import njit
from .numba_threads import run


@njit(cache=True, nogil=True)
def _add_bias(y, bias, t0, t1):
    o_ = y.shape[1]
    for t in range(t0, t1):                 # t = n O + o
        plane = y[t // o_, t % o_]
        value = bias[t % o_]
        for p in range(plane.size):
            plane[p] += value


@njit(cache=True, nogil=True, fastmath={"reassoc"})    # lets LLVM vectorise the sum
def _bias_grad(grad, total, t0, t1):
    for o in range(t0, t1):
        acc = 0.0
        for n in range(grad.shape[0]):
            plane = grad[n, o]
            for p in range(plane.size):
                acc += plane[p]
        total[o] = acc


def add_bias(y, bias):
    """y += bias per channel, in place; y (N, O, H, W) C-contiguous, bias (O,)."""
    n, o = y.shape[:2]
    flat = y.reshape(n, o, -1)
    run(_add_bias, n * o, y.size, flat, np.ascontiguousarray(bias, dtype=y.dtype))


def bias_grad(grad):
    """sum of grad (N, O, H, W), C-contiguous, over N, H, W: shape (O,), grad's dtype."""
    n, o = grad.shape[:2]
    total = np.empty(o, dtype=np.float64)
    run(_bias_grad, o, grad.size, grad.reshape(n, o, -1), total)
    return total.astype(grad.dtype)
