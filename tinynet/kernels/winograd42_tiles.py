"""Winograd F(4x2, 3x3)'s tile transforms, as Numba kernels: what winograd42.py (the
algorithm, its error, the blocks and the kernel interface) runs a block at a time.

    _input_tiles        V = B4^T d B2 for every 6x4 input tile of a block, V as (24, C, B)
    _input_tiles_channels_last   the same, V as (24, B, C), for rows of fewer than 8 tiles
    _output_tiles       y = A4^T M A2 + bias for every 4x2 output tile
    _output_grad_tiles  dM = A4 dY A2^T for every 4x2 tile of dL/dy, and dL/db on the way

Each 2-D transform is a 1-D step down the columns (F(4, 3)'s: ``_b_t`` of winograd4.py,
``a_t4``, ``a4`` here) and one along the rows (F(2, 3)'s: ``bt``, ``at`` of
winograd_tiles.py, ``a_row`` of winograd_weight.py).  The tile loops take eight tiles (or
eight channels, or on 8-wide planes two tile rows of four) at a time as simd.py's vectors,
the same expressions on eight lanes; the tiles left over go one at a time.

Notation as in winograd42.py: TH = ceil(OH / 4), TW = ceil(OW / 2) tiles per plane; a block
is the tile rows [r0, r1) of the batch, r = n TH + ti, B = (r1 - r0) TW tiles; slab k = 4 a +
b holds entry (a, b) of the 6x4 tiles.
"""
import numpy as np

from . import simd
from .jit import njit
from .winograd4 import _b_t, _lanes
from .winograd_tiles import at, bt, copy_rows, copy_rows_channels_last
from .winograd_weight import a_row


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
    c_, w_ = x.shape[1], x.shape[3]
    wp = 2 * tw + 2
    cols = min(w_, wp - pw)
    rows = np.empty((4 * min(r1 - r0, th) + 2, wp, c_), x.dtype)
    head = c_ % simd.LANES                     # channels [head, C) go eight at a time
    lanes = _lanes(k)
    for n in range(r0 // th, (r1 - 1) // th + 1):
        ti0, ti1 = max(r0 - n * th, 0), min(r1 - n * th, th)    # this example's rows
        # rows[0] holds x's row 4 TI0 - PH
        copy_rows_channels_last(x, n, 4 * ti0 - ph, 4 * (ti1 - ti0) + 2, pw, cols, rows)
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
            if odd:                            # its rows into the plane's, zeros past OW
                copy_rows(gy, n, o, 4 * ti0, min(4 * ti1, oh), 0, 0, ow, plane)
                source = plane
            for ti in range(ti0, ti1):
                t = (n * th + ti - r0) * tw
                total, lanes_total = _grad_row(
                    source[4 * ti], source[4 * ti + 1], source[4 * ti + 2], source[4 * ti + 3],
                    dm[:, o, t:t + tw], head, k, lanes, total, lanes_total)
        bias_sums[o] += total + simd.lane_sum(lanes_total)
