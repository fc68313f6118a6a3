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

The additions of B^T d B and A^T . A are cheap and memory-bound (Numba kernels below, eight
tiles at a time on simd.py's vectors); the 16 multiplications per tile become 16 matrix
products when summed over input channels:

    V[k, c, (n, t)] = (B^T d_{n,c,t} B)[k]      input tiles,  k = 0..15 the 4x4 positions
    U[k, o, c]      = (G g_{o,c} G^T)[k]        kernel, once per call (a small loop)
    M[k, o, (n, t)] = sum_c U[k, o, c] V[k, c, (n, t)]       16 GEMMs, one per k
    y tile (n, o, t) = A^T M[:, o, (n, t)] A

against im2col's one GEMM of 9 C rows per output pixel, this GEMM has 16 C rows per 4 output
pixels: 2.25x less arithmetic, and V is 16/4 = 4 values per input pixel, not col's 9.  V
and M are built, multiplied and read back a block of a few hundred tiles at a time, so that
they stay in the cache (see "Blocks" below).

Backward.  dL/dx is the "full" correlation of dL/dy with the kernel flipped in both axes and
its channel axes swapped, padding 2 - P: the same algorithm, run on dL/dy.  dL/dW is the
adjoint of the forward: dM = A dL/dY A^T per tile, dU[k] = V[k] dM[k]^T summed over tiles
(16 products whose inner dimension is the tiles), dL/dg = G^T dU G: winograd_weight.py.
The flipped kernel's transform is U's, permuted (_FLIPPED).

Accuracy: the transforms add and subtract inputs (and halve kernel values); the float32
error measured 0.3x-1.7x im2col's (benchmarks/RESULTS.md; the tests allow 4x).  The larger
F(4x4, 3x3) does 4x fewer multiplications than direct convolution, and its float32 error is
2x-9x im2col's up to C = 128, more beyond: winograd4.py runs it for the forward of such
layers; this module computes the rest (every dL/dx and the wider forwards; dL/dW in
winograd_weight.py).

Notation as in reference.py; TH, TW = ceil(OH / 2), ceil(OW / 2) tiles per plane, T = TH TW.
"""
import itertools

import numpy as np

from ..geometry import conv_output_hw
from . import numba_threads, simd
from .jit import njit
from .numba_threads import blas_threads_controllable, one_blas_thread, run
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


MIN_CHANNELS = 16          # min(C, O)
MIN_WORK = 2 ** 13         # N OH OW min(C, O): the size of the 16 products
MIN_TILES = 32             # N TH TW: the products' inner dimension, at least


def faster(function_name, x_shape, weight_shape, padding):
    """The measured dispatch rule of 'auto': is Winograd faster than the Numba im2col + GEMM
    kernels (cpu_numba.py) for this layer?  The same answer for the layer's three products
    (``function_name`` is not used).  Yes when min(C, O) >= 16, N OH OW min(C, O) >= 2^13
    and there are at least 32 tiles (N TH TW) to multiply.

    Measured with ``python -m benchmarks.bench_winograd`` on the 2-core AMD EPYC Zen 5
    (2026-12-06, sixth session, with the transforms on simd vectors), forward + dL/dx +
    dL/dW against im2col's, with OpenBLAS's Haswell kernels and again with its SkylakeX
    ones: the layers the rule takes ran 1.04x-2.16x as fast, single photos included
    (1x64x14x14 -> 128 1.13x-1.22x, 1x32x28x28 -> 64 1.27x-1.33x, 1x32x112x112 -> 32 1.56x,
    2x16x32x32 -> 16 1.74x-2.01x, 7x7 planes in a batch 1.15x-2.16x); those it leaves
    0.32x-0.95x: 16 tiles (one 7x7 or 8x8 plane: 1x512x7x7 -> 512 0.90x, whose products
    have an inner dimension of 16), too little work (1x32x14x14 -> 64 0.74x-0.95x,
    1x64x8x8 -> 64 0.78x-0.84x, 1x16x16x16 -> 16 0.70x) and 8 channels (1x8x32x32 -> 8
    0.59x-0.65x; 8x8x32x32 -> 8 won 1.13x-1.54x over im2col, but such a first layer has
    numba_first_layer.py).  First layers with C = 3 lost before (0.64x).  The rule it
    replaced, measured on the Intel Xeon with scalar transforms (2026-12-05), asked for 48
    channels (16 in a batch of 4) and 16 times the work: its small layers then ran
    0.28x-0.62x under Winograd.

    Memory: V and M exist only for one block of tiles per thread, so no batch is too large.
    (Before the blocks, measured on the AMD EPYC and the Xeon, the rule needed min(C, O) >=
    48, or 32 with N >= 8, and a bound on V and M's size; see RESULTS.md.)"""
    oh, ow, th, tw = _tiles(x_shape, padding)
    channels = min(x_shape[1], weight_shape[0])
    return (channels >= MIN_CHANNELS and x_shape[0] * th * tw >= MIN_TILES
            and x_shape[0] * oh * ow * channels >= MIN_WORK)


# ---- the tile transforms (Numba) -------------------------------------------------------------
# Blocks.  The tiles are processed a block at a time: a block is a range of tile rows
# r = n TH + ti (all the tiles of rows 2 ti .. 2 ti + 3 of example n), a few hundred tiles.
# For one block the input transform writes V (16, C, B), the 16 products M (16, O, B), the
# output transform reads M: a block's V and M stay in the core's cache, where the whole
# batch's (about 4x the layer's input and output) went to memory and back.  The two cores
# take the blocks one at a time (``_run_blocks``), each with its own V and M, and OpenBLAS
# runs each product on its calling thread (``numba_threads.one_blas_thread``).  Measured on
# the 2-core Xeon (RESULTS.md, 2026-12-05 evening), forward + dL/dx + dL/dW against
# transforming the whole batch first and running 16 batch-long products: 1.4x-1.5x on
# 64x32x32x32 -> 64, 1.05x-1.1x on 64x128x8x8 -> 256 and 1x64x224x224 -> 64.
# Every tile array is (16, channels, tiles), so that each transform reads or writes 16
# contiguous runs per channel; in this layout the output transform ran 1.3x-1.6x faster than
# with M (16, B, O), and the products M[k] = U[k] V[k] as fast as V[k]^T U[k]^T (0.75x
# with only 32 output channels).  (One exception: dL/dW's V at C = 32 is (16, tiles, C),
# see winograd_weight.py.)  The 16 slabs of V and M start 320 bytes apart modulo
# 4 KiB (``_slabs``): slabs of a multiple of 4 KiB put the 16 write streams on the same
# cache sets, and the transforms ran 2-3x slower for it.

STAGGER_BYTES = 320


def _slabs(a, b, dtype, role=None):
    """An uninitialized (16, a, b) array, each [k] C-contiguous, slab starts staggered."""
    step = a * b + STAGGER_BYTES // np.dtype(dtype).itemsize
    flat = scratch(role, (16 * step,), dtype) if role else new_buffer((16 * step,), dtype)
    return flat.reshape(16, step)[:, :a * b].reshape(16, a, b)


@njit(cache=True, nogil=True, inline="always")
def copy_rows(x, n, c, h0, h1, ph, pw, cols, plane):
    """plane[h + PH, PW: PW + cols] = x[n, c, h, :cols] for the rows h in [h0, h1): the part
    of a zero-bordered plane that a block's tile rows read (here and in winograd4.py)."""
    for h in range(h0, h1):
        target, source = plane[h + ph], x[n, c, h]
        for q in range(cols):
            target[pw + q] = source[q]


@njit(cache=True, nogil=True, inline="always")
def bt(d0, d1, d2, d3):
    """B^T d for four numbers down a tile column (or along a tile row): the input
    transform's one-dimensional step, done twice per tile (here and in winograd_weight.py)."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(cache=True, nogil=True, inline="always")
def b_t_d_b(column_q, column_r, column_s, column_u):
    """B^T d B for one tile d (numbers, or simd vectors: eight tiles) given its four
    columns, each its four rows top to bottom: B^T d down each column, then the same
    combination of the columns, (B^T d) B, along each row.  Returns the four rows of the
    result: entries k = 0-3, 4-7, 8-11, 12-15."""
    a0, b0, e0, f0 = bt(column_q[0], column_q[1], column_q[2], column_q[3])  # a: row 0 of
    a1, b1, e1, f1 = bt(column_r[0], column_r[1], column_r[2], column_r[3])  # B^T d, b: 1...
    a2, b2, e2, f2 = bt(column_s[0], column_s[1], column_s[2], column_s[3])
    a3, b3, e3, f3 = bt(column_u[0], column_u[1], column_u[2], column_u[3])
    return bt(a0, a1, a2, a3), bt(b0, b1, b2, b3), bt(e0, e1, e2, e3), bt(f0, f1, f2, f3)


@njit(cache=True, nogil=True)
def _input_tiles(x, ph, pw, th, tw, r0, r1, v):
    """v[k, c, (r - r0) TW + tj] = (B^T d B)[k] for the tile rows r = n TH + ti in [r0, r1),
    d = x_pad[n, c, 2 ti: 2 ti + 4, 2 tj: 2 tj + 4], x_pad = x with PH, PW zeros before (and
    after, as far as the last tile reaches).  The rows of x[n, c] the block's tile rows read
    are copied into a zero-bordered plane first, so that the tile loop needs no bounds
    checks.  Channel by channel: 16 runs of writes per channel.

    Eight tiles at a time as simd vectors (simd.py): their four columns q, r, s, u are the
    even and odd elements of the plane row from 2 tj and from 2 tj + 2, so the same bt()
    computes eight tiles' entries, stored as runs of eight; the TW % 8 tiles left over go
    first, one at a time, the same arithmetic on scalars (results bit-identical either way).
    LLVM's own vectoriser leaves such a loop scalar: it writes 16 runs, and LLVM vectorises
    a loop only after checking at run time that no output overlaps another array, for at
    most eight pairs.  The vectors made this transform 1.9x-2.4x faster on planes of 16x16
    to 224x224 (1.5x-1.7x on 15x15 and 37x37, most tiles still one by one), even on 8x8
    (TW = 4: no vector) (AMD Zen 5, 2026-12-06, RESULTS.md)."""
    h_, w_ = x.shape[2], x.shape[3]
    plane = np.zeros((2 * th + 2, 2 * tw + 2), x.dtype)   # its border stays zero
    cols = min(w_, plane.shape[1] - pw)
    vector_tiles = tw - tw % simd.LANES
    for c in range(x.shape[1]):
        for n in range(r0 // th, (r1 - 1) // th + 1):
            ti0, ti1 = max(r0 - n * th, 0), min(r1 - n * th, th)    # this example's rows
            copy_rows(x, n, c, max(2 * ti0 - ph, 0), min(2 * ti1 + 2 - ph, h_), ph, pw, cols,
                      plane)
            for ti in range(ti0, ti1):
                d0, d1, d2, d3 = (plane[2 * ti], plane[2 * ti + 1], plane[2 * ti + 2],
                                  plane[2 * ti + 3])
                t = (n * th + ti - r0) * tw
                out = v[:, c, t:t + tw]              # (16, TW): this tile row's entries
                for tj in range(tw - vector_tiles):
                    q, r, s, u = 2 * tj, 2 * tj + 1, 2 * tj + 2, 2 * tj + 3   # its columns
                    rows = b_t_d_b((d0[q], d1[q], d2[q], d3[q]), (d0[r], d1[r], d2[r], d3[r]),
                                   (d0[s], d1[s], d2[s], d3[s]), (d0[u], d1[u], d2[u], d3[u]))
                    for k, row in ((0, rows[0]), (4, rows[1]), (8, rows[2]), (12, rows[3])):
                        out[k, tj], out[k + 1, tj], out[k + 2, tj], out[k + 3, tj] = row
                for tj in range(tw - vector_tiles, tw, simd.LANES):
                    q = 2 * tj                       # columns q, r = q + 1, s = q + 2, u
                    d0q, d0r = simd.load_even_odd(d0, q)
                    d0s, d0u = simd.load_even_odd(d0, q + 2)
                    d1q, d1r = simd.load_even_odd(d1, q)
                    d1s, d1u = simd.load_even_odd(d1, q + 2)
                    d2q, d2r = simd.load_even_odd(d2, q)
                    d2s, d2u = simd.load_even_odd(d2, q + 2)
                    d3q, d3r = simd.load_even_odd(d3, q)
                    d3s, d3u = simd.load_even_odd(d3, q + 2)
                    rows = b_t_d_b((d0q, d1q, d2q, d3q), (d0r, d1r, d2r, d3r),
                                   (d0s, d1s, d2s, d3s), (d0u, d1u, d2u, d3u))
                    for k, row in ((0, rows[0]), (4, rows[1]), (8, rows[2]), (12, rows[3])):
                        simd.store(out[k], tj, row[0])
                        simd.store(out[k + 1], tj, row[1])
                        simd.store(out[k + 2], tj, row[2])
                        simd.store(out[k + 3], tj, row[3])


@njit(cache=True, nogil=True)
def _input_tiles_channels_last(x, ph, pw, th, tw, r0, r1, v):
    """v[k, (r - r0) TW + tj, c] = (B^T d B)[k]: _input_tiles with V as (16, B, C), the
    layout in which OpenBLAS runs dL/dW's narrow products fastest (winograd_weight.py), and
    the faster transform where a tile row is shorter than eight tiles (_forward_blocks).
    Each example's rows of the block are copied channels last into a zero-bordered buffer
    (rows, WP, C), then every tile's 16 values are written as runs of C, eight channels at
    a time as simd vectors (the C % 8 others first, one at a time; bit-identical).  The
    vectors made it 1.4x-2.5x faster (AMD Zen 5, 2026-12-06); _input_tiles, eight tiles at
    a time, is still about 2x faster on planes of 16x16 and more."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    wp = 2 * tw + 2
    cols = min(w_, wp - pw)
    rows = np.empty((2 * min(r1 - r0, th) + 2, wp, c_), x.dtype)
    head = c_ % simd.LANES                     # channels [head, C) go eight at a time
    for n in range(r0 // th, (r1 - 1) // th + 1):
        ti0, ti1 = max(r0 - n * th, 0), min(r1 - n * th, th)    # this example's rows
        top = 2 * ti0 - ph                         # the row of x that rows[0] holds
        for r in range(2 * (ti1 - ti0) + 2):
            target, h = rows[r], top + r
            if h < 0 or h >= h_:                   # padding, or past the last tile's reach
                target[:] = 0
                continue
            target[:pw] = 0
            target[pw + cols:] = 0
            for q in range(cols):
                cell = target[pw + q]
                for c in range(c_):
                    cell[c] = x[n, c, h, q]
        for ti in range(ti0, ti1):
            i = 2 * (ti - ti0)
            for tj in range(tw):
                t, j = (n * th + ti - r0) * tw + tj, 2 * tj
                a0, a1, a2, a3 = rows[i, j], rows[i, j + 1], rows[i, j + 2], rows[i, j + 3]
                b0, b1, b2, b3 = (rows[i + 1, j], rows[i + 1, j + 1], rows[i + 1, j + 2],
                                  rows[i + 1, j + 3])
                e0, e1, e2, e3 = (rows[i + 2, j], rows[i + 2, j + 1], rows[i + 2, j + 2],
                                  rows[i + 2, j + 3])
                f0, f1, f2, f3 = (rows[i + 3, j], rows[i + 3, j + 1], rows[i + 3, j + 2],
                                  rows[i + 3, j + 3])
                for c in range(head):
                    tile_rows = b_t_d_b((a0[c], b0[c], e0[c], f0[c]), (a1[c], b1[c], e1[c], f1[c]),
                                        (a2[c], b2[c], e2[c], f2[c]), (a3[c], b3[c], e3[c], f3[c]))
                    for k, row in ((0, tile_rows[0]), (4, tile_rows[1]), (8, tile_rows[2]),
                                   (12, tile_rows[3])):
                        v[k, t, c], v[k + 1, t, c], v[k + 2, t, c], v[k + 3, t, c] = row
                for c in range(head, c_, simd.LANES):        # eight channels at a time
                    tile_rows = b_t_d_b(
                        (simd.load(a0, c), simd.load(b0, c), simd.load(e0, c), simd.load(f0, c)),
                        (simd.load(a1, c), simd.load(b1, c), simd.load(e1, c), simd.load(f1, c)),
                        (simd.load(a2, c), simd.load(b2, c), simd.load(e2, c), simd.load(f2, c)),
                        (simd.load(a3, c), simd.load(b3, c), simd.load(e3, c), simd.load(f3, c)))
                    for k, row in ((0, tile_rows[0]), (4, tile_rows[1]), (8, tile_rows[2]),
                                   (12, tile_rows[3])):
                        simd.store(v[k, t], c, row[0])
                        simd.store(v[k + 1, t], c, row[1])
                        simd.store(v[k + 2, t], c, row[2])
                        simd.store(v[k + 3, t], c, row[3])


@njit(cache=True, nogil=True, inline="always")
def at(m0, m1, m2, m3):
    """A^T m for four numbers down a tile column (or along a row): the output transform's
    one-dimensional step, done twice per tile."""
    return m0 + m1 + m2, m1 - m2 - m3


@njit(cache=True, nogil=True, inline="always")
def _output_tile(tiles, tj, b, pairs, top, bottom, bottom_in_y):
    """Tile tj of a tile row (``tiles``: M as (16, TW)) into y's rows ``top`` and
    ``bottom``: the columns 2 tj and, where it is in y, 2 tj + 1."""
    s0, u0 = at(tiles[0, tj], tiles[4, tj], tiles[8, tj], tiles[12, tj])     # A^T M, per
    s1, u1 = at(tiles[1, tj], tiles[5, tj], tiles[9, tj], tiles[13, tj])     # column
    s2, u2 = at(tiles[2, tj], tiles[6, tj], tiles[10, tj], tiles[14, tj])
    s3, u3 = at(tiles[3, tj], tiles[7, tj], tiles[11, tj], tiles[15, tj])
    top_left, top_right = at(s0, s1, s2, s3)                                 # (A^T M) A
    bottom_left, bottom_right = at(u0, u1, u2, u3)
    if tj < pairs:
        top[2 * tj], top[2 * tj + 1] = top_left + b, top_right + b
        if bottom_in_y:
            bottom[2 * tj], bottom[2 * tj + 1] = bottom_left + b, bottom_right + b
    else:                              # odd OW: the last tile's first column only
        top[2 * tj] = top_left + b
        if bottom_in_y:
            bottom[2 * tj] = bottom_left + b


@njit(cache=True, nogil=True)
def _output_tiles_one_by_one(m, th, tw, r0, r1, bias, y):
    """y[n, o, 2 ti + i, 2 tj + j] = (A^T M A)[i, j] + bias[o] with M = m[:, o, (r - r0) TW
    + tj] for the tile rows r = n TH + ti in [r0, r1) (rows and columns past OH, OW
    dropped).  Channel by channel, a tile row at a time, one tile at a time: 16 reads, two
    output rows written.  _output_tiles does the same eight tiles at a time; this loop is
    faster where a tile row is shorter than eight tiles (TW = 4: 1.5x)."""
    oh, pairs = y.shape[2], y.shape[3] // 2      # pairs: tiles with both columns in y
    for o in range(y.shape[1]):
        b = bias[o]
        for r in range(r0, r1):
            n, ti = r // th, r % th
            tiles = m[:, o, (r - r0) * tw:(r - r0 + 1) * tw]    # (16, TW): this row's M
            top = y[n, o, 2 * ti]
            bottom = y[n, o, 2 * ti + 1] if 2 * ti + 1 < oh else top   # odd OH: not written
            for tj in range(tw):
                _output_tile(tiles, tj, b, pairs, top, bottom, 2 * ti + 1 < oh)


@njit(cache=True, nogil=True)
def _output_tiles(m, th, tw, r0, r1, bias, y):
    """_output_tiles_one_by_one, eight tiles at a time as simd vectors, each output row's
    two columns interleaved as they are stored; the tiles left over (the first PAIRS % 8,
    and an odd OW's last) one at a time.  Results bit-identical to it."""
    oh, pairs = y.shape[2], y.shape[3] // 2
    head = pairs % simd.LANES          # tiles [head, pairs) go eight at a time
    for o in range(y.shape[1]):
        b = bias[o]
        for r in range(r0, r1):
            n, ti = r // th, r % th
            tiles = m[:, o, (r - r0) * tw:(r - r0 + 1) * tw]
            top = y[n, o, 2 * ti]
            bottom = y[n, o, 2 * ti + 1] if 2 * ti + 1 < oh else top
            for i in range(head + tw - pairs):         # the tiles [0, head) and [pairs, TW)
                _output_tile(tiles, i if i < head else pairs + i - head, b, pairs, top,
                             bottom, 2 * ti + 1 < oh)
            for tj in range(head, pairs, simd.LANES):
                s0, u0 = at(simd.load(tiles[0], tj), simd.load(tiles[4], tj),
                            simd.load(tiles[8], tj), simd.load(tiles[12], tj))
                s1, u1 = at(simd.load(tiles[1], tj), simd.load(tiles[5], tj),
                            simd.load(tiles[9], tj), simd.load(tiles[13], tj))
                s2, u2 = at(simd.load(tiles[2], tj), simd.load(tiles[6], tj),
                            simd.load(tiles[10], tj), simd.load(tiles[14], tj))
                s3, u3 = at(simd.load(tiles[3], tj), simd.load(tiles[7], tj),
                            simd.load(tiles[11], tj), simd.load(tiles[15], tj))
                bias_lanes = simd.splat(b, s0)
                left, right = at(s0, s1, s2, s3)
                simd.store_even_odd(top, 2 * tj, left + bias_lanes, right + bias_lanes)
                if 2 * ti + 1 < oh:
                    left, right = at(u0, u1, u2, u3)
                    simd.store_even_odd(bottom, 2 * tj, left + bias_lanes, right + bias_lanes)


@njit(cache=True, nogil=True)
def _kernel_tiles(w, u, o0, o1):
    """u[4 a + b, o, c] = (G g G^T)[a, b], g = w[o, c] (float64 inside), for the output
    channels o in [o0, o1).  G's rows are (1, 0, 0), ((1, 1, 1) / 2), ((1, -1, 1) / 2),
    (0, 0, 1)."""
    c_ = w.shape[1]
    gg = np.empty((4, 3))
    for o in range(o0, o1):               # o outer: u[k, o, :] and w[o] read and written in order
        for c in range(c_):
            g = w[o, c]
            for v in range(3):            # G g: along the kernel's rows, per column v
                g0, g1, g2 = np.float64(g[0, v]), np.float64(g[1, v]), np.float64(g[2, v])
                gg[0, v], gg[1, v] = g0, (g0 + g1 + g2) * 0.5
                gg[2, v], gg[3, v] = (g0 - g1 + g2) * 0.5, g2
            for a in range(4):            # (G g) G^T: along the columns, per row a
                h0, h1, h2 = gg[a, 0], gg[a, 1], gg[a, 2]
                u[4 * a, o, c] = h0
                u[4 * a + 1, o, c] = (h0 + h1 + h2) * 0.5
                u[4 * a + 2, o, c] = (h0 - h1 + h2) * 0.5
                u[4 * a + 3, o, c] = h2


# ---- the kernel interface ------------------------------------------------------------------

TILES_PER_BLOCK = 256           # forward and dL/dx: V and M of one block stay in the cache


def _tiles(x_shape, padding):
    oh, ow = conv_output_hw(x_shape, (3, 3), (1, 1), padding)
    return oh, ow, (oh + 1) // 2, (ow + 1) // 2


def _blocks(n, th, tw, tiles_per_block):
    """The tile-row ranges [r0, r1) of the blocks: at most about ``tiles_per_block`` tiles
    each, as many blocks for every kernel thread where there are enough tile rows, and
    sizes that differ by one row at most.  Why even: 28 rows (one 56x56 image) in blocks of
    9 rows made 9, 9, 9 and 1, one thread then doing 18 rows and the other 10; 4 blocks of
    7 made the 1x256x56x56 -> 256 convolution's step 1.15x faster (AMD Zen 5, 2026-12-06,
    alternated in one process; ten other layers even)."""
    rows = n * th
    threads = numba_threads.THREADS
    per_block = max(1, min(tiles_per_block // tw, -(-rows // threads)))
    count = -(-rows // per_block)
    count = min(rows, -(-count // threads) * threads)     # a whole number per thread
    return [(rows * i // count, rows * (i + 1) // count) for i in range(count)]


def _run_blocks(blocks_function, blocks, *args):
    """blocks_function(*args, blocks, indices) over all the blocks: shared by the kernel
    threads, every GEMM on its calling thread (numba_threads.one_blas_thread), where
    OpenBLAS lets us say so; else all on this thread, the GEMMs on BLAS's threads.

    The threads take the blocks one at a time, each the next one not yet taken (a counter
    under the GIL), rather than half each: when one vCPU runs slower, the other takes more
    blocks instead of waiting.  On the 2-vCPU AMD Zen 5 (2026-12-06, the two ways
    alternated in one process) the CNN and BN-CNN training steps ran 1.00x-1.02x as fast
    on a quiet machine and 1.01x-1.08x beside another busy process."""
    if numba_threads.THREADS >= 2 and blas_threads_controllable():
        next_block = itertools.count().__next__
        with one_blas_thread():
            run(_take_blocks, numba_threads.THREADS, 1 << 30, blocks_function, args, blocks,
                next_block)
    else:
        blocks_function(*args, blocks, range(len(blocks)))


def _take_blocks(blocks_function, args, blocks, next_block, t0, t1):
    """One thread's part of _run_blocks: blocks_function over the blocks it takes."""
    blocks_function(*args, blocks, _taken(next_block, len(blocks)))


def _taken(next_block, count):
    """Block numbers from the shared counter, until it passes the last block."""
    while True:
        i = next_block()
        if i >= count:
            return
        yield i


def kernel_transform(weight, keep=False):
    """U[k, o, c] = (G g[o, c] G^T)[k], shape (16, O, C), in the weight's dtype (an array of
    its own with ``keep``, else scratch)."""
    u = _slabs(weight.shape[0], weight.shape[1], weight.dtype, None if keep else "winograd_u")
    run(_kernel_tiles, weight.shape[0], weight.size, weight, u)   # split over the threads
    return u


def _forward_blocks(x, u, ph, pw, th, tw, bias, y, blocks, indices):
    """The forward's blocks ``indices``, on this thread: tiles, products, output."""
    o, c = u.shape[1], u.shape[2]
    # eight tiles at a time where a tile row has eight pairs of columns (1.4x-3.8x faster
    # there; with fewer, the vector version's one-by-one tail ran 0.6x-0.8x)
    output_tiles = _output_tiles if y.shape[3] // 2 >= simd.LANES else _output_tiles_one_by_one
    # rows of fewer than eight tiles: V channels last, eight channels a vector (2.5x-3x
    # faster than one tile at a time on 8x8 and 14x14 planes; the products read V^T as fast)
    channels_last = tw < simd.LANES and c >= simd.LANES
    for i in indices:
        r0, r1 = blocks[i]
        size = (r1 - r0) * tw
        m = _slabs(o, size, x.dtype, "winograd_m")              # (16, O, B)
        if channels_last:
            v = _slabs(size, c, x.dtype, "winograd_v")          # (16, B, C)
            _input_tiles_channels_last(x, ph, pw, th, tw, r0, r1, v)
            np.matmul(u, v.transpose(0, 2, 1), out=m)           # M[k] = U[k] V[k]
        else:
            v = _slabs(c, size, x.dtype, "winograd_v")          # (16, C, B)
            _input_tiles(x, ph, pw, th, tw, r0, r1, v)
            np.matmul(u, v, out=m)
        output_tiles(m, th, tw, r0, r1, bias, y)


def _forward(x, u, padding, bias=None):
    """y = the Winograd correlation of x with the kernel whose transform is u, plus bias."""
    return run_forward(_forward_blocks, 2, TILES_PER_BLOCK, x, u, padding, bias)


def run_forward(blocks_function, tile, tiles_per_block, x, u, padding, bias):
    """The frame of a Winograd forward (this module's, and winograd4.py's with 4x4 tiles):
    y allocated, the bias as a (O,) array, and ``blocks_function`` run over the blocks of
    tile rows (``tile`` x ``tile`` output tiles, about ``tiles_per_block`` a block)."""
    n, o = x.shape[0], u.shape[1]
    oh, ow = conv_output_hw(x.shape, (3, 3), (1, 1), padding)
    th, tw = -(-oh // tile), -(-ow // tile)
    y = empty((n, o, oh, ow), x.dtype)
    bias = (np.zeros(o, x.dtype) if bias is None
            else np.ascontiguousarray(bias, dtype=x.dtype).reshape(o))
    blocks = _blocks(n, th, tw, tiles_per_block)
    _run_blocks(blocks_function, blocks, x, u, padding[0], padding[1], th, tw, bias, y)
    return y


ADDS_BIAS = True       # conv2d_forward takes the bias: the output transform adds it


def conv2d_forward(x, weight, stride, padding, dilation, groups, save=False, bias=None):
    """(y, U when ``save``), y with ``bias`` (O,) added in the output transform (no pass of
    its own).  dL/dx reuses the kernel transform U.  Nothing else is kept: dL/dW transforms
    x again a block at a time (cheaper than reading a saved V, 4x x's size, back from
    memory)."""
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight, dtype=x.dtype)
    u = kernel_transform(weight, keep=save)
    return _forward(x, u, padding, bias), (u if save else None)


# dL/dx's kernel w[o, c, 2 - u, 2 - v] has the transform U[k', o, c]: G applied to the
# reversed 3-vector (g2, g1, g0) gives (g2, (g0+g1+g2)/2, (g0-g1+g2)/2, g0), G g with its
# first and last entries swapped; so flipping both kernel axes swaps entries 0 and 3 along
# both 4x4 axes of G g G^T: k = 4 a + b -> 4 SWAP[a] + SWAP[b].
_SWAP = (3, 1, 2, 0)
_FLIPPED = np.array([4 * _SWAP[a] + _SWAP[b] for a in range(4) for b in range(4)])


def conv2d_backward_input(grad_y, weight, x_shape, stride, padding, dilation, groups):
    """dL/dx = the Winograd correlation of dL/dy with w[o, c, 2 - u, 2 - v] as a (C, O, 3, 3)
    kernel, padding 2 - P: output size OH + 2 (2 - PH) - 2 = H."""
    grad_y = np.ascontiguousarray(grad_y)
    return _input_grad(grad_y, kernel_transform(np.ascontiguousarray(weight, grad_y.dtype)),
                       padding)


def _input_grad(grad_y, u, padding):
    """dL/dx from U: the flipped kernel's transform is U's entries permuted (_FLIPPED), its
    channel axes swapped.  The swap stays a view (each [k] a transposed matrix, which the
    GEMM reads as such): copying it C-ordered took 0.4-0.9 ms at 128-256 channels, and
    without the copy dL/dx ran 1.14x-1.19x faster there, even elsewhere (AMD Zen 5,
    2026-12-06)."""
    u_flipped = u[_FLIPPED].transpose(0, 2, 1)     # (16, C, O)
    return _forward(grad_y, u_flipped, (2 - padding[0], 2 - padding[1]))


def conv2d_backward(grad_y, x, weight, stride, padding, dilation, groups, saved=None,
                    need_x=True, need_w=True, need_b=False):
    """(dL/dx, dL/dW, dL/db), each None when not needed (kernels.conv2d_backward calls this;
    dL/db comes with dL/dW only); ``saved`` is the forward's U (None: computed again)."""
    from . import winograd_weight     # dL/dW; it imports this module, so not at the top
    grad_y = np.ascontiguousarray(grad_y)
    grad_x = grad_w = grad_b = None
    if need_x and saved is not None and saved.dtype == grad_y.dtype:
        grad_x = _input_grad(grad_y, saved, padding)
    elif need_x:
        grad_x = conv2d_backward_input(grad_y, weight, x.shape, stride, padding, dilation,
                                       groups)
    if need_w:
        grad_w, grad_b = winograd_weight.weight_and_bias_grad(grad_y, x, weight.shape, padding)
    return grad_x, grad_w, (grad_b if need_b else None)


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups,
                           saved=None):
    """dL/dW, computed in winograd_weight.py (here beside the other products, for
    kernels.choose_conv)."""
    from . import winograd_weight     # it imports this module, so not at the top
    return winograd_weight.conv2d_backward_weight(grad_y, x, weight_shape, stride, padding,
                                                  dilation, groups, saved)
