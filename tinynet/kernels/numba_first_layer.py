"""A first layer (few input channels, large planes): its forward pass, dL/dW and (where its
dL/dy fits the cache) dL/dx, direct.

A first layer has few input channels (C = 3 for an RGB image), so im2col's products have a
tiny inner or outer dimension K = C KH KW (27), and OpenBLAS runs them at a fraction of its
speed, with col (K x N P, 28 MB for the reference CNN's first layer at batch 64) built and
written to memory on the way.  Both products are short sums per output, done directly here.

Forward (KH = KW = 3).  Each output row is nine shifted input rows times nine weights, per
input channel:

    y[n, o, i, j] = b[o] + sum_c sum_{u, v < 3} w[o, c, u, v] x_pad[n, c, i + u, j + v]

The loop over j runs along three rows of the padded plane at once (nine loads, all in the
L1 cache) and updates two output rows (18 multiply-adds), a whole register of j at a time
(``simd.load_wide``: 16 float32 with AVX-512, where the compiler, told to prefer 256-bit
vectors by jit.py, vectorised it 8 wide: 1.09x-1.30x faster forwards, 1.06x-1.15x dL/dx,
AMD Zen 5, 2026-12-06); the bias is each row's starting value, so it costs no pass of its
own.  Measured on
the 2-core Intel Xeon (benchmarks/RESULTS.md, 2026-12-05 night), against im2col + GEMM + the
bias pass: 64x3x64x64 -> 32 2.0x-2.2x, 64x8x32x32 -> 16 3.5x-4.8x, 1x3x224x224 -> 64 3.0x.
(Accumulating a whole widened plane at a time, one long loop, gained less: 0.8x-2.4x over
im2col in its run, against 1.4x-3.5x for rows; its two accumulator planes leave the L1
cache.)

dL/dW.  Each weight's gradient is one dot product:

    dL/dw[o, c, u, v] = sum_{n, i, j} g[n, o, i, j] x_pad[n, c, i + u, j + v]     (stride 1)

With the rows of g widened by zeros to the padded width WP = OW + KW - 1, the pair (i, j)
becomes one flat index q = i WP + j, and the window of tap (u, v) is the padded plane read
from u WP + v on:

    dL/dw[o, c, u, v] = sum_n sum_q  g_wide[n, o, q] x_pad_flat[n, c, u WP + v + q]

(the zero columns of g_wide cancel the terms where j + v runs into the next row).  So every
weight is a contiguous dot product of OH WP terms, which the compiler vectorises.  Four
output channels and the three column shifts v = 0, 1, 2 are computed in one pass (KW = 3):
seven loads per twelve multiply-adds, where one dot at a time needs two per one.  The pass
runs over the pixels q a chunk of CHUNK at a time, all (c, u) for each chunk, so that the
chunk of the four g planes and of the windows (about 30 KiB at C = 3) stays in the L1
cache, where whole planes were read from L2 nine times.
Measured on the 2-core Intel Xeon (2026-12-05), against im2col with col kept from the
forward (with two channels a pass and no chunks): 64x3x64x64 -> 32: 1.3x (7.3 against
9.4 ms), 64x3x128x128 -> 32: 1.5x, 64x8x32x32 -> 16 (K = 72): 1.9x; with C = 16 (K = 144)
it lost (0.93x), hence the bound on K.  Four channels, the chunks and tasks per block of
channels (so that one example uses both threads) then gave 1.45x-2.05x on 32x3x64x64 -> 32
and 64x3x64x64 -> 32, 3.3x on 1x3x224x224 -> 64, 1.16x-1.19x on 8x8x32x32 -> 16
(2026-12-06, alternated in one process).  The im2col forward keeps no col for such layers
(cpu_numba.conv2d_forward).

Notation as in reference.py; K = C KH KW, P = OH OW.
"""
import numpy as np

from . import simd
from .jit import njit
from .numba_threads import run
from .scratch import empty

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


OUTPUT_BLOCK = 8        # forward: output channels per task (the tasks: examples x blocks)
ADDS_BIAS = True        # conv2d_forward takes the bias: it starts each output row


def forward_applies(x_shape, weight_shape, stride, padding, dilation, groups):
    """``applies``, and the kernel is 3x3 (the forward's taps are written out)."""
    return weight_shape[2] == 3 and applies(x_shape, weight_shape, stride, padding,
                                            dilation, groups)


@njit(cache=True, nogil=True, inline="always")
def _times(weight, vector):
    """weight * vector, lane by lane."""
    return simd.splat(weight, vector) * vector


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _forward(x, w, b, ph, pw, y, t0, t1):
    """y[n, o] for the tasks t in [t0, t1): example n = t // blocks, output channels
    OUTPUT_BLOCK (t % blocks) on, two at a time (3x3 kernels).  The copies are loops, not
    slice assignments: those took 1.7 s more to compile (2.9 against 1.2 s, once per dtype
    and machine), for the same speed."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    o_, oh, ow = y.shape[1], y.shape[2], y.shape[3]
    blocks = (o_ + OUTPUT_BLOCK - 1) // OUTPUT_BLOCK
    planes = np.zeros((c_, oh + 2, ow + 2), x.dtype)   # x_pad[n]: its border stays zero
    spare = np.empty(ow, y.dtype)                      # an odd O's missing second row
    lanes = simd.wide_lanes(spare)
    vector_end = ow - ow % lanes
    copied = -1
    for t in range(t0, t1):
        n, first = t // blocks, t % blocks * OUTPUT_BLOCK
        if n != copied:
            for c in range(c_):
                for h in range(h_):
                    target, source = planes[c, h + ph], x[n, c, h]
                    for q in range(w_):
                        target[pw + q] = source[q]
            copied = n
        for o in range(first, min(first + OUTPUT_BLOCK, o_), 2):
            o1 = min(o + 1, o_ - 1)
            for i in range(oh):
                y0, y1 = y[n, o, i], (y[n, o1, i] if o1 != o else spare)
                b0, b1 = b[o], b[o1]
                for j in range(ow):
                    y0[j], y1[j] = b0, b1
                for c in range(c_):
                    r0, r1, r2 = planes[c, i], planes[c, i + 1], planes[c, i + 2]
                    k, m = w[o, c], w[o1, c]
                    k0, k1, k2, k3, k4, k5, k6, k7, k8 = (k[0, 0], k[0, 1], k[0, 2], k[1, 0],
                                                          k[1, 1], k[1, 2], k[2, 0], k[2, 1],
                                                          k[2, 2])
                    m0, m1, m2, m3, m4, m5, m6, m7, m8 = (m[0, 0], m[0, 1], m[0, 2], m[1, 0],
                                                          m[1, 1], m[1, 2], m[2, 0], m[2, 1],
                                                          m[2, 2])
                    for j in range(0, vector_end, lanes):     # a register of j at a time
                        x0, x1 = simd.load_wide(r0, j), simd.load_wide(r0, j + 1)
                        x2, x3 = simd.load_wide(r0, j + 2), simd.load_wide(r1, j)
                        x4, x5 = simd.load_wide(r1, j + 1), simd.load_wide(r1, j + 2)
                        x6, x7 = simd.load_wide(r2, j), simd.load_wide(r2, j + 1)
                        x8 = simd.load_wide(r2, j + 2)
                        simd.store(y0, j, simd.load_wide(y0, j) + (
                            _times(k0, x0) + _times(k1, x1) + _times(k2, x2)
                            + _times(k3, x3) + _times(k4, x4) + _times(k5, x5)
                            + _times(k6, x6) + _times(k7, x7) + _times(k8, x8)))
                        simd.store(y1, j, simd.load_wide(y1, j) + (
                            _times(m0, x0) + _times(m1, x1) + _times(m2, x2)
                            + _times(m3, x3) + _times(m4, x4) + _times(m5, x5)
                            + _times(m6, x6) + _times(m7, x7) + _times(m8, x8)))
                    for j in range(vector_end, ow):
                        x0, x1, x2 = r0[j], r0[j + 1], r0[j + 2]
                        x3, x4, x5 = r1[j], r1[j + 1], r1[j + 2]
                        x6, x7, x8 = r2[j], r2[j + 1], r2[j + 2]
                        y0[j] += (k0 * x0 + k1 * x1 + k2 * x2 + k3 * x3 + k4 * x4
                                  + k5 * x5 + k6 * x6 + k7 * x7 + k8 * x8)
                        y1[j] += (m0 * x0 + m1 * x1 + m2 * x2 + m3 * x3 + m4 * x4
                                  + m5 * x5 + m6 * x6 + m7 * x7 + m8 * x8)


def conv2d_forward(x, weight, stride, padding, dilation, groups, save=False, bias=None):
    """(y, None) for a layer ``forward_applies`` accepts, y with ``bias`` (O,) when given.
    Nothing is saved: dL/dW reads x itself."""
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight, dtype=x.dtype)
    n, o = x.shape[0], weight.shape[0]
    oh, ow = x.shape[2] + 2 * padding[0] - 2, x.shape[3] + 2 * padding[1] - 2
    start = (np.zeros(o, x.dtype) if bias is None
             else np.ascontiguousarray(bias, dtype=x.dtype))
    y = empty((n, o, oh, ow), x.dtype)
    blocks = -(-o // OUTPUT_BLOCK)
    run(_forward, n * blocks, y.size * x.shape[1] * 9, x, weight, start, padding[0],
        padding[1], y)
    return y, None


# dL/dx: the layer's forward run backwards.  dL/dx is the correlation of dL/dy with the
# kernel flipped in both axes and its channel axes swapped, w'[c, o, u, v] = w[o, c, 2 - u,
# 2 - v], padding 2 - P: a convolution with O input channels and C (few) output channels,
# which _forward computes as it is.  It reads dL/dy's O planes once per pair of x's
# channels, so it pays where an example's padded dL/dy stays in a core's L2 cache.
# Measured against im2col + col2im (AMD Zen 5, 2026-12-06, alternated in one process,
# dL/dy's padded planes in brackets): 32x3x64x64 -> 32 (557 KB) 1.19x-1.23x, 64x3x64x64
# -> 32 1.26x, 8x8x32x32 -> 16 (74 KB) 2.22x, 64x8x32x32 -> 16 2.00x; 4x3x128x128 -> 32
# (2.2 MB) 0.77x, 2x3x224x224 -> 64 (13 MB) 0.58x, and a single example runs on one core
# (1x3x224x224 -> 64: 0.35x).
MAX_GRAD_PLANES_BYTES = 1 << 20


def input_grad_applies(x_shape, weight_shape, stride, padding, dilation, groups, itemsize,
                       threads):
    """``forward_applies``, padding at most 2, an example for every one of ``threads``, and
    an example's dL/dy (padded by one) within MAX_GRAD_PLANES_BYTES."""
    n, o = x_shape[0], weight_shape[0]
    oh = x_shape[2] + 2 * padding[0] - 2
    ow = x_shape[3] + 2 * padding[1] - 2
    return (forward_applies(x_shape, weight_shape, stride, padding, dilation, groups)
            and max(padding) <= 2 and n >= threads
            and o * (oh + 2) * (ow + 2) * itemsize <= MAX_GRAD_PLANES_BYTES)


def conv2d_backward_input(grad_y, weight, x_shape, padding):
    """dL/dx for a layer ``input_grad_applies`` accepts: _forward on dL/dy with the flipped,
    swapped kernel (C, O, 3, 3), padding 2 - P, no bias."""
    grad_y = np.ascontiguousarray(grad_y)
    flipped = np.ascontiguousarray(
        weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), dtype=grad_y.dtype)
    n, c = x_shape[:2]
    grad_x = empty(tuple(x_shape), grad_y.dtype)
    blocks = -(-c // OUTPUT_BLOCK)
    run(_forward, n * blocks, grad_x.size * grad_y.shape[1] * 9, grad_y, flipped,
        np.zeros(c, grad_y.dtype), 2 - padding[0], 2 - padding[1], grad_x)
    return grad_x


GRAD_CHANNELS = 4      # dL/dW: output channels per pass over the pixels (written out below)
CHUNK = 1024           # dL/dW: pixels per chunk (the chunk's rows stay in the L1 cache)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _grad_weight(x, grad_y, kh, ph, pw, partial, bias_partial, t0, t1):
    """partial[n, o, c, u, v] = sum_q g_wide[n, o, q] x_pad_flat[n, c, u WP + v + q] for the
    tasks t in [t0, t1): example n = t // groups, output channels GRAD_CHANNELS (t % groups)
    on (KW = 3); and bias_partial[n, o] = the sum of g[n, o] (float64), taken while g's rows
    are copied.  The sums are reassociable ('reassoc'), so that the compiler may spread them
    over the vector lanes."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    o_, oh, ow = grad_y.shape[1], grad_y.shape[2], grad_y.shape[3]
    wp, hp = ow + 2, oh + kh - 1                   # the padded plane the windows read
    size = oh * wp
    planes = np.zeros((c_, hp * wp + 2), x.dtype)  # x_pad flat, 2 slack: the last window
    wide = np.zeros((GRAD_CHANNELS, size), grad_y.dtype)   # planes of g, rows widened by 0s
    zero = np.zeros(1, grad_y.dtype)[0]            # the sums in g's dtype
    sums = np.empty((GRAD_CHANNELS, c_, kh, 3), grad_y.dtype)
    groups = (o_ + GRAD_CHANNELS - 1) // GRAD_CHANNELS
    copied = -1
    for t in range(t0, t1):
        n, o = t // groups, t % groups * GRAD_CHANNELS
        if n != copied:
            for c in range(c_):                    # x_pad[n, c]: its border stays zero
                plane = planes[c]
                for h in range(h_):
                    start, row = (h + ph) * wp + pw, x[n, c, h]
                    for j in range(w_):
                        plane[start + j] = row[j]
            copied = n
        for k in range(GRAD_CHANNELS):             # past O: the last channel again, not kept
            channel, g = min(o + k, o_ - 1), wide[k]
            total = 0.0
            for i in range(oh):
                row = grad_y[n, channel, i]
                for j in range(ow):
                    g[i * wp + j] = row[j]
                    total += np.float64(row[j])
            bias_partial[n, channel] = total
        sums[:] = zero
        for q0 in range(0, size, CHUNK):
            q1 = min(q0 + CHUNK, size)
            # Slices that start at the chunk, indexed from 0: the same loop over
            # range(q0, q1) on whole rows ran 4x slower.
            g0, g1, g2, g3 = wide[0, q0:q1], wide[1, q0:q1], wide[2, q0:q1], wide[3, q0:q1]
            for c in range(c_):
                for u in range(kh):
                    window = planes[c, u * wp + q0:u * wp + q1 + 2]
                    s00 = s01 = s02 = s10 = s11 = s12 = zero
                    s20 = s21 = s22 = s30 = s31 = s32 = zero
                    for q in range(q1 - q0):
                        x0, x1, x2 = window[q], window[q + 1], window[q + 2]
                        a0, a1, a2, a3 = g0[q], g1[q], g2[q], g3[q]
                        # s[k][v] += g[o + k, q] x_pad[c, u WP + v + q]
                        s00, s01, s02 = s00 + a0 * x0, s01 + a0 * x1, s02 + a0 * x2
                        s10, s11, s12 = s10 + a1 * x0, s11 + a1 * x1, s12 + a1 * x2
                        s20, s21, s22 = s20 + a2 * x0, s21 + a2 * x1, s22 + a2 * x2
                        s30, s31, s32 = s30 + a3 * x0, s31 + a3 * x1, s32 + a3 * x2
                    for k, d0, d1, d2 in ((0, s00, s01, s02), (1, s10, s11, s12),
                                          (2, s20, s21, s22), (3, s30, s31, s32)):
                        sums[k, c, u, 0] += d0
                        sums[k, c, u, 1] += d1
                        sums[k, c, u, 2] += d2
        for k in range(min(GRAD_CHANNELS, o_ - o)):
            partial[n, o + k] = sums[k]


def conv2d_backward_weight(grad_y, x, weight_shape, padding):
    """dL/dW for a layer ``applies`` accepts: one partial sum per example (on every core),
    added in float64."""
    return weight_and_bias_grad(grad_y, x, weight_shape, padding)[0]


def weight_and_bias_grad(grad_y, x, weight_shape, padding):
    """(dL/dW, dL/db): dL/db summed while dL/dy's rows are copied, no pass of its own."""
    grad_y = np.ascontiguousarray(grad_y)
    x = np.ascontiguousarray(x, dtype=grad_y.dtype)
    n = x.shape[0]
    partial = np.empty((n,) + tuple(weight_shape), grad_y.dtype)
    bias_partial = np.empty((n, weight_shape[0]))
    groups = -(-weight_shape[0] // GRAD_CHANNELS)
    run(_grad_weight, n * groups, grad_y.size * weight_shape[1] * weight_shape[2] * 3, x,
        grad_y, weight_shape[2], padding[0], padding[1], partial, bias_partial)
    return (partial.sum(axis=0, dtype=np.float64).astype(grad_y.dtype),
            bias_partial.sum(axis=0).astype(grad_y.dtype))
