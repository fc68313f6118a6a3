"""Winograd convolution F(2x2, 3x3): 3x3 kernels, stride 1, dilation 1, groups 1, on the CPU.

Why fewer multiplications: the 1-D case F(2, 3) worked by hand
-----------------------------------------------------------------
Two outputs of a 3-tap correlation of the inputs d0..d3 with the kernel g0, g1, g2,

    y0 = d0 g0 + d1 g1 + d2 g2
    y1 = d1 g0 + d2 g1 + d3 g2,

cost 6 multiplications done directly.  Winograd (1980; Lavin and Gray, 2016, for CNNs)
computes them with 4:

    m1 = (d0 - d2) g0                      m2 = (d1 + d2) (g0 + g1 + g2) / 2
    m4 = (d1 - d3) g2                      m3 = (d2 - d1) (g0 - g1 + g2) / 2

    y0 = m1 + m2 + m3                      y1 = m2 - m3 - m4

Check y0 by expanding: m2 + m3 = [(d1 + d2)(g0 + g1 + g2) + (d2 - d1)(g0 - g1 + g2)] / 2
= d1 g1 + d2 g0 + d2 g2 (the d1 g0 and d1 g2 terms cancel, d2 g1 cancels, the rest doubles);
adding m1 = d0 g0 - d2 g0 leaves d0 g0 + d1 g1 + d2 g2 = y0.  Likewise m2 - m3 = d1 g0 +
d1 g2 + d2 g1 and - m4 = -d1 g2 + d3 g2, so y1 = d1 g0 + d2 g1 + d3 g2.

The kernel factors (g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2) depend only on the weights: they are
computed once per layer, not per output.  In matrix form, with the 4-vector d and 3-vector g,

    y = A^T [ (G g) * (B^T d) ]          * element-wise (the only 4 real multiplications)

    B^T = [[1, 0, -1,  0],    G = [[1,    0,   0  ],    A^T = [[1, 1,  1,  0],
           [0, 1,  1,  0],         [1/2,  1/2, 1/2],           [0, 1, -1, -1]]
           [0, -1, 1,  0],         [1/2, -1/2, 1/2],
           [0, 1,  0, -1]]         [0,    0,   1  ]]

Nesting the 1-D algorithm in both directions gives F(2x2, 3x3): a 4x4 input tile d gives a
2x2 output tile with 16 multiplications instead of 2 x 2 x 9 = 36, 2.25x fewer:

    Y = A^T [ (G g G^T) * (B^T d B) ] A

The additions of B^T d B and A^T . A are cheap and memory-bound (Numba kernels below); the 16
multiplications per tile become 16 matrix products when summed over input channels:

    V[k, c, (n, t)] = (B^T d_{n,c,t} B)[k]      input tiles,  k = 0..15 the 4x4 positions
    U[k, c, o]      = (G g_{o,c} G^T)[k]        kernel, once per call (a small loop)
    M[k, (n, t), o] = sum_c V[k, c, (n, t)] U[k, c, o]       16 GEMMs, one per k
    y tile (n, o, t) = A^T M[:, (n, t), o] A

against im2col's one GEMM of 9 C rows per output pixel, this GEMM has 16 C rows per 4 output
pixels: 2.25x less arithmetic, and V is 16/4 = 4 values per input pixel, not col's 9.

Backward.  dL/dx is the "full" correlation of dL/dy with the kernel flipped in both axes and
its channel axes swapped, padding 2 - P: the same algorithm, run on dL/dy.  dL/dW is the
adjoint of the forward: dM = A dL/dY A^T per tile, dU[k] = V[k] dM[k]^T summed over tiles
(16 products with the long inner dimension N T), dL/dg = G^T dU G.

Accuracy: the transforms add and subtract inputs (and halve kernel values); the float32
error measured 0.3x-1.7x im2col's (benchmarks/RESULTS.md; the tests allow 4x).  The larger
F(4x4, 3x3) does 4x fewer multiplications than direct convolution, but its float32 error
measured 6x-12x im2col's, so it is not used here.

Notation as in reference.py; TH, TW = ceil(OH / 2), ceil(OW / 2) tiles per plane, T = TH TW.
"""
import numpy as np
from numba import njit

from ..geometry import MAX_COL_BYTES, conv_output_hw
from .numba_threads import run
from .scratch import empty, new_buffer, scratch

# The 1-D transforms of F(2, 3) (see above); the 2-D ones apply each along both axes.
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def applies(x_shape, weight_shape, stride, padding, dilation, groups):
    """True when F(2x2, 3x3) computes this convolution: 3x3 kernel, stride 1, dilation 1,
    groups 1, padding <= 2 (so that dL/dx's padding 2 - P is >= 0), at least one output."""
    return (tuple(weight_shape[2:]) == (3, 3) and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and groups == 1 and max(padding) <= 2
            and min(x_shape[2] + 2 * padding[0], x_shape[3] + 2 * padding[1]) >= 3)


MIN_CHANNELS = 48          # min(C, O)
MIN_CHANNELS_IN_A_BATCH = 32    # ... or this many, with at least MIN_BATCH examples
MIN_BATCH = 8
MIN_WORK = 2 ** 17         # N OH OW min(C, O): the size of the 16 products
MAX_TILE_BYTES = 2 * MAX_COL_BYTES      # V and M together, as float32


def faster(function_name, x_shape, weight_shape, padding):
    """The measured dispatch rule of 'auto': is Winograd faster than the Numba im2col + GEMM
    kernels (cpu_numba.py) for this layer?  The same answer for the layer's three products
    (``function_name`` is not used), so that dL/dW is handed the forward's own saved state.

    Measured with ``python -m benchmarks.bench_winograd`` (benchmarks/RESULTS.md, 2026-11-28
    afternoon, AMD EPYC Zen 3, 2 vCPUs, quiet), forward + dL/dx + dL/dW against im2col's, at
    28 shapes: Winograd needs wide layers, min(C, O) >= 48 (C = 3: 0.37x, C = 32: 0.99x,
    C = 16: 0.95x; the 16 GEMMs' inner dimension is C, too short for OpenBLAS below that),
    and enough work, N OH OW min(C, O) >= 2^17: above it 1.02x-1.76x at 13 of 14 shapes
    (the exception 1x512x20x20->512 at 0.98x), below it 0.41x-0.99x at 8 of 10 (exceptions
    8x128x8x8->128 at 1.04x, 4x64x16x16->64 at 1.06x): one small plane pays the fixed costs
    of 16 products and the transforms without the arithmetic to hide them.

    Measured again on a 2-core Intel Xeon (AVX-512; RESULTS.md, 2026-12-05): C = 32 layers
    won there with a batch, 1.04x-1.44x at N >= 8 (AMD: 0.99x, even), but not for one to
    four examples (0.84x-1.00x), hence the second channel bound, MIN_CHANNELS_IN_A_BATCH
    with N >= MIN_BATCH.  C = 3 lost there too (0.39x-0.44x), and so did the small single
    planes below MIN_WORK (0.42x-0.82x).

    Memory: V and M hold 16 (C + O) N TH TW numbers, about 4x the layer's input and output,
    and are not split into batch slices; beyond MAX_TILE_BYTES the im2col kernels, which
    slice the batch, run instead."""
    oh, ow, th, tw = _tiles(x_shape, padding)
    n, channels = x_shape[0], min(x_shape[1], weight_shape[0])
    wide = channels >= MIN_CHANNELS or (channels >= MIN_CHANNELS_IN_A_BATCH and n >= MIN_BATCH)
    return (wide and n * oh * ow * channels >= MIN_WORK
            and 16 * (x_shape[1] + weight_shape[0]) * n * th * tw * 4 <= MAX_TILE_BYTES)


# ---- the tile transforms (Numba) -------------------------------------------------------------
# Layouts.  V is (16, C, N T) and dM (16, O, N T), and a task of their transforms is one
# channel over the whole batch: it writes 16 long runs of consecutive tiles (a task per
# plane wrote 64-byte pieces, each on another page, and ran 2-4x slower).  The GEMMs read
# V[k] transposed, (N T x C) @ (C x O), the orientation OpenBLAS runs fastest here (the other
# one, (O x C) @ (C x N T), was 1.5x slower at most of the shapes measured).  M is
# (16, N T, O); the output transform reads it a tile at a time, all O channels at once.
# The 16 slabs of each of them start 320 bytes apart modulo 4 KiB (``_slabs``): slabs of a
# multiple of 4 KiB put the 16 write streams on the same cache sets, and the transforms ran
# 2-3x slower for it.

STAGGER_BYTES = 320


def _slabs(a, b, dtype, role=None):
    """An uninitialized (16, a, b) array, each [k] C-contiguous, slab starts staggered."""
    step = a * b + STAGGER_BYTES // np.dtype(dtype).itemsize
    flat = scratch(role, (16 * step,), dtype) if role else new_buffer((16 * step,), dtype)
    return flat.reshape(16, step)[:, :a * b].reshape(16, a, b)


@njit(cache=True, nogil=True)
def _input_tiles(x, ph, pw, th, tw, v, t0, t1):
    """v[k, c, (n TH + ti) TW + tj] = (B^T d B)[k], d = x_pad[n, c, 2 ti: 2 ti + 4,
    2 tj: 2 tj + 4], x_pad = x with PH, PW zeros before (and enough after to fill the last
    tile), built a plane at a time in a small buffer, so that the tile loop needs no bounds
    checks.  Task = one channel c, all examples: 16 long runs of writes."""
    n_, _, h_, w_ = x.shape
    plane = np.zeros((2 * th + 2, 2 * tw + 2), x.dtype)   # its border stays zero
    rows, cols = min(h_, plane.shape[0] - ph), min(w_, plane.shape[1] - pw)
    for c in range(t0, t1):
        for n in range(n_):
            for h in range(rows):
                target, source = plane[h + ph, pw:pw + cols], x[n, c, h]
                for q in range(cols):
                    target[q] = source[q]
            for ti in range(th):
                d0, d1, d2, d3 = (plane[2 * ti], plane[2 * ti + 1], plane[2 * ti + 2],
                                  plane[2 * ti + 3])
                t = (n * th + ti) * tw
                out = v[:, c, t:t + tw]              # (16, TW): this tile row's entries
                for tj in range(tw):
                    q, r, s, u = 2 * tj, 2 * tj + 1, 2 * tj + 2, 2 * tj + 3
                    # B^T d: the rows combined (d0 - d2, d1 + d2, d2 - d1, d1 - d3), per column
                    a0, a1, a2, a3 = d0[q] - d2[q], d0[r] - d2[r], d0[s] - d2[s], d0[u] - d2[u]
                    b0, b1, b2, b3 = d1[q] + d2[q], d1[r] + d2[r], d1[s] + d2[s], d1[u] + d2[u]
                    e0, e1, e2, e3 = d2[q] - d1[q], d2[r] - d1[r], d2[s] - d1[s], d2[u] - d1[u]
                    f0, f1, f2, f3 = d1[q] - d3[q], d1[r] - d3[r], d1[s] - d3[s], d1[u] - d3[u]
                    # (B^T d) B: the same combination of the columns, per row
                    for k, g0, g1, g2, g3 in ((0, a0, a1, a2, a3), (4, b0, b1, b2, b3),
                                              (8, e0, e1, e2, e3), (12, f0, f1, f2, f3)):
                        out[k, tj], out[k + 1, tj] = g0 - g2, g1 + g2
                        out[k + 2, tj], out[k + 3, tj] = g2 - g1, g1 - g3


@njit(cache=True, nogil=True)
def _output_tiles(m, th, tw, y, t0, t1):
    """y[n, o, 2 ti + i, 2 tj + j] = (A^T M A)[i, j] with M = m[:, (n TH + ti) TW + tj, o]
    (rows and columns past OH, OW dropped).  Task = (n, ti).  The four outputs of a tile are
    computed for all O at once (contiguous reads of m), then written out row by row."""
    n_, o_, oh, ow = y.shape
    quad = np.empty((tw, 4, o_), m.dtype)
    for task in range(t0, t1):
        n = task // th
        r = 2 * (task - n * th)
        for tj in range(tw):
            t = task * tw + tj
            m0, m1, m2, m3 = m[0, t], m[1, t], m[2, t], m[3, t]
            m4, m5, m6, m7 = m[4, t], m[5, t], m[6, t], m[7, t]
            m8, m9, m10, m11 = m[8, t], m[9, t], m[10, t], m[11, t]
            m12, m13, m14, m15 = m[12, t], m[13, t], m[14, t], m[15, t]
            y00, y01, y10, y11 = quad[tj, 0], quad[tj, 1], quad[tj, 2], quad[tj, 3]
            for o in range(o_):
                # A^T M: rows (m0 + m1 + m2, m1 - m2 - m3), per column; then per row
                s0, s1 = m0[o] + m4[o] + m8[o], m1[o] + m5[o] + m9[o]
                s2, s3 = m2[o] + m6[o] + m10[o], m3[o] + m7[o] + m11[o]
                u0, u1 = m4[o] - m8[o] - m12[o], m5[o] - m9[o] - m13[o]
                u2, u3 = m6[o] - m10[o] - m14[o], m7[o] - m11[o] - m15[o]
                y00[o], y01[o] = s0 + s1 + s2, s1 - s2 - s3
                y10[o], y11[o] = u0 + u1 + u2, u1 - u2 - u3
        pairs = ow // 2
        for o in range(o_):
            for i in range(min(2, oh - r)):
                row = y[n, o, r + i]
                for tj in range(pairs):
                    row[2 * tj] = quad[tj, 2 * i, o]
                    row[2 * tj + 1] = quad[tj, 2 * i + 1, o]
                if ow > 2 * pairs:
                    row[2 * pairs] = quad[pairs, 2 * i, o]


@njit(cache=True, nogil=True)
def _output_grad_tiles(gy, th, tw, dm, t0, t1):
    """dm[k, o, (n TH + ti) TW + tj] = (A dY A^T)[k], dY = gy[n, o, 2 ti: 2 ti + 2,
    2 tj: 2 tj + 2] (gy zero-padded to 2 TH x 2 TW): the adjoint of _output_tiles.
    Task = one channel o, all examples."""
    n_ = gy.shape[0]
    for o in range(t0, t1):
        for n in range(n_):
            plane = gy[n, o]
            for ti in range(th):
                e0, e1 = plane[2 * ti], plane[2 * ti + 1]
                t = (n * th + ti) * tw
                out = dm[:, o, t:t + tw]             # (16, TW)
                for tj in range(tw):
                    e00, e01, e10, e11 = e0[2 * tj], e0[2 * tj + 1], e1[2 * tj], e1[2 * tj + 1]
                    # A dY: rows (1, 0), (1, 1), (1, -1), (0, -1) of A; then (.) A^T per row
                    for a, f0, f1 in ((0, e00, e01), (1, e00 + e10, e01 + e11),
                                      (2, e00 - e10, e01 - e11), (3, -e10, -e11)):
                        out[4 * a, tj], out[4 * a + 1, tj] = f0, f0 + f1
                        out[4 * a + 2, tj], out[4 * a + 3, tj] = f0 - f1, -f1

@njit(cache=True, nogil=True)
def _kernel_tiles(w, u):
    """u[4 a + b, c, o] = (G g G^T)[a, b], g = w[o, c] (float64 inside).  G's rows are
    (1, 0, 0), ((1, 1, 1) / 2), ((1, -1, 1) / 2), (0, 0, 1)."""
    o_, c_ = w.shape[:2]
    gg = np.empty((4, 3))
    for c in range(c_):
        for o in range(o_):
            g = w[o, c]
            for v in range(3):            # G g: along the kernel's rows, per column v
                g0, g1, g2 = np.float64(g[0, v]), np.float64(g[1, v]), np.float64(g[2, v])
                gg[0, v], gg[1, v] = g0, (g0 + g1 + g2) * 0.5
                gg[2, v], gg[3, v] = (g0 - g1 + g2) * 0.5, g2
            for a in range(4):            # (G g) G^T: along the columns, per row a
                h0, h1, h2 = gg[a, 0], gg[a, 1], gg[a, 2]
                u[4 * a, c, o] = h0
                u[4 * a + 1, c, o] = (h0 + h1 + h2) * 0.5
                u[4 * a + 2, c, o] = (h0 - h1 + h2) * 0.5
                u[4 * a + 3, c, o] = h2


@njit(cache=True, nogil=True)
def _kernel_grad_tiles(du, grad_w):
    """grad_w[o, c] = G^T dU G, dU[a, b] = du[4 a + b, o, c] (float64 inside): the adjoint
    of _kernel_tiles."""
    o_, c_ = grad_w.shape[:2]
    half = np.empty((3, 4))
    for c in range(c_):
        for o in range(o_):
            for b in range(4):            # G^T dU: columns b, the rows combined
                d0, d1 = np.float64(du[b, o, c]), np.float64(du[4 + b, o, c])
                d2, d3 = np.float64(du[8 + b, o, c]), np.float64(du[12 + b, o, c])
                half[0, b] = d0 + (d1 + d2) * 0.5
                half[1, b] = (d1 - d2) * 0.5
                half[2, b] = (d1 + d2) * 0.5 + d3
            for u_ in range(3):           # (G^T dU) G: per row, the columns combined
                e0, e1, e2, e3 = half[u_, 0], half[u_, 1], half[u_, 2], half[u_, 3]
                grad_w[o, c, u_, 0] = e0 + (e1 + e2) * 0.5
                grad_w[o, c, u_, 1] = (e1 - e2) * 0.5
                grad_w[o, c, u_, 2] = (e1 + e2) * 0.5 + e3


# ---- the kernel interface ------------------------------------------------------------------

def _tiles(x_shape, padding):
    oh, ow = conv_output_hw(x_shape, (3, 3), (1, 1), padding)
    return oh, ow, (oh + 1) // 2, (ow + 1) // 2


def kernel_transform(weight):
    """U[k, c, o] = (G g[o, c] G^T)[k], shape (16, C, O), in the weight's dtype."""
    u = _slabs(weight.shape[1], weight.shape[0], weight.dtype, "winograd_u")
    _kernel_tiles(weight, u)
    return u


def input_transform(x, padding, th, tw, keep=False):
    """V (16, C, N T) of x's tiles (an array of its own with ``keep``, else scratch)."""
    n, c = x.shape[:2]
    v = _slabs(c, n * th * tw, x.dtype, None if keep else "winograd_v")
    run(_input_tiles, c, v.size, x, padding[0], padding[1], th, tw, v)
    return v


def conv2d_forward(x, weight, stride, padding, dilation, groups, save=False):
    """y, and V when ``save`` (dL/dW will read it)."""
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight, dtype=x.dtype)
    n, o = x.shape[0], weight.shape[0]
    oh, ow, th, tw = _tiles(x.shape, padding)
    v = input_transform(x, padding, th, tw, keep=save)           # (16, C, N T)
    u = kernel_transform(weight)                                 # (16, C, O)
    m = _slabs(n * th * tw, o, x.dtype, "winograd_m")            # (16, N T, O)
    for k in range(16):
        np.matmul(v[k].T, u[k], out=m[k])
    y = empty((n, o, oh, ow), x.dtype)
    run(_output_tiles, n * th, m.size, m, th, tw, y)
    return y, (v if save else None)


def conv2d_backward_input(grad_y, weight, x_shape, stride, padding, dilation, groups):
    """dL/dx = the Winograd correlation of dL/dy with w[o, c, 2 - u, 2 - v] as a (C, O, 3, 3)
    kernel, padding 2 - P: output size OH + 2 (2 - PH) - 2 = H."""
    flipped = np.ascontiguousarray(weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    grad_x, _ = conv2d_forward(grad_y, flipped, stride, (2 - padding[0], 2 - padding[1]),
                               dilation, groups)
    return grad_x


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups,
                           saved=None):
    """dL/dg = G^T dU G with dU[k] = V[k] dM[k]^T summed over tiles (the forward's adjoint;
    a product with a long inner dimension).  ``saved``: the forward's V (None: rebuilt)."""
    grad_y = np.ascontiguousarray(grad_y)
    x = np.ascontiguousarray(x, dtype=grad_y.dtype)
    n, o, oh, ow = grad_y.shape
    _, _, th, tw = _tiles(x.shape, padding)
    v = saved if saved is not None else input_transform(x, padding, th, tw)
    if (oh, ow) != (2 * th, 2 * tw):         # odd output size: pad dL/dy to whole tiles
        padded = np.zeros((n, o, 2 * th, 2 * tw), grad_y.dtype)
        padded[:, :, :oh, :ow] = grad_y
        grad_y = padded
    dm = _slabs(o, n * th * tw, grad_y.dtype, "winograd_m")      # (16, O, N T)
    run(_output_grad_tiles, o, dm.size, grad_y, th, tw, dm)
    # dU[k]^T = dM[k] V[k]^T, (O, C): the same product as V[k] dM[k]^T, but this
    # orientation ran 1.0-1.3x faster on the 2-core Intel Xeon (AVX-512; most with few
    # channels, where the inner dimension N T is long and the result small; RESULTS.md,
    # 2026-12-05).
    du = np.empty((16, o, x.shape[1]), grad_y.dtype)
    for k in range(16):
        np.matmul(dm[k], v[k].T, out=du[k])
    grad_w = empty(weight_shape, grad_y.dtype)
    _kernel_grad_tiles(du, grad_w)
    return grad_w


def conv2d_backward(grad_y, x, weight, stride, padding, dilation, groups, saved=None,
                    need_x=True, need_w=True):
    """(dL/dx, dL/dW), each None when not needed (kernels.conv2d_backward calls this)."""
    return (conv2d_backward_input(grad_y, weight, x.shape, stride, padding, dilation, groups)
            if need_x else None,
            conv2d_backward_weight(grad_y, x, weight.shape, stride, padding, dilation, groups,
                                   saved) if need_w else None)
