"""Winograd F(2x2, 3x3)'s tile transforms, as Numba kernels: what winograd.py (the algorithm,
its blocks of tiles and the kernel interface) and winograd_weight.py run a block at a time.

    _input_tiles        V = B^T d B for every 4x4 input tile of a block, V as (16, C, B)
    _input_tiles_channels_last   the same, V as (16, B, C)
    _output_tiles       y = A^T M A + bias for every 2x2 output tile (and _one_by_one)
    _kernel_tiles       U = G g G^T for every 3x3 kernel

Each transform is the 1-D step of F(2, 3) (``bt``, ``at``) applied down a tile's columns and
then along its rows.  The tile loops take eight tiles (or eight channels) at a time as
simd.py's vectors, the same expressions on eight lanes; the tiles left over go one at a
time, with results bit-identical either way.

Notation as in winograd.py: TH, TW tiles per plane; a block is the tile rows [r0, r1) of
the batch, r = n TH + ti, B = (r1 - r0) TW tiles.
"""
import numpy as np

from . import simd
from .jit import njit


@njit(cache=True, nogil=True, inline="always")
def copy_rows(x, n, c, h0, h1, ph, pw, cols, plane):
    """plane[h + PH, PW: PW + cols] = x[n, c, h, :cols] for the rows h in [h0, h1): the part
    of a zero-bordered plane that a block's tile rows read (here and in winograd4.py)."""
    for h in range(h0, h1):
        target, source = plane[h + ph], x[n, c, h]
        for q in range(cols):
            target[pw + q] = source[q]


@njit(cache=True, nogil=True, inline="always")
def copy_rows_channels_last(x, n, top, count, pw, cols, rows):
    """rows[r, PW + q, c] = x[n, c, top + r, q] for r in [0, count), zeros in the borders and
    in rows outside x: the block's part of a zero-bordered plane, channels last (here and in
    winograd42_tiles.py)."""
    for r in range(count):
        target, h = rows[r], top + r
        if h < 0 or h >= x.shape[2]:           # padding, or past the last tile's reach
            target[:] = 0
            continue
        target[:pw] = 0
        target[pw + cols:] = 0
        for q in range(cols):
            cell = target[pw + q]
            for c in range(x.shape[1]):
                cell[c] = x[n, c, h, q]


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
    c_, w_ = x.shape[1], x.shape[3]
    wp = 2 * tw + 2
    cols = min(w_, wp - pw)
    rows = np.empty((2 * min(r1 - r0, th) + 2, wp, c_), x.dtype)
    head = c_ % simd.LANES                     # channels [head, C) go eight at a time
    for n in range(r0 // th, (r1 - 1) // th + 1):
        ti0, ti1 = max(r0 - n * th, 0), min(r1 - n * th, th)    # this example's rows
        # rows[0] holds x's row 2 TI0 - PH
        copy_rows_channels_last(x, n, 2 * ti0 - ph, 2 * (ti1 - ti0) + 2, pw, cols, rows)
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
