"""Winograd convolution F(4x4, 3x3), forward only: a 6x6 input tile gives a 4x4 output tile
with 36 multiplications instead of 16 x 9 = 144 (4x fewer than direct convolution; F(2x2,
3x3) in winograd.py does 2.25x fewer).

The same algorithm as winograd.py (read its docstring first), with 6-point transforms,

    Y = A^T [ (G g G^T) * (B^T d B) ] A,

built from the interpolation points 0, 1, -1, 1/2, -2 and infinity (``matrices``):

    B^T = [[1, -3/2, -2,   3/2, 1,   0],     G = [[  1,      0,     0   ],
           [0, -1,    1/2, 5/2, 1,   0],          [  1/3,    1/3,   1/3 ],
           [0,  1,   -5/2, 1/2, 1,   0],          [ -1/3,    1/3,  -1/3 ],
           [0, -2,   -1,   2,   1,   0],          [-16/15,  -8/15, -4/15],
           [0,  1/2, -1,  -1/2, 1,   0],          [  1/15,  -2/15,  4/15],
           [0,  1,   -3/2, -2,  3/2, 1]]          [  0,      0,     1   ]]

    A^T = [[1, 1,  1, 1,   1,  0],
           [0, 1, -1, 1/2, -2, 0],
           [0, 1,  1, 1/4,  4, 0],
           [0, 1, -1, 1/8, -8, 1]]

Accuracy decides the points and where this module is used.  Bigger tiles mean bigger
transform entries, and float32 rounding errors grow with them.  Measured (max |error|
against float64, benchmarks/RESULTS.md, 2026-12-06), as a multiple of im2col's error: Lavin
and Gray's integer points 0, +-1, +-2 gave 4x-12x; 0, +-1, +-1/2 gave 4x-13x; these points
1.7x-5.6x at C <= 64 and 4.6x-9.5x at C = 128 (median 6x), growing with C to 8.6x-13.4x at
C = 256-512.  #13 allows F(4x4) only within 10x, so ``preferred`` keeps it to C <= 128.
The backward stays F(2x2)'s, in winograd.py: by F(4x4), dL/dx measured 9.4x-15.3x im2col's
error (6.2x-10.1x computed as the forward's transpose) and dL/dW 2.4x-14.1x; F(3x3, 3x3),
with 5x5 tiles, is no better (python -m benchmarks.winograd_error reruns the table).

Speed: the products are 36 per 16 outputs instead of F(2x2)'s 64, so 0.56x the GEMM work;
the tile transforms stay about as costly per output as F(2x2)'s because they are organised
as vector loops (below), and a multiply and an add may fuse into one FMA (fastmath
'contract': 5%-10% on the transforms).  The forward measured 1.03x-1.59x F(2x2)'s on the
2-core Xeon where ``preferred`` takes it.

How the transforms vectorise.  Tile by tile, B^T d B is scalar code (36 numbers from a 6x6
tile).  Split into its 1-D halves:
- input: B^T d (the same combination of six input rows at every column) runs along whole
  plane rows, six vector loops; (.) B, along each row's columns, goes eight tiles at a
  time as simd vectors (simd.py; a tile's six columns 4 tj .. 4 tj + 5 come from two loads
  dealt four ways), the rest tile by tile: the transform 1.25x-2.4x faster than all tile
  by tile where a row has eight tiles or more (AMD Zen 5, 2026-12-06).  Rows of fewer
  tiles (16x16 and 8x8 planes) take eight channels a vector instead, V channels last
  (``_input_tiles_channels_last``, C a multiple of 8).
- output: A^T M (the same combination of six slabs of M at every tile) runs over the
  block's tiles, and so does (A^T M) A, each result into a run of its own; a last loop
  puts each tile's four columns side by side into y's rows, eight tiles at a time
  (simd.store_fourths: the forward 1.02x-1.07x faster on 32x32 planes, AMD Zen 5).
Each vector loop writes one array: LLVM checks at run time that an output does not overlap
an input and gives up beyond eight such checks.

Notation as in winograd.py; TH, TW = ceil(OH / 4), ceil(OW / 4) tiles per plane.
"""
from fractions import Fraction

import numpy as np

from ..geometry import conv_output_hw
from . import simd
from .jit import njit
from .products import multiply, multiply_transposed
from .scratch import scratch
from .winograd import STAGGER_BYTES, _slabs as winograd_slabs, run_forward
from .winograd_tiles import copy_rows, copy_rows_channels_last

POINTS = (0, 1, -1, Fraction(1, 2), -2)        # and infinity


def matrices(points=POINTS, m=4, r=3):
    """(A^T, G, B^T) of F(m, r) for the finite ``points`` (m + r - 2 of them) and infinity,
    as float64: A^T[i, j] = p_j^i, G[j, k] = p_j^k / prod_{l != j} (p_j - p_l) (Lagrange),
    the last column of A^T and row of G for infinity; B^T is then the one matrix for which
    A^T [(G g) * (B^T d)] is the correlation of d with g for every d and g (solved for by
    least squares, so exact to rounding).  The kernels below write these entries out."""
    n = m + r - 1
    p = [Fraction(q) for q in points]
    a_t = np.zeros((m, n))
    g = np.zeros((n, r))
    for j, pj in enumerate(p):
        scale = 1
        for l, pl in enumerate(p):
            scale *= (pj - pl) if l != j else 1
        a_t[:, j] = [float(pj ** i) for i in range(m)]
        g[j] = [float(pj ** k / scale) for k in range(r)]
    a_t[m - 1, n - 1] = g[n - 1, r - 1] = 1.0
    # correlation: y_i = sum_k d_{i + k} g_k = sum_j A^T[i, j] (G g)_j (B^T d)_j for all d, g
    products = np.array([[a_t[i, j] * g[j, k] for j in range(n)]
                         for i in range(m) for k in range(r)])            # (m r, n)
    b_t = np.zeros((n, n))
    for l in range(n):
        wanted = [1.0 if l == i + k else 0.0 for i in range(m) for k in range(r)]
        b_t[:, l] = np.linalg.lstsq(products, wanted, rcond=None)[0]
    return a_t, g, b_t


A_T, G, B_T = matrices()


def _slabs(count, a, b, dtype, role):
    """(flat, step): ``count`` slabs of a b values, slab k at flat[k step:], each C-ordered,
    starts staggered as in winograd._slabs.  The kernels index the flat array: one array for
    all slabs keeps LLVM's overlap checks few enough to vectorise."""
    step = a * b + STAGGER_BYTES // np.dtype(dtype).itemsize
    return scratch(role, (count * step,), dtype), step


def _view(flat, step, count, a, b):
    return flat.reshape(count, step)[:, :a * b].reshape(count, a, b)


# ---- the tile transforms (Numba) -------------------------------------------------------------

def _constants(dtype):
    """The transforms' factors in the data's dtype (a float64 literal would turn float32
    arithmetic into float64): 1/8, 1/4, 1/2, 3/2, 2, 5/2, 4, 8."""
    return np.array([0.125, 0.25, 0.5, 1.5, 2.0, 2.5, 4.0, 8.0], dtype)


@njit(cache=True, nogil=True, inline="always")
def _lanes(k):
    """_constants(dtype) (eight of them) as eight simd vectors, each one constant in every
    lane: the factors of _b_t for eight tiles at a time."""
    like = simd.load(k, 0)
    return (simd.splat(k[0], like), simd.splat(k[1], like), simd.splat(k[2], like),
            simd.splat(k[3], like), simd.splat(k[4], like), simd.splat(k[5], like),
            simd.splat(k[6], like), simd.splat(k[7], like))


@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def _b_t(d0, d1, d2, d3, d4, d5, k):
    """B^T d for one 6-vector d (see the module docstring); k: _constants."""
    half, three_halves, two, five_halves = k[2], k[3], k[4], k[5]
    dd = d4 - d2
    return (d0 - two * d2 + d4 + three_halves * (d3 - d1),
            d4 - d1 + half * d2 + five_halves * d3,
            d4 + d1 - five_halves * d2 + half * d3,
            dd + two * (d3 - d1), dd + half * (d1 - d3),
            d5 + d1 - two * d3 + three_halves * dd)


@njit(cache=True, nogil=True, fastmath={"contract"})
def _input_tiles(x, ph, pw, th, tw, r0, r1, v, step, k):
    """v[6 a + b, c, (r - r0) TW + tj] = (B^T d B)[a, b] (v flat, slab k at k step) for the
    tile rows r = n TH + ti in [r0, r1), d = x_pad[n, c, 4 ti: 4 ti + 6, 4 tj: 4 tj + 6].
    The block's rows of x[n, c] are copied into a zero-bordered plane; per tile row, B^T d
    along the rows is six vector loops over the plane's width (``rows``), then (.) B per
    tile and row.  k: _constants(x.dtype)."""
    half, three_halves, two, five_halves = k[2], k[3], k[4], k[5]
    h_, w_ = x.shape[2], x.shape[3]
    size = (r1 - r0) * tw
    width = 4 * tw + 2
    plane = np.zeros((4 * th + 2, width), x.dtype)     # its border stays zero
    rows = np.empty((6, width + 2), x.dtype)            # B^T d, per column (+2: the last
    head = tw % simd.LANES                              # tiles' second load reads 4 TW + 4)
    lanes = _lanes(k)
    cols = min(w_, width - pw)
    for c in range(x.shape[1]):
        for n in range(r0 // th, (r1 - 1) // th + 1):
            ti0, ti1 = max(r0 - n * th, 0), min(r1 - n * th, th)    # this example's rows
            copy_rows(x, n, c, max(4 * ti0 - ph, 0), min(4 * ti1 + 2 - ph, h_), ph, pw, cols,
                      plane)
            for ti in range(ti0, ti1):
                d0, d1, d2 = plane[4 * ti], plane[4 * ti + 1], plane[4 * ti + 2]
                d3, d4, d5 = plane[4 * ti + 3], plane[4 * ti + 4], plane[4 * ti + 5]
                # B^T d, a row at a time (one output row per loop: few overlap checks)
                e0, e1, e2, e3, e4, e5 = rows[0], rows[1], rows[2], rows[3], rows[4], rows[5]
                for q in range(width):
                    e0[q] = d0[q] - two * d2[q] + d4[q] + three_halves * (d3[q] - d1[q])
                for q in range(width):
                    e1[q] = d4[q] - d1[q] + half * d2[q] + five_halves * d3[q]
                for q in range(width):
                    e2[q] = d4[q] + d1[q] - five_halves * d2[q] + half * d3[q]
                for q in range(width):
                    e3[q] = d4[q] - d2[q] + two * (d3[q] - d1[q])
                for q in range(width):
                    e4[q] = d4[q] - d2[q] + half * (d1[q] - d3[q])
                for q in range(width):
                    e5[q] = d5[q] + d1[q] - two * d3[q] + three_halves * (d4[q] - d2[q])
                # (B^T d) B: the same combination of each row's six columns, per tile;
                # eight tiles at a time (columns 4 tj .. 4 tj + 5 dealt four ways from two
                # loads), the TW % 8 others first, one at a time
                t = c * size + (n * th + ti - r0) * tw
                for a in range(6):
                    e = rows[a]
                    s = 6 * a * step + t
                    out0, out1 = v[s:s + tw], v[s + step:s + step + tw]
                    out2 = v[s + 2 * step:s + 2 * step + tw]
                    out3 = v[s + 3 * step:s + 3 * step + tw]
                    out4 = v[s + 4 * step:s + 4 * step + tw]
                    out5 = v[s + 5 * step:s + 5 * step + tw]
                    for tj in range(head, tw, simd.LANES):
                        q = 4 * tj
                        e0, e1, e2, e3 = simd.load_fourths(e, q)
                        e4, e5, _, _ = simd.load_fourths(e, q + 4)
                        f0, f1, f2, f3, f4, f5 = _b_t(e0, e1, e2, e3, e4, e5, lanes)
                        simd.store(out0, tj, f0)
                        simd.store(out1, tj, f1)
                        simd.store(out2, tj, f2)
                        simd.store(out3, tj, f3)
                        simd.store(out4, tj, f4)
                        simd.store(out5, tj, f5)
                    for tj in range(head):
                        q = 4 * tj
                        f0, f1, f2, f3, f4, f5 = _b_t(e[q], e[q + 1], e[q + 2], e[q + 3],
                                                      e[q + 4], e[q + 5], k)
                        out0[tj], out1[tj], out2[tj] = f0, f1, f2
                        out3[tj], out4[tj], out5[tj] = f3, f4, f5


@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def _row_b(row, c, lanes):
    """(.) B along one tile row of six cells (row: (6, C), channels last), for the channels
    c .. c + 7 as simd vectors."""
    return _b_t(simd.load(row[0], c), simd.load(row[1], c), simd.load(row[2], c),
                simd.load(row[3], c), simd.load(row[4], c), simd.load(row[5], c), lanes)


@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def _column_b_t(out, b, c, f0, f1, f2, f3, f4, f5, lanes):
    """out[6 a + b, c: c + 8] = (B^T f)[a]: tile column b, f its six rows after (.) B."""
    g0, g1, g2, g3, g4, g5 = _b_t(f0, f1, f2, f3, f4, f5, lanes)
    simd.store(out[b], c, g0)
    simd.store(out[6 + b], c, g1)
    simd.store(out[12 + b], c, g2)
    simd.store(out[18 + b], c, g3)
    simd.store(out[24 + b], c, g4)
    simd.store(out[30 + b], c, g5)


@njit(cache=True, nogil=True, fastmath={"contract"})
def _input_tiles_channels_last(x, ph, pw, th, tw, r0, r1, v, k):
    """v[6 a + b, (r - r0) TW + tj, c] = (B^T d B)[a, b]: _input_tiles with V as (36, B,
    C), for rows shorter than eight tiles (16x16 and 8x8 planes), where _input_tiles goes
    one tile at a time; C a multiple of 8.  Each example's rows of the block are copied
    channels last (winograd_tiles.copy_rows_channels_last); then per tile, eight channels
    a vector, (.) B along its six rows and B^T down its six columns, 36 runs of C stored."""
    c_, w_ = x.shape[1], x.shape[3]
    wp = 4 * tw + 2
    cols = min(w_, wp - pw)
    rows = np.empty((4 * min(r1 - r0, th) + 2, wp, c_), x.dtype)
    lanes = _lanes(k)
    for n in range(r0 // th, (r1 - 1) // th + 1):
        ti0, ti1 = max(r0 - n * th, 0), min(r1 - n * th, th)    # this example's rows
        # rows[0] holds x's row 4 TI0 - PH
        copy_rows_channels_last(x, n, 4 * ti0 - ph, 4 * (ti1 - ti0) + 2, pw, cols, rows)
        for ti in range(ti0, ti1):
            i = 4 * (ti - ti0)
            for tj in range(tw):
                j = 4 * tj
                out = v[:, (n * th + ti - r0) * tw + tj]    # (36, C)
                for c in range(0, c_, simd.LANES):
                    f0 = _row_b(rows[i, j:j + 6], c, lanes)
                    f1 = _row_b(rows[i + 1, j:j + 6], c, lanes)
                    f2 = _row_b(rows[i + 2, j:j + 6], c, lanes)
                    f3 = _row_b(rows[i + 3, j:j + 6], c, lanes)
                    f4 = _row_b(rows[i + 4, j:j + 6], c, lanes)
                    f5 = _row_b(rows[i + 5, j:j + 6], c, lanes)
                    _column_b_t(out, 0, c, f0[0], f1[0], f2[0], f3[0], f4[0], f5[0], lanes)
                    _column_b_t(out, 1, c, f0[1], f1[1], f2[1], f3[1], f4[1], f5[1], lanes)
                    _column_b_t(out, 2, c, f0[2], f1[2], f2[2], f3[2], f4[2], f5[2], lanes)
                    _column_b_t(out, 3, c, f0[3], f1[3], f2[3], f3[3], f4[3], f5[3], lanes)
                    _column_b_t(out, 4, c, f0[4], f1[4], f2[4], f3[4], f4[4], f5[4], lanes)
                    _column_b_t(out, 5, c, f0[5], f1[5], f2[5], f3[5], f4[5], f5[5], lanes)


@njit(cache=True, nogil=True, fastmath={"contract"})
def _output_tiles(m, step, o_, th, tw, r0, r1, bias, y, k):
    """y[n, o, 4 ti + i, 4 tj + j] = (A^T M A)[i, j] + bias[o], M[a, b] = m[(6 a + b) step
    + o B + (r - r0) TW + tj] for the tile rows r = n TH + ti in [r0, r1) (rows and columns
    past OH, OW dropped).  k: _constants(y.dtype).

    Per o, over the block's B tiles: A^T M into ``half_done`` (b, i, t), six vector loops
    (each a combination of six slabs of m); (A^T M) A, + bias, into ``done`` (i, j, t),
    four vector loops; then each output row is gathered from done[i, :, its tiles], the
    four columns of a tile side by side.  Every loop but the last reads and writes runs of
    consecutive tiles (an earlier layout, (t, j) order already in the second loop, was
    1.3x-2.0x slower: strided loads and stores; RESULTS.md, 2026-12-06).  Each loop writes
    one array: LLVM checks an output against each input it might overlap, and gives up
    beyond eight such checks."""
    eighth, quarter, half, two, four, eight = k[0], k[1], k[2], k[4], k[6], k[7]
    oh, ow = y.shape[2], y.shape[3]
    size = (r1 - r0) * tw
    half_done = np.empty((6, 4, size), y.dtype)
    done = np.empty((4, 4, size), y.dtype)
    whole_tiles = ow // 4                      # tiles whose four columns are all in y
    for o in range(o_):
        base = o * size
        for b in range(6):                     # A^T M, column b of every tile
            m0 = m[b * step + base:b * step + base + size]
            m1 = m[(6 + b) * step + base:(6 + b) * step + base + size]
            m2 = m[(12 + b) * step + base:(12 + b) * step + base + size]
            m3 = m[(18 + b) * step + base:(18 + b) * step + base + size]
            m4 = m[(24 + b) * step + base:(24 + b) * step + base + size]
            m5 = m[(30 + b) * step + base:(30 + b) * step + base + size]
            column = half_done[b]
            for t in range(size):
                plus, minus = m1[t] + m2[t], m1[t] - m2[t]
                column[0, t] = m0[t] + plus + m3[t] + m4[t]
                column[1, t] = minus + half * m3[t] - two * m4[t]
                column[2, t] = plus + quarter * m3[t] + four * m4[t]
                column[3, t] = minus + eighth * m3[t] - eight * m4[t] + m5[t]
        bo = bias[o]
        for i in range(4):                     # (A^T M) A, row i of every tile, + bias
            g0, g1, g2 = half_done[0, i], half_done[1, i], half_done[2, i]
            g3, g4, g5 = half_done[3, i], half_done[4, i], half_done[5, i]
            row = done[i]
            for t in range(size):
                plus, minus = g1[t] + g2[t], g1[t] - g2[t]
                row[0, t] = g0[t] + plus + g3[t] + g4[t] + bo
                row[1, t] = minus + half * g3[t] - two * g4[t] + bo
                row[2, t] = plus + quarter * g3[t] + four * g4[t] + bo
                row[3, t] = minus + eighth * g3[t] - eight * g4[t] + g5[t] + bo
        for r in range(r0, r1):                # y's row 4 ti + i from done[i, :, tile row r]
            n, ti = r // th, r % th
            t0 = (r - r0) * tw
            for i in range(min(4, oh - 4 * ti)):
                target = y[n, o, 4 * ti + i]
                d0, d1 = done[i, 0, t0:t0 + tw], done[i, 1, t0:t0 + tw]
                d2, d3 = done[i, 2, t0:t0 + tw], done[i, 3, t0:t0 + tw]
                for tj in range(whole_tiles % simd.LANES):
                    target[4 * tj], target[4 * tj + 1] = d0[tj], d1[tj]
                    target[4 * tj + 2], target[4 * tj + 3] = d2[tj], d3[tj]
                for tj in range(whole_tiles % simd.LANES, whole_tiles, simd.LANES):
                    simd.store_fourths(target, 4 * tj, simd.load(d0, tj), simd.load(d1, tj),
                                       simd.load(d2, tj), simd.load(d3, tj))
                for q in range(4 * whole_tiles, ow):     # a last tile cut by OW
                    target[q] = done[i, q - 4 * whole_tiles, t0 + whole_tiles]


# ---- the kernel interface ------------------------------------------------------------------

TILES_PER_BLOCK = 128           # a 4x4 tile is 4 of F(2x2)'s: the same pixels per block


# G g G^T, flattened: U[6 a + b] = sum_{u, v} G[a, u] G[b, v] g[u, v], the Kronecker product
# G (x) G (36 x 9) times the kernel's nine weights as a vector.
_KRON = np.kron(G, G)


def kernel_transform(weight):
    """U (36, O, C) = G g G^T per kernel g = w[o, c], one GEMM (36 x 9) x (9 x O C) in the
    weight's dtype, into scratch.  (A Numba loop in float64, rounding once, ran 2x-3.5x
    slower at 256 x 128 - 512 x 512 kernels; the GEMM's float32 sums of nine products leave
    U within 2.2e-7 of it, relative to U's largest entry, and the layer's error unchanged.)"""
    o, c = weight.shape[:2]
    step = o * c + STAGGER_BYTES // weight.dtype.itemsize
    u = scratch("winograd4_u", (36 * step,), weight.dtype).reshape(36, step)[:, :o * c]
    np.matmul(_KRON.astype(weight.dtype), weight.reshape(o * c, 9).T, out=u)
    return u.reshape(36, o, c)


def _forward_blocks(x, u, ph, pw, th, tw, bias, y, blocks, indices):
    """The forward's blocks ``indices``, on this thread: tiles, products, output."""
    o, c = u.shape[1], u.shape[2]
    factors = _constants(x.dtype)
    for i in indices:
        r0, r1 = blocks[i]
        size = (r1 - r0) * tw
        m, m_step = _slabs(36, o, size, x.dtype, "winograd_m")
        # rows of fewer than eight tiles: V channels last, eight channels a vector (the
        # forward 1.13x-1.30x faster on six 16x16 and 8x8 layers, AMD Zen 5, 2026-12-06)
        if tw < simd.LANES and c % simd.LANES == 0:
            v_last = winograd_slabs(size, c, x.dtype, "winograd_v", count=36)   # (36, B, C)
            _input_tiles_channels_last(x, ph, pw, th, tw, r0, r1, v_last, factors)
            multiply_transposed(u, v_last, _view(m, m_step, 36, o, size))
        else:
            v, v_step = _slabs(36, c, size, x.dtype, "winograd_v")
            _input_tiles(x, ph, pw, th, tw, r0, r1, v, v_step, factors)
            multiply(u, _view(v, v_step, 36, c, size), _view(m, m_step, 36, o, size))
        _output_tiles(m, m_step, o, th, tw, r0, r1, bias, y, factors)


def _forward(x, u, padding, bias=None):
    """y = the F(4x4) correlation of x with the kernel whose transform is u, plus bias."""
    return run_forward(_forward_blocks, (4, 4), TILES_PER_BLOCK, x, u, padding, bias)


ADDS_BIAS = True       # conv2d_forward takes the bias: the output transform adds it


def conv2d_forward(x, weight, stride, padding, dilation, groups, save=False, bias=None):
    """(y, None): y with ``bias`` (O,) added in the output transform.  Nothing is saved:
    the backward is F(2x2)'s (winograd.py), which transforms the kernel itself."""
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight, dtype=x.dtype)
    return _forward(x, kernel_transform(weight), padding, bias), None


MAX_CHANNELS = 128      # float32 error: up to 9.5x im2col's at C = 128, 13.4x at 256-512


def preferred(x_shape, weight_shape, padding):
    """The rule of 'auto' and 'winograd' for a forward that winograd.py would compute: F(4x4)
    when C <= MAX_CHANNELS (its error, above) and its tiles cover no more than 1.1x the
    area F(2x2)'s do.  Measured with ``python -m benchmarks.bench_winograd4`` on the 2-core
    Xeon (RESULTS.md, 2026-12-06): F(4x4) ran 1.04x-1.49x F(2x2)'s speed on 18 shapes whose
    planes are multiples of 4 (or 7x7: two tiles against four, both covering 8x8), and
    0.64x-0.91x where F(4x4)'s tiles cover 1.3x-1.8x F(2x2)'s area (6x6, 13x13, 14x14).
    On the AMD EPYC Zen 4 (2026-12-06, two runs, with jit.py's 256-bit vectors) the rule's
    F(4x4) shapes ran 1.03x-1.30x, except 8x16x32x32 (1.04x, 0.94x) and 1x128x7x7
    (0.94x, 0.75x); with LLVM's 512-bit vectors there F(4x4) lost on every 32- to
    64-channel batch (0.69x-0.97x)."""
    oh, ow = conv_output_hw(x_shape, (3, 3), (1, 1), padding)
    covered_by_4 = (-(-oh // 4) * 4) * (-(-ow // 4) * 4)
    covered_by_2 = (-(-oh // 2) * 2) * (-(-ow // 2) * 2)
    return x_shape[1] <= MAX_CHANNELS and covered_by_4 <= 1.1 * covered_by_2
