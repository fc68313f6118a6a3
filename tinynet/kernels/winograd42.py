"""Winograd F(4x2, 3x3): a 6x4 input tile gives a 4x2 output tile (four rows, two columns)
with 24 multiplications instead of 8 x 9 = 72: 3 per output, against F(2x2)'s 4 and
F(4x4)'s 2.25.

Why a rectangle.  The products are most of a Winograd convolution's time (with OpenBLAS's
AVX2 kernels, 78%-94% of dL/dx's), so fewer products are the way to a faster backward; but
F(4x4) and F(3x3) lose too much precision there (dL/dx 9.4x-15.3x im2col's float32 error,
#13 allows 10x).  A 2-D Winograd transform is two 1-D ones, one down the columns and one
along the rows, and they need not be the same: F(4, 3) down the columns (winograd4.py's
points 0, 1, -1, 1/2, -2) and F(2, 3) along the rows (winograd.py's 0, 1, -1),

    Y = A4^T [ (G4 g G2^T) * (B4^T d B2) ] A2          (4x6)(6x4 . 6x4)(4x2)

The error grows with the transforms' entries, so it sits between F(2x2)'s and F(4x4)'s:
measured against float64 on nine layers, two seeds (``python -m benchmarks.winograd_error``,
RESULTS.md 2026-12-06, seventh session), as multiples of im2col's float32 error, dL/dx
3.7x-5.5x, dL/dW 1.2x-6.7x, the forward 0.8x-3.9x (F(2x2): 1.4x-2.3x, 0.7x-3.0x,
0.3x-1.6x; F(4x4): 9.4x-15.3x, 2.4x-14.1x, 2.1x-10.3x).  The 1-D pieces are the other modules': B2^T d is ``winograd_tiles.bt``, A2^T m
is ``winograd_tiles.at``, A2 f is ``winograd_weight.a_row``; B4^T d is ``winograd4._b_t``.

The same three products as winograd.py, each with 24 slabs where F(2x2) has 16:
    forward   M[k] = U[k] V[k], y from A4^T M A2           (U: G4 g G2^T, V: B4^T d B2)
    dL/dx     the forward on dL/dy with the kernel flipped in both axes (padding 2 - P);
              the flipped kernel's transform is computed, not permuted: the points 1/2 and
              -2 are not each other's reciprocals, so F(2x2)'s permutation does not exist
    dL/dW     dU[k] = sum over tiles of dM[k] V[k]^T, dM = A4 dY A2^T, then G4^T dU G2;
              dL/db summed from dL/dy's tiles on the way (each covers dL/dy once)

Notation as in winograd.py: a block is the tile rows [r0, r1) of the batch, r = n TH + ti,
TH = ceil(OH / 4), TW = ceil(OW / 2); B = (r1 - r0) TW tiles; slab k = 4 a + b holds entry
(a, b) of the 6x4 tiles.
"""
import numpy as np

from ..geometry import conv_output_hw
from . import simd, winograd
from .jit import njit
from .scratch import empty
from .winograd4 import G as G4, _b_t, _constants, _lanes
from .winograd_tiles import at, bt, copy_rows
from .winograd_weight import a_row

G2 = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
# U[4 a + b] = sum_{u, v} G4[a, u] G2[b, v] g[u, v]: the Kronecker product (24 x 9) times the
# kernel's nine weights as a vector; reversing those nine flips the kernel in both axes
_KRON = np.kron(G4, G2)
TILE = (4, 2)


# ---- the 1-D steps F(4, 3) adds (numbers, or simd vectors: eight tiles) ---------------------

@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def a_t4(m0, m1, m2, m3, m4, m5, k):
    """A4^T m for six numbers down a tile column: the output transform's step (rows of A4^T:
    (1, 1, 1, 1, 1, 0), (0, 1, -1, 1/2, -2, 0), (0, 1, 1, 1/4, 4, 0), (0, 1, -1, 1/8, -8, 1));
    k: winograd4._constants (or _lanes)."""
    eighth, quarter, half, two, four, eight = k[0], k[1], k[2], k[4], k[6], k[7]
    plus, minus = m1 + m2, m1 - m2
    return (m0 + plus + m3 + m4, minus + half * m3 - two * m4,
            plus + quarter * m3 + four * m4, minus + eighth * m3 - eight * m4 + m5)


@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def a4(e0, e1, e2, e3, k):
    """A4 e for four numbers down a tile column of dL/dy: a_t4's adjoint, dL/dW's step."""
    eighth, quarter, half, two, four, eight = k[0], k[1], k[2], k[4], k[6], k[7]
    even, odd = e0 + e2, e1 + e3
    return (e0, even + odd, even - odd, e0 + half * e1 + quarter * e2 + eighth * e3,
            e0 - two * e1 + four * e2 - eight * e3, e3)


# ---- the tile transforms ---------------------------------------------------------------------

@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def b_t4_d_b2(row0, row1, row2, row3, row4, row5, k):
    """B4^T d B2 for one 6x4 tile d (numbers, or simd vectors: eight tiles) given its six
    rows, each its four columns: B2 along each row (``bt``), then B4^T down each of the four
    columns (``_b_t``).  Returns the four columns of the result, each its six rows: entry
    (a, b) is returned[b][a]."""
    a0, a1, a2, a3 = bt(row0[0], row0[1], row0[2], row0[3])
    b0, b1, b2, b3 = bt(row1[0], row1[1], row1[2], row1[3])
    c0, c1, c2, c3 = bt(row2[0], row2[1], row2[2], row2[3])
    d0, d1, d2, d3 = bt(row3[0], row3[1], row3[2], row3[3])
    e0, e1, e2, e3 = bt(row4[0], row4[1], row4[2], row4[3])
    f0, f1, f2, f3 = bt(row5[0], row5[1], row5[2], row5[3])
    return (_b_t(a0, b0, c0, d0, e0, f0, k), _b_t(a1, b1, c1, d1, e1, f1, k),
            _b_t(a2, b2, c2, d2, e2, f2, k), _b_t(a3, b3, c3, d3, e3, f3, k))


@njit(cache=True, nogil=True, inline="always")
def _row_vectors(row, q):
    """Columns q .. q + 3 of eight tiles from a plane row: tile l's column j is
    row[q + 2 l + j], two loads dealt into even and odd elements."""
    first, second = simd.load_even_odd(row, q)
    third, fourth = simd.load_even_odd(row, q + 2)
    return first, second, third, fourth


@njit(cache=True, nogil=True, fastmath={"contract"})
def _input_tiles(x, ph, pw, th, tw, r0, r1, v, k):
    """v[4 a + b, c, (r - r0) TW + tj] = (B4^T d B2)[a, b] for the tile rows r = n TH + ti in
    [r0, r1), d = x_pad[n, c, 4 ti: 4 ti + 6, 2 tj: 2 tj + 4].  The block's rows of x[n, c]
    are copied into a zero-bordered plane; then each tile is transformed from its six rows
    (``b_t4_d_b2``): eight tiles at a time as simd vectors, the TW % 8 others first, one at
    a time.  (B4^T d as six loops along whole plane rows first, as winograd4.py does, was
    2.7x slower on 32x32 planes: with two tile columns per step instead of four, the loops'
    set-up costs more than it saves.)"""
    h_, w_ = x.shape[2], x.shape[3]
    width = 2 * tw + 2
    plane = np.zeros((4 * th + 2, width), x.dtype)     # its border stays zero
    head = tw % simd.LANES
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
                t = (n * th + ti - r0) * tw
                out = v[:, c, t:t + tw]                 # (24, TW)
                for tj in range(head):
                    q = 2 * tj
                    columns = b_t4_d_b2(
                        (d0[q], d0[q + 1], d0[q + 2], d0[q + 3]),
                        (d1[q], d1[q + 1], d1[q + 2], d1[q + 3]),
                        (d2[q], d2[q + 1], d2[q + 2], d2[q + 3]),
                        (d3[q], d3[q + 1], d3[q + 2], d3[q + 3]),
                        (d4[q], d4[q + 1], d4[q + 2], d4[q + 3]),
                        (d5[q], d5[q + 1], d5[q + 2], d5[q + 3]), k)
                    for b, column in ((0, columns[0]), (1, columns[1]), (2, columns[2]),
                                      (3, columns[3])):
                        out[b, tj], out[4 + b, tj], out[8 + b, tj] = column[:3]
                        out[12 + b, tj], out[16 + b, tj], out[20 + b, tj] = column[3:]
                for tj in range(head, tw, simd.LANES):
                    q = 2 * tj
                    columns = b_t4_d_b2(_row_vectors(d0, q), _row_vectors(d1, q),
                                        _row_vectors(d2, q), _row_vectors(d3, q),
                                        _row_vectors(d4, q), _row_vectors(d5, q), lanes)
                    for b, column in ((0, columns[0]), (1, columns[1]), (2, columns[2]),
                                      (3, columns[3])):
                        simd.store(out[b], tj, column[0])
                        simd.store(out[4 + b], tj, column[1])
                        simd.store(out[8 + b], tj, column[2])
                        simd.store(out[12 + b], tj, column[3])
                        simd.store(out[16 + b], tj, column[4])
                        simd.store(out[20 + b], tj, column[5])


@njit(cache=True, nogil=True, fastmath={"contract"})
def _input_tiles_channels_last(x, ph, pw, th, tw, r0, r1, v, k):
    """v[4 a + b, (r - r0) TW + tj, c] = (B4^T d B2)[a, b]: _input_tiles with V as (24, B,
    C), for rows shorter than eight tiles (8x8 and 14x14 planes), where _input_tiles goes
    one tile at a time.  Each example's rows of the block are copied channels last into a
    zero-bordered buffer (rows, WP, C), then every tile's 24 values are written as runs of
    C, eight channels at a time as simd vectors (the C % 8 others first, one at a time), as
    winograd_tiles._input_tiles_channels_last does for F(2x2)."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    wp = 2 * tw + 2
    cols = min(w_, wp - pw)
    rows = np.empty((4 * min(r1 - r0, th) + 2, wp, c_), x.dtype)
    head = c_ % simd.LANES                     # channels [head, C) go eight at a time
    like = np.zeros(simd.LANES, x.dtype)
    lanes = _lanes(k)
    for n in range(r0 // th, (r1 - 1) // th + 1):
        ti0, ti1 = max(r0 - n * th, 0), min(r1 - n * th, th)    # this example's rows
        top = 4 * ti0 - ph                         # the row of x that rows[0] holds
        for r in range(4 * (ti1 - ti0) + 2):
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
            i = 4 * (ti - ti0)
            for tj in range(tw):
                t, j = (n * th + ti - r0) * tw + tj, 2 * tj
                d0, d1, d2 = rows[i, j:j + 4], rows[i + 1, j:j + 4], rows[i + 2, j:j + 4]
                d3, d4, d5 = rows[i + 3, j:j + 4], rows[i + 4, j:j + 4], rows[i + 5, j:j + 4]
                out = v[:, t]                          # (24, C)
                for c in range(head):
                    columns = b_t4_d_b2(
                        (d0[0, c], d0[1, c], d0[2, c], d0[3, c]),
                        (d1[0, c], d1[1, c], d1[2, c], d1[3, c]),
                        (d2[0, c], d2[1, c], d2[2, c], d2[3, c]),
                        (d3[0, c], d3[1, c], d3[2, c], d3[3, c]),
                        (d4[0, c], d4[1, c], d4[2, c], d4[3, c]),
                        (d5[0, c], d5[1, c], d5[2, c], d5[3, c]), k)
                    for b, column in ((0, columns[0]), (1, columns[1]), (2, columns[2]),
                                      (3, columns[3])):
                        out[b, c], out[4 + b, c], out[8 + b, c] = column[:3]
                        out[12 + b, c], out[16 + b, c], out[20 + b, c] = column[3:]
                for c in range(head, c_, simd.LANES):      # eight channels at a time
                    columns = b_t4_d_b2(_cell_vectors(d0, c), _cell_vectors(d1, c),
                                        _cell_vectors(d2, c), _cell_vectors(d3, c),
                                        _cell_vectors(d4, c), _cell_vectors(d5, c), lanes)
                    for b, column in ((0, columns[0]), (1, columns[1]), (2, columns[2]),
                                      (3, columns[3])):
                        simd.store(out[b], c, column[0])
                        simd.store(out[4 + b], c, column[1])
                        simd.store(out[8 + b], c, column[2])
                        simd.store(out[12 + b], c, column[3])
                        simd.store(out[16 + b], c, column[4])
                        simd.store(out[20 + b], c, column[5])


@njit(cache=True, nogil=True, inline="always")
def _cell_vectors(row, c):
    """Channels c .. c + 7 of a tile row's four cells (row: (4, C), channels last)."""
    return (simd.load(row[0], c), simd.load(row[1], c), simd.load(row[2], c),
            simd.load(row[3], c))


@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def _a_t4_m(m0, m1, m2, m3, m4, m5, k):
    """A4^T M for one tile (or eight as vectors) given M's six rows, each its four columns:
    the rows of the result, each its four columns."""
    s00, s10, s20, s30 = a_t4(m0[0], m1[0], m2[0], m3[0], m4[0], m5[0], k)
    s01, s11, s21, s31 = a_t4(m0[1], m1[1], m2[1], m3[1], m4[1], m5[1], k)
    s02, s12, s22, s32 = a_t4(m0[2], m1[2], m2[2], m3[2], m4[2], m5[2], k)
    s03, s13, s23, s33 = a_t4(m0[3], m1[3], m2[3], m3[3], m4[3], m5[3], k)
    return (s00, s01, s02, s03), (s10, s11, s12, s13), (s20, s21, s22, s23), (s30, s31, s32, s33)


@njit(cache=True, nogil=True, inline="always")
def _m_rows(tiles, tj):
    """M's six rows, each its four columns, of tile tj (tiles: (24, TW))."""
    return ((tiles[0, tj], tiles[1, tj], tiles[2, tj], tiles[3, tj]),
            (tiles[4, tj], tiles[5, tj], tiles[6, tj], tiles[7, tj]),
            (tiles[8, tj], tiles[9, tj], tiles[10, tj], tiles[11, tj]),
            (tiles[12, tj], tiles[13, tj], tiles[14, tj], tiles[15, tj]),
            (tiles[16, tj], tiles[17, tj], tiles[18, tj], tiles[19, tj]),
            (tiles[20, tj], tiles[21, tj], tiles[22, tj], tiles[23, tj]))


@njit(cache=True, nogil=True, inline="always")
def _m_row_vectors(tiles, tj):
    """_m_rows for the eight tiles tj .. tj + 7, as simd vectors."""
    return ((simd.load(tiles[0], tj), simd.load(tiles[1], tj), simd.load(tiles[2], tj),
             simd.load(tiles[3], tj)),
            (simd.load(tiles[4], tj), simd.load(tiles[5], tj), simd.load(tiles[6], tj),
             simd.load(tiles[7], tj)),
            (simd.load(tiles[8], tj), simd.load(tiles[9], tj), simd.load(tiles[10], tj),
             simd.load(tiles[11], tj)),
            (simd.load(tiles[12], tj), simd.load(tiles[13], tj), simd.load(tiles[14], tj),
             simd.load(tiles[15], tj)),
            (simd.load(tiles[16], tj), simd.load(tiles[17], tj), simd.load(tiles[18], tj),
             simd.load(tiles[19], tj)),
            (simd.load(tiles[20], tj), simd.load(tiles[21], tj), simd.load(tiles[22], tj),
             simd.load(tiles[23], tj)))


@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def _output_row(tiles, plane, top, rows_in_y, pairs, b, k, lanes):
    """One tile row into y: tiles is its M (24, TW), plane y[n, o], ``top`` its first row.
    Eight tiles at a time as simd vectors, A4^T down the columns, then A2 along each
    output row, whose two columns are interleaved as they are stored; the first PAIRS % 8
    tiles, and an odd OW's last, one at a time."""
    tw = tiles.shape[1]
    head = pairs % simd.LANES
    for i in range(head + tw - pairs):         # the tiles [0, head) and [pairs, TW)
        tj = i if i < head else pairs + i - head
        m0, m1, m2, m3, m4, m5 = _m_rows(tiles, tj)
        rows = _a_t4_m(m0, m1, m2, m3, m4, m5, k)
        for i_ in range(rows_in_y):
            left, right = at(rows[i_][0], rows[i_][1], rows[i_][2], rows[i_][3])
            target = plane[top + i_]
            target[2 * tj] = left + b
            if tj < pairs:
                target[2 * tj + 1] = right + b
    for tj in range(head, pairs, simd.LANES):
        m0, m1, m2, m3, m4, m5 = _m_row_vectors(tiles, tj)
        rows = _a_t4_m(m0, m1, m2, m3, m4, m5, lanes)
        bias_lanes = simd.splat(b, rows[0][0])
        for i_, row in ((0, rows[0]), (1, rows[1]), (2, rows[2]), (3, rows[3])):
            if i_ < rows_in_y:
                left, right = at(row[0], row[1], row[2], row[3])
                simd.store_even_odd(plane[top + i_], 2 * tj, left + bias_lanes,
                                    right + bias_lanes)


@njit(cache=True, nogil=True, fastmath={"contract"})
def _output_tiles(m, th, tw, r0, r1, bias, y, k):
    """y[n, o, 4 ti + i, 2 tj + j] = (A4^T M A2)[i, j] + bias[o], M[a, b] = m[4 a + b, o,
    (r - r0) TW + tj], for the tile rows r = n TH + ti in [r0, r1) (rows and columns past
    OH, OW dropped).  Channel by channel, a tile row at a time (``_output_row``).  Where
    the plane is eight columns wide (four tiles a row: 8x8 planes), two whole tile rows at
    a time, their eight tiles (consecutive in M) as one vector, each half stored into its
    own rows of y (``store_even_odd_halves``)."""
    oh, pairs = y.shape[2], y.shape[3] // 2     # pairs: tiles with both columns in y
    two_rows = tw == 4 and pairs == 4
    lanes = _lanes(k)
    for o in range(y.shape[1]):
        b = bias[o]
        r = r0
        while r < r1:
            n, ti = r // th, r % th
            n2, ti2 = (r + 1) // th, (r + 1) % th
            t = (r - r0) * tw
            if two_rows and r + 1 < r1 and 4 * ti + 4 <= oh and 4 * ti2 + 4 <= oh:
                m0, m1, m2, m3, m4, m5 = _m_row_vectors(m[:, o, t:t + 8], 0)
                rows = _a_t4_m(m0, m1, m2, m3, m4, m5, lanes)
                bias_lanes = simd.splat(b, rows[0][0])
                for i_, row in ((0, rows[0]), (1, rows[1]), (2, rows[2]), (3, rows[3])):
                    left, right = at(row[0], row[1], row[2], row[3])
                    simd.store_even_odd_halves(y[n, o, 4 * ti + i_], 0, y[n2, o, 4 * ti2 + i_],
                                               0, left + bias_lanes, right + bias_lanes)
                r += 2
            else:
                _output_row(m[:, o, t:t + tw], y[n, o], 4 * ti, min(4, oh - 4 * ti), pairs, b,
                            k, lanes)
                r += 1


@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def _grad_tile(e00, e01, e10, e11, e20, e21, e30, e31, k):
    """A4 dY A2^T for one tile (or eight as vectors) from its four rows' two columns: the
    entries 4 a .. 4 a + 3, per a."""
    left = a4(e00, e10, e20, e30, k)          # A4 dY, per column
    right = a4(e01, e11, e21, e31, k)
    return (a_row(left[0], right[0]), a_row(left[1], right[1]), a_row(left[2], right[2]),
            a_row(left[3], right[3]), a_row(left[4], right[4]), a_row(left[5], right[5]))


@njit(cache=True, nogil=True, inline="always")
def _store_grad_tiles(out, tj, entries):
    """out[4 a + i, tj: tj + 8] = entries[a][i] (eight tiles as simd vectors)."""
    for a, row in ((0, entries[0]), (4, entries[1]), (8, entries[2]), (12, entries[3]),
                   (16, entries[4]), (20, entries[5])):
        simd.store(out[a], tj, row[0])
        simd.store(out[a + 1], tj, row[1])
        simd.store(out[a + 2], tj, row[2])
        simd.store(out[a + 3], tj, row[3])


@njit(cache=True, nogil=True, inline="always")
def _sum_lanes(e00, e01, e10, e11, e20, e21, e30, e31):
    """The eight vectors' lanes added per lane, in float64."""
    return (((simd.widen(e00) + simd.widen(e01)) + (simd.widen(e10) + simd.widen(e11)))
            + ((simd.widen(e20) + simd.widen(e21)) + (simd.widen(e30) + simd.widen(e31))))


@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def _grad_row(e0, e1, e2, e3, out, head, k, lanes, total, lanes_total):
    """One tile row of dL/dy (its four plane rows e0-e3) into out (24, TW): the TW % 8 first
    tiles one at a time, then eight at a time as simd vectors.  Returns the sums of dL/dy,
    (total, lanes_total), with this row's added."""
    for tj in range(head):
        q = 2 * tj
        for row in (e0, e1, e2, e3):
            total += np.float64(row[q]) + np.float64(row[q + 1])
        entries = _grad_tile(e0[q], e0[q + 1], e1[q], e1[q + 1], e2[q], e2[q + 1], e3[q],
                             e3[q + 1], k)
        for a in range(6):
            out[4 * a, tj], out[4 * a + 1, tj] = entries[a][0], entries[a][1]
            out[4 * a + 2, tj], out[4 * a + 3, tj] = entries[a][2], entries[a][3]
    for tj in range(head, out.shape[1], simd.LANES):
        e00, e01 = simd.load_even_odd(e0, 2 * tj)
        e10, e11 = simd.load_even_odd(e1, 2 * tj)
        e20, e21 = simd.load_even_odd(e2, 2 * tj)
        e30, e31 = simd.load_even_odd(e3, 2 * tj)
        lanes_total = lanes_total + _sum_lanes(e00, e01, e10, e11, e20, e21, e30, e31)
        _store_grad_tiles(out, tj, _grad_tile(e00, e01, e10, e11, e20, e21, e30, e31, lanes))
    return total, lanes_total


@njit(cache=True, nogil=True, fastmath={"contract"})
def _output_grad_tiles(gy, th, tw, r0, r1, dm, bias_sums, k):
    """dm[4 a + b, o, (r - r0) TW + tj] = (A4 dY A2^T)[a, b] for the tile rows r = n TH + ti
    in [r0, r1), dY = gy[n, o, 4 ti: 4 ti + 4, 2 tj: 2 tj + 2] (zeros past OH, OW): the
    adjoint of _output_tiles.  On the way, bias_sums[o] += the sum of those dY (float64,
    per lane in the vectors, the lanes added at the end of each channel).  A tile row at a
    time (``_grad_row``: eight tiles a vector, a tile row's two columns being the even and
    odd elements of each of its four rows); on planes eight columns wide (8x8), two tile
    rows at a time, their four tiles each as the two halves of a vector."""
    oh, ow = gy.shape[2], gy.shape[3]
    odd = oh < 4 * th or ow < 2 * tw
    two_rows = tw == 4 and not odd
    plane = np.zeros((4 * th, 2 * tw), gy.dtype)       # sizes not whole tiles: zeros past
    head = tw % simd.LANES
    lanes = _lanes(k)
    for o in range(gy.shape[1]):
        total = 0.0
        lanes_total = simd.float64_zeros()
        rest = r0                               # the tile rows [rest, r1) go one by one
        if two_rows:
            for r in range(r0, r1 - 1, 2):
                a, b = gy[r // th, o, 4 * (r % th):], gy[(r + 1) // th, o, 4 * ((r + 1) % th):]
                e00, e01 = simd.load_even_odd_halves(a[0], 0, b[0], 0)
                e10, e11 = simd.load_even_odd_halves(a[1], 0, b[1], 0)
                e20, e21 = simd.load_even_odd_halves(a[2], 0, b[2], 0)
                e30, e31 = simd.load_even_odd_halves(a[3], 0, b[3], 0)
                lanes_total = lanes_total + _sum_lanes(e00, e01, e10, e11, e20, e21, e30, e31)
                _store_grad_tiles(dm[:, o, (r - r0) * 4:], 0,
                                  _grad_tile(e00, e01, e10, e11, e20, e21, e30, e31, lanes))
            rest = r1 - (r1 - r0) % 2          # an odd count: the last row, alone
        for n in range(rest // th, (r1 - 1) // th + 1):
            ti0, ti1 = max(rest - n * th, 0), min(r1 - n * th, th)    # this example's rows
            source = gy[n, o]
            if odd:
                for h in range(4 * ti0, min(4 * ti1, oh)):
                    for q in range(ow):
                        plane[h, q] = source[h, q]
                source = plane
            for ti in range(ti0, ti1):
                t = (n * th + ti - r0) * tw
                total, lanes_total = _grad_row(
                    source[4 * ti], source[4 * ti + 1], source[4 * ti + 2], source[4 * ti + 3],
                    dm[:, o, t:t + tw], head, k, lanes, total, lanes_total)
        bias_sums[o] += total + simd.lane_sum(lanes_total)


# ---- the kernel interface ------------------------------------------------------------------

# Tiles per block, swept on six layers (AMD Zen 5, Haswell kernels, 2026-12-06, alternated in
# one process): dL/dx with 256 ran 1.02x-1.13x the speed of 128 on five of them (0.98x on
# the sixth), 64 0.79x-1.03x, 384 and 512 0.89x-1.02x against 256; dL/dW with 128, 384 and
# 512 0.86x-1.04x against 256.
TILES_PER_BLOCK = 256           # forward and dL/dx
TILES_PER_WEIGHT_BLOCK = 256    # dL/dW


def channels_last(c, tw):
    """Whether V is stored (24, B, C): rows of fewer than eight tiles, eight channels or more
    (the transform then takes eight channels a vector instead of one tile at a time)."""
    return tw < simd.LANES and c >= simd.LANES


def kernel_transform(weight, flipped=False):
    """U (24, O, C) = G4 g G2^T per kernel g = w[o, c] (one GEMM, (24 x 9) x (9 x O C), in
    the weight's dtype, as winograd4.kernel_transform); with ``flipped``, the transform of
    w[o, c, 2 - u, 2 - v] as a (24, C, O) view, the kernel dL/dx runs the forward with."""
    o, c = weight.shape[:2]
    kron = _KRON[:, ::-1] if flipped else _KRON
    u = winograd._slabs(o, c, weight.dtype, "winograd42_u", count=24)
    np.matmul(kron.astype(weight.dtype), weight.reshape(o * c, 9).T,
              out=u.reshape(24, o * c))     # a view: each slab is contiguous
    return u.transpose(0, 2, 1) if flipped else u


def _forward_blocks(x, u, ph, pw, th, tw, bias, y, blocks, indices):
    """The forward's blocks ``indices``, on this thread: tiles, products, output."""
    o, c = u.shape[1], u.shape[2]
    factors = _constants(x.dtype)
    for i in indices:
        r0, r1 = blocks[i]
        size = (r1 - r0) * tw
        m = winograd._slabs(o, size, x.dtype, "winograd_m", count=24)     # (24, O, B)
        if channels_last(c, tw):
            v = winograd._slabs(size, c, x.dtype, "winograd_v", count=24)     # (24, B, C)
            _input_tiles_channels_last(x, ph, pw, th, tw, r0, r1, v, factors)
            np.matmul(u, v.transpose(0, 2, 1), out=m)                     # M[k] = U[k] V[k]
        else:
            v = winograd._slabs(c, size, x.dtype, "winograd_v", count=24)     # (24, C, B)
            _input_tiles(x, ph, pw, th, tw, r0, r1, v, factors)
            np.matmul(u, v, out=m)
        _output_tiles(m, th, tw, r0, r1, bias, y, factors)


def _forward(x, u, padding, bias=None):
    return winograd.run_forward(_forward_blocks, TILE, TILES_PER_BLOCK, x, u, padding, bias)


ADDS_BIAS = True       # conv2d_forward takes the bias: the output transform adds it


def conv2d_forward(x, weight, stride, padding, dilation, groups, save=False, bias=None):
    """(y, None), y with ``bias`` (O,) added in the output transform.  Nothing is saved: the
    backward transforms the flipped kernel itself (a GEMM of 24 x 9 by 9 x O C)."""
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight, dtype=x.dtype)
    return _forward(x, kernel_transform(weight), padding, bias), None


def conv2d_backward_input(grad_y, weight, x_shape, stride, padding, dilation, groups):
    """dL/dx = the F(4x2) correlation of dL/dy with w[o, c, 2 - u, 2 - v] as a (C, O, 3, 3)
    kernel, padding 2 - P: output size OH + 2 (2 - PH) - 2 = H."""
    grad_y = np.ascontiguousarray(grad_y)
    weight = np.ascontiguousarray(weight, dtype=grad_y.dtype)
    return _forward(grad_y, kernel_transform(weight, flipped=True),
                    (2 - padding[0], 2 - padding[1]))


def _weight_grad_blocks(grad_y, x, ph, pw, th, tw, partial_sums, blocks, indices):
    """dU and dL/db summed over the blocks ``indices``, appended to ``partial_sums``."""
    o, c = grad_y.shape[1], x.shape[1]
    factors = _constants(x.dtype)
    du = block_du = None          # the first block's products go straight into du
    bias_sums = np.zeros(o)
    for i in indices:
        r0, r1 = blocks[i]
        size = (r1 - r0) * tw
        dm = winograd._slabs(o, size, x.dtype, "winograd_m", count=24)    # (24, O, B)
        _output_grad_tiles(grad_y, th, tw, r0, r1, dm, bias_sums, factors)
        if channels_last(c, tw):
            v = winograd._slabs(size, c, x.dtype, "winograd_v", count=24)     # (24, B, C)
            _input_tiles_channels_last(x, ph, pw, th, tw, r0, r1, v, factors)
        else:
            v = winograd._slabs(c, size, x.dtype, "winograd_v", count=24)     # (24, C, B)
            _input_tiles(x, ph, pw, th, tw, r0, r1, v, factors)
            v = v.transpose(0, 2, 1)
        if du is None:
            du = np.matmul(dm, v)                   # dU[k] = dM[k] V[k]^T, (O, C)
        else:
            block_du = np.matmul(dm, v, out=block_du)
            du += block_du
    if du is not None:                # a thread that took no block adds nothing
        partial_sums.append((du, bias_sums))


def weight_and_bias_grad(grad_y, x, weight_shape, padding):
    """(dL/dW, dL/db): dU summed over the blocks (each thread its own, added at the end),
    then dL/dg = G4^T dU G2 for every kernel, one GEMM (9 x 24) x (24 x O C)."""
    grad_y = np.ascontiguousarray(grad_y)
    x = np.ascontiguousarray(x, dtype=grad_y.dtype)
    o, c = weight_shape[:2]
    th, tw = -(-grad_y.shape[2] // TILE[0]), -(-grad_y.shape[3] // TILE[1])
    blocks = winograd._blocks(x.shape[0], th, tw, TILES_PER_WEIGHT_BLOCK)
    partial_sums = []                        # one ((24, O, C), (O,)) per thread
    winograd._run_blocks(_weight_grad_blocks, blocks, grad_y, x, padding[0], padding[1], th,
                         tw, partial_sums)
    (du, bias_sums), rest = partial_sums[0], partial_sums[1:]
    du = sum((more for more, _ in rest), du)
    grad_w = empty(weight_shape, grad_y.dtype)
    np.matmul(_KRON.T.astype(grad_y.dtype), du.reshape(24, o * c),
              out=grad_w.reshape(o * c, 9).T)
    grad_b = sum((more for _, more in rest), bias_sums).astype(grad_y.dtype)
    return grad_w, grad_b


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups,
                           saved=None):
    return weight_and_bias_grad(grad_y, x, weight_shape, padding)[0]


def conv2d_backward(grad_y, x, weight, stride, padding, dilation, groups, saved=None,
                    need_x=True, need_w=True, need_b=False):
    """(dL/dx, dL/dW, dL/db), each None when not needed (dL/db comes with dL/dW only);
    ``saved`` (another module's forward's) is not used."""
    grad_x = grad_w = grad_b = None
    if need_x:
        grad_x = conv2d_backward_input(grad_y, weight, x.shape, stride, padding, dilation,
                                       groups)
    if need_w:
        grad_w, grad_b = weight_and_bias_grad(grad_y, x, weight.shape, padding)
    return grad_x, grad_w, (grad_b if need_b else None)


MIN_OUTPUT_ROWS = 8


def preferred(function_name, x_shape, weight_shape, padding):
    """The rule of 'auto' and 'winograd' for a convolution winograd.py would compute (the
    forward only where winograd4.preferred does not take it): F(4x2) where the output has
    at least MIN_OUTPUT_ROWS rows and its tile rows, four output rows each, cover no more
    than 1.1x the rows F(2x2)'s do.  The same for every direction, so that the forward and
    its backward are one module's.  Measured with ``python -m benchmarks.bench_winograd42``
    (21 shapes, AMD Zen 5, OpenBLAS's Haswell kernels, 2026-12-06, RESULTS.md): F(4x2) ran
    1.04x-1.41x F(2x2)'s speed on planes of 8x8 and more that it covers well (32x32 layers
    1.16x-1.25x, 224x224 1.16x-1.38x), and lost on 4x4, 6x6 and 7x7 (0.55x-0.96x; a tile
    row is most of the plane) and on 13x13 and 14x14, which its tiles cover as 16x16
    (0.67x-1.06x)."""
    oh, ow = conv_output_hw(x_shape, (3, 3), (1, 1), padding)
    return oh >= MIN_OUTPUT_ROWS and -(-oh // 4) * 4 <= 1.1 * (-(-oh // 2) * 2)
