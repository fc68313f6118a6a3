"""dL/dW of a first layer (few input channels, large planes) as direct dot products.

A first layer has few input channels (C = 3 for an RGB image), so im2col's dL/dW product,
dL/dy (O x P) times col^T (P x C KH KW), has an inner dimension P in the thousands but an
output of only O x 27 or so: OpenBLAS runs it at a fraction of its speed (about 45 GFLOP/s
on the 2-core Intel Xeon), and col must be built, or kept from the forward pass (28 MB for
the reference CNN's first layer at batch 64).  Each weight's gradient is one dot product:

    dL/dw[o, c, u, v] = sum_{n, i, j} g[n, o, i, j] x_pad[n, c, i + u, j + v]     (stride 1)

With the rows of g widened by zeros to the padded width WP = OW + KW - 1, the pair (i, j)
becomes one flat index q = i WP + j, and the window of tap (u, v) is the padded plane read
from u WP + v on:

    dL/dw[o, c, u, v] = sum_n sum_q  g_wide[n, o, q] x_pad_flat[n, c, u WP + v + q]

(the zero columns of g_wide cancel the terms where j + v runs into the next row).  So every
weight is a contiguous dot product of OH WP terms, which the compiler vectorises.  Two
output channels and the three column shifts v = 0, 1, 2 are computed in one pass (KW = 3):
five loads per six multiply-adds, where one dot at a time needs two per one.

Measured on the 2-core Intel Xeon (benchmarks/RESULTS.md, 2026-12-05), against im2col with
col kept from the forward: 64x3x64x64 -> 32: 1.3x (7.3 against 9.4 ms), 64x3x128x128 -> 32:
1.5x, 64x8x32x32 -> 16 (K = 72): 1.9x; with C = 16 (K = 144) it lost (0.93x), hence the
bound on K.  The forward then keeps no col for such layers (cpu_numba.conv2d_forward).

Notation as in reference.py; K = C KH KW, P = OH OW.
"""
import numpy as np
from numba import njit

from .numba_threads import run

MAX_K = 72             # C KH KW: few input channels (measured: 72 wins 1.9x, 144 loses)
MIN_PIXELS = 1024      # P = OH OW: planes large enough for long dot products


def applies(x_shape, weight_shape, stride, padding, dilation, groups):
    """True for a stride-1, dilation-1, ungrouped convolution with KW = 3, K <= MAX_K and
    at least MIN_PIXELS output pixels per plane."""
    _, c, kh, kw = weight_shape
    oh = x_shape[2] + 2 * padding[0] - kh + 1
    ow = x_shape[3] + 2 * padding[1] - kw + 1
    return (tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1
            and kw == 3 and c * kh * kw <= MAX_K and oh > 0 and oh * ow >= MIN_PIXELS)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _grad_weight(x, grad_y, kh, ph, pw, partial, t0, t1):
    """partial[n, o, c, u, v] = sum_q g_wide[n, o, q] x_pad_flat[n, c, u WP + v + q] for the
    examples n in [t0, t1) (KW = 3).  The sums are reassociable ('reassoc'), so that the
    compiler may spread them over the vector lanes."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    o_, oh, ow = grad_y.shape[1], grad_y.shape[2], grad_y.shape[3]
    wp, hp = ow + 2, oh + kh - 1                   # the padded plane the windows read
    size = oh * wp
    planes = np.zeros((c_, hp * wp + 2), x.dtype)  # x_pad flat, 2 slack: the last window
    wide = np.zeros((2, size), grad_y.dtype)       # two planes of g, rows widened by zeros
    zero = np.zeros(1, grad_y.dtype)[0]            # the sums in g's dtype
    for n in range(t0, t1):
        for c in range(c_):                        # x_pad[n, c]: its border stays zero
            plane = planes[c]
            for h in range(h_):
                start, row = (h + ph) * wp + pw, x[n, c, h]
                for j in range(w_):
                    plane[start + j] = row[j]
        for o in range(0, o_, 2):
            o1 = min(o + 1, o_ - 1)                # an odd O: the last channel twice
            g0, g1 = wide[0], wide[1]
            for i in range(oh):
                row0, row1 = grad_y[n, o, i], grad_y[n, o1, i]
                for j in range(ow):
                    g0[i * wp + j], g1[i * wp + j] = row0[j], row1[j]
            for c in range(c_):
                for u in range(kh):
                    window = planes[c, u * wp:u * wp + size + 2]
                    s00 = s01 = s02 = s10 = s11 = s12 = zero
                    for q in range(size):
                        x0, x1, x2 = window[q], window[q + 1], window[q + 2]
                        a0, a1 = g0[q], g1[q]
                        s00 += a0 * x0
                        s01 += a0 * x1
                        s02 += a0 * x2
                        s10 += a1 * x0
                        s11 += a1 * x1
                        s12 += a1 * x2
                    partial[n, o, c, u, 0], partial[n, o, c, u, 1] = s00, s01
                    partial[n, o, c, u, 2] = s02
                    partial[n, o1, c, u, 0], partial[n, o1, c, u, 1] = s10, s11
                    partial[n, o1, c, u, 2] = s12


def conv2d_backward_weight(grad_y, x, weight_shape, padding):
    """dL/dW for a layer ``applies`` accepts: one partial sum per example (on every core),
    added in float64."""
    grad_y = np.ascontiguousarray(grad_y)
    x = np.ascontiguousarray(x, dtype=grad_y.dtype)
    n = x.shape[0]
    partial = np.empty((n,) + tuple(weight_shape), grad_y.dtype)
    run(_grad_weight, n, grad_y.size * weight_shape[1] * weight_shape[2] * 3, x, grad_y,
        weight_shape[2], padding[0], padding[1], partial)
    return partial.sum(axis=0, dtype=np.float64).astype(grad_y.dtype)
