"""ReLU and ReLU6 as Numba kernels, forward and backward: ONE pass each over the
activations.

The readable version is ``ReLU`` in functional/activation.py; it stays the reference these
kernels are tested against, and ``tinynet.kernels.use("numpy")`` runs it.  Its backward
builds a boolean mask (y > 0), a second one (isnan(y)), ORs them, casts the result to a
float slope and multiplies: five passes over arrays as large as the activation.  Here each
element is read and written once, with the same arithmetic, so the results are bitwise
equal::

    forward    y  = x if x > 0 or x is NaN else 0     (= np.maximum(x, 0), -0.0 -> +0.0)
    backward   gx = g * s,  s = 1 if y > 0 or y is NaN else 0
                                               (g * 0, not 0: an inf or NaN g still gives NaN)

    ReLU6 forward    y  = 0 if x < 0 else 6 if x > 6 else x   (= np.clip(x, 0, 6): -0.0, NaN kept)
    ReLU6 backward   gx = g * s,  s = 1 if 0 < y < 6 or y is NaN else 0   (y = clip(x, 0, 6))

ReLU6's forward is np.clip, one vectorised pass on one core, below 2^18 elements (there it
beat this loop on two cores); above, this loop: 1.45x-1.71x np.clip's speed on MobileNet
v2's large activations (Intel Xeon, 2026-12-05 night).  ReLU6's NumPy backward is four
passes and a cast.

Arrays are handled flat (C-contiguous), in blocks of BLOCK elements so that numba_threads.run
can split them over threads.  Both loops are bound by memory bandwidth: on the demo's
64x32x64x64 float32 activation (33 MB) the forward takes about as long as a copy, the
backward about 2x faster than the five NumPy passes (12-15 ms against 27 ms, one thread).
"""
import numpy as np

from .jit import njit
from .numba_threads import run
from .scratch import empty_like

BLOCK = 1 << 14


# Each loop body is one comparison and one select, no branch: "v <= 0" is False for NaN,
# so NaN takes the "> 0" side.  Written as "v > 0 or v != v" (two short-circuit tests) the
# backward ran 1.2x-3.8x slower on the reference CNN's activations (2-core Intel Xeon,
# 2026-12-05, outputs preallocated, alternated); the forward, bound by memory, the same.
# Each task's block is sliced out first and the loop runs over the slice from 0: indexed
# from t0 * BLOCK on, every index could be negative as far as the compiler knew (Numba
# wraps negative indices), and the loops ran 1.2x-2.3x slower (same machine, 2026-12-05
# night; now as fast as PyTorch's ReLU, whose time is the memory's).
@njit(cache=True, nogil=True)
def _relu_forward(x, y, t0, t1):
    start, stop = t0 * BLOCK, min(t1 * BLOCK, x.size)
    x, y = x[start:stop], y[start:stop]
    for i in range(x.size):
        v = x[i]
        y[i] = 0 if v <= 0 else v


@njit(cache=True, nogil=True)
def _relu_backward(grad, y, gx, t0, t1):
    start, stop = t0 * BLOCK, min(t1 * BLOCK, grad.size)
    grad, y, gx = grad[start:stop], y[start:stop], gx[start:stop]
    for i in range(grad.size):
        v, g = y[i], grad[i]
        gx[i] = g * 0 if v <= 0 else g             # slope 1 at NaN, as in PyTorch


@njit(cache=True, nogil=True)
def _relu6_forward(x, y, t0, t1):
    start, stop = t0 * BLOCK, min(t1 * BLOCK, x.size)
    x, y = x[start:stop], y[start:stop]
    for i in range(x.size):
        v = x[i]
        y[i] = 0 if v < 0 else (6 if v > 6 else v)   # as np.clip: -0.0 and NaN pass


@njit(cache=True, nogil=True)
def _relu6_backward(grad, y, gx, t0, t1):
    start, stop = t0 * BLOCK, min(t1 * BLOCK, grad.size)
    grad, y, gx = grad[start:stop], y[start:stop], gx[start:stop]
    for i in range(grad.size):
        v, g = y[i], grad[i]
        gx[i] = g * 0 if (v <= 0) | (v >= 6) else g


def _blocks(size):
    return (size + BLOCK - 1) // BLOCK


def relu_forward(x):
    """max(x, 0) of a C-contiguous float array, as a new array."""
    y = empty_like(x)
    run(_relu_forward, _blocks(x.size), x.size, x.reshape(-1), y.reshape(-1))
    return y


def relu_backward(grad, y):
    """dL/dx = dL/dy where y > 0 or y is NaN, else dL/dy * 0; C-contiguous arrays of one
    shape.  The result has grad's dtype."""
    gx = empty_like(grad)
    run(_relu_backward, _blocks(grad.size), 2 * grad.size, grad.reshape(-1), y.reshape(-1),
        gx.reshape(-1))
    return gx


def relu6_forward(x):
    """np.clip(x, 0, 6) of a C-contiguous float array, as a new array (-0.0 and NaN kept)."""
    y = empty_like(x)
    run(_relu6_forward, _blocks(x.size), x.size, x.reshape(-1), y.reshape(-1))
    return y


def relu6_backward(grad, y):
    """dL/dx = dL/dy where 0 < y < 6 or y is NaN, else dL/dy * 0 (y: relu6's output)."""
    gx = empty_like(grad)
    run(_relu6_backward, _blocks(grad.size), 2 * grad.size, grad.reshape(-1), y.reshape(-1),
        gx.reshape(-1))
    return gx
