"""Depthwise 3x3 convolution (MobileNet's layers) as direct Numba loops, forward and backward.

Depthwise: groups = C = O, one 3x3 kernel per channel, any stride and padding, dilation 1:

    y[n, c, i, j] = sum_{u, v} x_pad[n, c, i SH + u, j SW + v] w[c, 0, u, v]

Nine multiply-adds per output and nothing to share between channels, so there is no GEMM to
hand to BLAS: the loops themselves must be fast.  Two layouts, chosen by plane size:

* planes (16x16 and larger): each task copies its (n, c) plane once into a zero-padded
  buffer that stays in cache, and every output is one expression of nine taps with the
  kernel in registers.  The row loop vectorizes only when the column step is a constant:
  stride 1 has its own kernel, and stride 2 too (its taps are read as interleaved pairs;
  with padding 1 on even planes straight from x, no padded copy: only output row 0 and
  column 0 reach the padding); the general loop (_forward) serves other strides and dL/dx
  at stride > 1.
* channels last (8x8 and smaller, MobileNet's late layers: 4x4 x 256 channels; the forward
  and dL/dw at stride 1 take 8x8 planes in the planes layout, see CHANNELS_LAST_MAX_PIXELS):
  each example transposed to (H, W, C), every output position computing all C channels in
  one vectorized loop.  Those kernels are in numba_depthwise_cl.py; this module chooses.

    dL/dx: the forward loop on dL/dy (padding 2 - P) with the kernel flipped, at stride
           S > 1 on dL/dy with S - 1 zeros between its elements (planes layout);
           channels last at stride > 1 (and any P > 2): every output scatters
           w * dL/dy[i, j] back into its window of a padded buffer, whose interior is
           dL/dx
    dL/dw: nine sums per plane in one flat loop, dL/dy spread onto the padded plane's
           grid (planes layout); each example's nine sums per channel (channels last)

Notation as in reference.py.
"""
import numpy as np

from ..geometry import conv_output_size
from . import numba_depthwise_cl as cl
from .jit import njit
from .numba_threads import run
from .scratch import empty


def applies(x_shape, weight_shape, stride, padding, dilation, groups):
    """Depthwise with one output per channel, 3x3 kernel, dilation 1."""
    c = x_shape[1]
    return (groups == c and tuple(weight_shape) == (c, 1, 3, 3)
            and tuple(dilation) == (1, 1))


# No array views inside the loops (x[n, c], pad[r]): each one costs a reference-count
# update, which dominated on the 8x8 and 4x4 planes of MobileNet's last layers.

@njit(cache=True, nogil=True, inline="always")     # inlined: see _pad_plane_literal
def _pad_plane(x, n, c, ph, pw, pad):
    """pad[r, q] = x[n, c, r - PH, q - PW] where that is inside x.  The border (everything
    else) is never written: the caller allocates pad with np.zeros once per call, and every
    plane of that call lands on the same cells, so the zeros stay.  Against zeroing the
    border for every plane: the stride-1 forward 1.3-1.4x faster on 8x8 and 16x16 planes,
    1.0-1.1x on larger ones, dL/dw 1.05-1.15x (Intel Xeon, alternated, 2026-12-05)."""
    rows = min(x.shape[2], pad.shape[0] - ph)      # rows of x that land inside pad
    cols = min(x.shape[3], pad.shape[1] - pw)
    for r in range(rows):
        for q in range(cols):
            pad[ph + r, pw + q] = x[n, c, r, q]


@njit(cache=True, nogil=True)          # not inlined itself: compiled once for all kernels
def _pad_plane_literal(x, n, c, ph, pw, pad):
    """_pad_plane, with the usual padding 1 passed as literals: the inlined copy loops then
    have known bounds (part of _forward_stride1's 1.2-1.6x)."""
    if ph == 1 and pw == 1:
        _pad_plane(x, n, c, 1, 1, pad)
    else:
        _pad_plane(x, n, c, ph, pw, pad)


@njit(cache=True, nogil=True, inline="always")
def _kernel_taps(w, c):
    """The nine weights of channel c as a tuple, k[3 u + v] = w[c, 0, u, v] (in registers)."""
    return (w[c, 0, 0, 0], w[c, 0, 0, 1], w[c, 0, 0, 2], w[c, 0, 1, 0], w[c, 0, 1, 1],
            w[c, 0, 1, 2], w[c, 0, 2, 0], w[c, 0, 2, 1], w[c, 0, 2, 2])


@njit(cache=True, nogil=True)
def _spread_plane(x, n, c, eh, ew, ph, pw, pad):
    """pad[PH + r EH, PW + q EW] = x[n, c, r, q] (x's elements spread EH, EW apart: dL/dy
    of a stride-(EH, EW) convolution, seen by the dL/dx correlation).  The cells between
    are never written: as for _pad_plane, pad comes zeroed once per call."""
    hp, wp = pad.shape
    for r in range(min(x.shape[2], (hp - 1 - ph) // eh + 1)):
        for q in range(min(x.shape[3], (wp - 1 - pw) // ew + 1)):
            pad[ph + r * eh, pw + q * ew] = x[n, c, r, q]


@njit(cache=True, nogil=True, inline="always")
def _nine_taps(pad, r, q, k):
    """sum_{u, v} pad[r + u, q + v] k[3 u + v]: one output of the window at (r, q)."""
    return (k[0] * pad[r, q] + k[1] * pad[r, q + 1] + k[2] * pad[r, q + 2]
            + k[3] * pad[r + 1, q] + k[4] * pad[r + 1, q + 1] + k[5] * pad[r + 1, q + 2]
            + k[6] * pad[r + 2, q] + k[7] * pad[r + 2, q + 1] + k[8] * pad[r + 2, q + 2])


# The column step: `j * sw` with sw a run-time value gives loads of unknown stride and a
# negative-index test per load, and nothing vectorizes (2-3x slower at stride 1).  Called
# with a literal 1 or 2, these inlined row loops compile to their own vectorized copies.

@njit(cache=True, nogil=True, inline="always")
def _forward_row(pad, r, k, step, y, n, c, i):
    for j in range(y.shape[3]):
        y[n, c, i, j] = _nine_taps(pad, r, j * step, k)


@njit(cache=True, nogil=True)
def _forward(x, w, sh, sw, ph, pw, eh, ew, y, t0, t1):
    """EH, EW: 1 in the forward; dL/dx of a stride-(EH, EW) convolution is this loop on
    dL/dy spread EH, EW apart (see conv2d_backward_input)."""
    c_ = x.shape[1]
    oh, ow = y.shape[2], y.shape[3]
    pad = np.zeros(((oh - 1) * sh + 3, (ow - 1) * sw + 3), dtype=x.dtype)   # border: 0
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        if eh == 1 and ew == 1:
            _pad_plane_literal(x, n, c, ph, pw, pad)
        else:
            _spread_plane(x, n, c, eh, ew, ph, pw, pad)
        k = _kernel_taps(w, c)
        for i in range(oh):
            if sw == 1:
                _forward_row(pad, i * sh, k, 1, y, n, c, i)
            elif sw == 2:
                _forward_row(pad, i * sh, k, 2, y, n, c, i)
            else:
                _forward_row(pad, i * sh, k, sw, y, n, c, i)


@njit(cache=True, nogil=True, inline="always")
def _forward_planes(x, w, ph, pw, y, t0, t1, step, spread, pad):
    """The loop of _forward_stride1, _forward_stride2 and _forward_spread2: each is this,
    inlined with its literal step and spread (1 or 2), so that the row loop compiles with a
    constant column step."""
    c_ = x.shape[1]
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        if spread == 1:
            _pad_plane_literal(x, n, c, ph, pw, pad)
        else:
            _spread_plane(x, n, c, spread, spread, ph, pw, pad)
        k = _kernel_taps(w, c)
        for i in range(y.shape[2]):
            for j in range(y.shape[3]):
                y[n, c, i, j] = _nine_taps(pad, step * i, step * j, k)


@njit(cache=True, nogil=True)
def _forward_stride1(x, w, ph, pw, y, t0, t1):
    """_forward at stride 1 (no spread), the common case, with its own loops: the row index
    i itself (no i * SH) and the plane fill of _pad_plane_literal (padding 1 as literals:
    copy loops of known bounds).  1.2-1.6x faster than
    the general loop on MobileNet's planes (14x14 to 112x112; alternated, one thread)."""
    pad = np.zeros((y.shape[2] + 2, y.shape[3] + 2), dtype=x.dtype)        # border: 0
    _forward_planes(x, w, ph, pw, y, t0, t1, 1, 1, pad)


@njit(cache=True, nogil=True, fastmath={"contract"})     # a * b + c as one FMA
def _forward_stride2(x, w, ph, pw, y, t0, t1):
    """_forward at stride 2 (no spread), with the step a literal 2 in both directions, so
    that LLVM sees the taps 2j, 2j + 1, 2j + 2 as one interleaved group and vectorizes the
    row loop with shuffles.  The padded rows get an even length (one spare zero column):
    with the odd length 2 OW + 1 the same loop ran 1.1-2.2x slower.  Measured against
    copying each row split into even and odd columns (the kernel before): 1.2-2.2x faster
    on 32x32 to 112x112 planes, even on 16x16; the literal padding 1.4-2.1x more
    (alternated, one thread, 2026-11-28)."""
    pad = np.zeros((2 * y.shape[2] + 1, 2 * y.shape[3] + 2), dtype=x.dtype)   # border: 0
    _forward_planes(x, w, ph, pw, y, t0, t1, 2, 1, pad)


@njit(cache=True, nogil=True, fastmath={"contract"})
def _forward_stride2_in_place(x, w, y, t0, t1):
    """_forward_stride2 for padding 1 on planes of even height and width, reading x where
    it lies: no padded copy of the plane (the copy was 30-45% of _forward_stride2's time).
    Only the windows of output row 0 and column 0 reach the zero padding (above and left
    of x; with even sizes none reaches below or right), so those outputs take their four
    or six taps inside x, every other output all nine.  The loops count from 0 (ii, jj:
    output ii + 1, jj + 1 reads x from row 2 ii + 1, column 2 jj + 1), so no index can be
    negative and the row loop vectorizes.  1.25-1.55x _forward_stride2 on 14x14 to 112x112
    planes (Intel Xeon, alternated, 2026-12-05)."""
    c_ = x.shape[1]
    oh, ow = y.shape[2], y.shape[3]
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        k = _kernel_taps(w, c)
        # output row 0: its windows' top row is padding (taps u = 1, 2 on x's rows 0, 1)
        y[n, c, 0, 0] = (k[4] * x[n, c, 0, 0] + k[5] * x[n, c, 0, 1]
                         + k[7] * x[n, c, 1, 0] + k[8] * x[n, c, 1, 1])
        for jj in range(ow - 1):
            q = 2 * jj + 1
            y[n, c, 0, jj + 1] = (
                k[3] * x[n, c, 0, q] + k[4] * x[n, c, 0, q + 1] + k[5] * x[n, c, 0, q + 2]
                + k[6] * x[n, c, 1, q] + k[7] * x[n, c, 1, q + 1] + k[8] * x[n, c, 1, q + 2])
        for ii in range(oh - 1):
            r = 2 * ii + 1
            # output column 0: its windows' left column is padding (taps v = 1, 2)
            y[n, c, ii + 1, 0] = (
                k[1] * x[n, c, r, 0] + k[2] * x[n, c, r, 1]
                + k[4] * x[n, c, r + 1, 0] + k[5] * x[n, c, r + 1, 1]
                + k[7] * x[n, c, r + 2, 0] + k[8] * x[n, c, r + 2, 1])
            for jj in range(ow - 1):
                q = 2 * jj + 1
                y[n, c, ii + 1, jj + 1] = (
                    k[0] * x[n, c, r, q] + k[1] * x[n, c, r, q + 1]
                    + k[2] * x[n, c, r, q + 2] + k[3] * x[n, c, r + 1, q]
                    + k[4] * x[n, c, r + 1, q + 1] + k[5] * x[n, c, r + 1, q + 2]
                    + k[6] * x[n, c, r + 2, q] + k[7] * x[n, c, r + 2, q + 1]
                    + k[8] * x[n, c, r + 2, q + 2])


@njit(cache=True, nogil=True)
def _forward_spread2(x, w, ph, pw, y, t0, t1):
    """_forward at stride 1 on x spread 2 apart: dL/dx of a stride-2 layer (see
    conv2d_backward_input), with _forward_stride1's loop."""
    pad = np.zeros((y.shape[2] + 2, y.shape[3] + 2), dtype=x.dtype)        # zeros stay
    _forward_planes(x, w, ph, pw, y, t0, t1, 1, 2, pad)


@njit(cache=True, nogil=True)
def _backward_input(gy, w, sh, sw, ph, pw, gx, t0, t1):
    c_, h_, w_ = gx.shape[1], gx.shape[2], gx.shape[3]
    oh, ow = gy.shape[2], gy.shape[3]
    hp = max((oh - 1) * sh + 3, h_ + ph)
    wp = max((ow - 1) * sw + 3, w_ + pw)
    pad = np.empty((hp, wp), dtype=gx.dtype)
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        for r in range(hp):
            for q in range(wp):
                pad[r, q] = 0
        for i in range(oh):
            for u in range(3):
                r = i * sh + u
                ku0, ku1, ku2 = w[c, 0, u, 0], w[c, 0, u, 1], w[c, 0, u, 2]
                for j in range(ow):
                    q = j * sw
                    gij = gy[n, c, i, j]
                    pad[r, q] += ku0 * gij
                    pad[r, q + 1] += ku1 * gij
                    pad[r, q + 2] += ku2 * gij
        for r in range(h_):
            for q in range(w_):
                gx[n, c, r, q] = pad[r + ph, q + pw]


@njit(cache=True, nogil=True, inline="always")
def _spread_gradient(gy, n, c, sh, sw, grid):
    """grid[i SH, j SW] = dL/dy[n, c, i, j]; the cells between are never written (zeroed
    once by the caller, as for _pad_plane)."""
    for i in range(gy.shape[2]):
        for j in range(gy.shape[3]):
            grid[i * sh, j * sw] = gy[n, c, i, j]


@njit(cache=True, nogil=True, inline="always")
def _add_nine(sums, s0, s1, s2, s3, s4, s5, s6, s7, s8):
    """sums[k] += s_k: a plane's nine dL/dw sums into the float64 totals (both loops below)."""
    sums[0] += s0
    sums[1] += s1
    sums[2] += s2
    sums[3] += s3
    sums[4] += s4
    sums[5] += s5
    sums[6] += s6
    sums[7] += s7
    sums[8] += s8


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})   # 9 sums in SIMD lanes
def _backward_weight(gy, x, sh, sw, ph, pw, gw, t0, t1):
    """dL/dw[c, 0, u, v] = sum_{n, i, j} dL/dy[n, c, i, j] x_pad[n, c, i SH + u, j SW + v].

    Written as one long loop per plane.  dL/dy is spread onto a grid the size of the padded
    plane (dL/dy[i, j] at row i SH, column j SW, zeros elsewhere), and both are read as flat
    rows: grid[p] pairs with pad[p + u W' + v] (W': the padded width) for every p at once,
    the positions between rows and between strided outputs included (their grid cells are
    0).  Summed per row of dL/dy, as before, rows of 8 to 16 outputs filled one or two SIMD
    registers, and each row ended in nine horizontal sums; the flat loop sums a whole plane
    into nine vector registers first.  At stride S it does S^2 times the multiply-adds (the
    zeros), and still, against the row sums: 1.24x-1.99x faster at stride 1 on 16x16 to
    64x64 planes, 1.16x-1.21x at stride 2, even on one 112x112 plane (AMD EPYC Zen 4,
    alternated in one process, 2026-12-06).  The sums of a plane run in x's dtype, each
    plane's then added to float64 totals."""
    n_ = x.shape[0]
    oh, ow = gy.shape[2], gy.shape[3]
    rows, width = (oh - 1) * sh + 3, (ow - 1) * sw + 3
    pad = np.zeros((rows, width), dtype=x.dtype)           # borders: 0 (see _pad_plane)
    grid = np.zeros((rows, width), dtype=x.dtype)          # between dL/dy's cells: 0
    row0 = pad.reshape(rows * width)                       # pad[p + u W'] = row_u[p]
    row1, row2 = row0[width:], row0[2 * width:]
    flat_grid = grid.reshape(rows * width)
    length = (oh - 1) * sh * width + (ow - 1) * sw + 1      # through the last output
    sums = np.empty(9, dtype=np.float64)
    for c in range(t0, t1):
        sums[:] = 0
        for n in range(n_):
            _pad_plane_literal(x, n, c, ph, pw, pad)        # 1.2-1.9x over runtime padding
            if sh == 1 and sw == 1:                        # literal steps: see _forward_row
                _spread_gradient(gy, n, c, 1, 1, grid)
            elif sh == 2 and sw == 2:
                _spread_gradient(gy, n, c, 2, 2, grid)
            else:
                _spread_gradient(gy, n, c, sh, sw, grid)
            # float32 zeros: the sums then run in dL/dy's dtype (Numba widens them to
            # float64 for float64 arrays).  Zeros of 0.0 made every float32 product a
            # float64 addition (half the SIMD lanes): 1.6-1.9x slower (Intel Xeon, 2026-12-05).
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = np.float32(0)
            for p in range(length):
                g = flat_grid[p]
                s0 += g * row0[p]
                s1 += g * row0[p + 1]
                s2 += g * row0[p + 2]
                s3 += g * row1[p]
                s4 += g * row1[p + 1]
                s5 += g * row1[p + 2]
                s6 += g * row2[p]
                s7 += g * row2[p + 1]
                s8 += g * row2[p + 2]
            _add_nine(sums, s0, s1, s2, s3, s4, s5, s6, s7, s8)
        for k in range(9):
            gw[c, 0, k // 3, k % 3] = sums[k]


@njit(cache=True, nogil=True)
def _phase_planes(x, n, c, ph, pw, phases):
    """phases[a, b, i, j] = x_pad[n, c, 2 i + a, 2 j + b] (x_pad: x with PH, PW zeros before
    it): the padded plane split by row and column parity.  Each row of x is dealt out in
    one loop, its even columns to one phase plane and its odd ones to the other (two
    contiguous runs written, x read in order: LLVM vectorises it).  Cells that fall in the
    padding are never written (zeroed once by the caller, as for _pad_plane)."""
    h_, w_ = x.shape[2], x.shape[3]
    rows, cols = phases.shape[2], phases.shape[3]
    even_b, even_off = pw % 2, pw // 2          # x's column 2 k lands at (b, j) = (., k + off)
    odd_b, odd_off = (pw + 1) % 2, (pw + 1) // 2
    pairs = min(w_ // 2, cols - even_off, cols - odd_off)
    for r in range(min(h_, 2 * rows - ph)):
        a, i = (r + ph) % 2, (r + ph) // 2
        source = x[n, c, r]
        to_even = phases[a, even_b, i, even_off:]
        to_odd = phases[a, odd_b, i, odd_off:]
        for k in range(pairs):
            to_even[k] = source[2 * k]
            to_odd[k] = source[2 * k + 1]
        for q in range(2 * pairs, w_):          # an odd width's last column, and the rest
            j = (q + pw) // 2
            if j < cols:
                phases[a, (q + pw) % 2, i, j] = source[q]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})   # 9 sums in SIMD lanes
def _backward_weight_stride2(gy, x, ph, pw, gw, t0, t1):
    """_backward_weight at stride 2, without its zeros.  The padded plane is split by row
    and column parity into four phase planes P[a, b][i, j] = x_pad[2 i + a, 2 j + b], each
    (OH + 1) x (OW + 1); x_pad[2 i + u, 2 j + v] is then P[u % 2, v % 2][i + u // 2, j +
    v // 2].  dL/dy is read as rows of OW + 1 (a zero at the end), so that with p = i (OW +
    1) + j each of the nine sums is one flat loop over dL/dy's cells, reading P at p, p + 1,
    p + OW + 1 or p + OW + 2, as _backward_weight reads its padded plane.  A quarter of its
    multiply-adds; measured in RESULTS.md (2026-12-06, fifth session)."""
    n_ = x.shape[0]
    oh, ow = gy.shape[2], gy.shape[3]
    width = ow + 1                                          # dL/dy's rows, a 0 at the end
    phases = np.zeros((2, 2, oh + 1, width), dtype=x.dtype)  # borders: 0 (see _pad_plane)
    ee, eo = phases[0, 0].reshape(-1), phases[0, 1].reshape(-1)
    oe, oo = phases[1, 0].reshape(-1), phases[1, 1].reshape(-1)
    ee_below, eo_below = ee[width:], eo[width:]             # x_pad's row 2 i + 2
    grid = np.zeros((oh, width), dtype=x.dtype)             # its last column stays 0
    flat_grid = grid.reshape(-1)
    length = (oh - 1) * width + ow
    sums = np.empty(9, dtype=np.float64)
    for c in range(t0, t1):
        sums[:] = 0
        for n in range(n_):
            _phase_planes(x, n, c, ph, pw, phases)
            for i in range(oh):
                source, target = gy[n, c, i], grid[i]
                for j in range(ow):
                    target[j] = source[j]
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = np.float32(0)   # as _backward_weight
            for p in range(length):
                g = flat_grid[p]
                s0 += g * ee[p]                 # u, v = 0, 0
                s1 += g * eo[p]                 # 0, 1
                s2 += g * ee[p + 1]             # 0, 2
                s3 += g * oe[p]                 # 1, 0
                s4 += g * oo[p]                 # 1, 1
                s5 += g * oe[p + 1]             # 1, 2
                s6 += g * ee_below[p]           # 2, 0
                s7 += g * eo_below[p]           # 2, 1
                s8 += g * ee_below[p + 1]       # 2, 2
            _add_nine(sums, s0, s1, s2, s3, s4, s5, s6, s7, s8)
        for k in range(9):
            gw[c, 0, k // 3, k % 3] = sums[k]


# Planes of at most this many pixels (H W of x) use the channels-last kernels: measured on
# MobileNet's shapes (benchmarks/bench_depthwise.py), 8x8 and 4x4 ran 1.1-4x faster that
# way, 16x16 and larger slower (the two transposes cost more than the short rows).  The
# forward loop got faster planes kernels later (_forward_stride1; _forward_stride2_in_place
# for padding 1 on even planes), and on 8x8 planes those now win: at stride 1 (the forward,
# and dL/dx at stride 1) 1.3x (32x128x8x8) and 2.2x (1x512x8x8) over channels last,
# forward+backward 1.17x and 1.5x; at stride 2 1.03x and 1.27x.  On 4x4 planes channels
# last still wins at stride 2 (1.5x) and ties at stride 1 (Intel Xeon, alternated in one
# process, 2026-12-05).  dL/dw's flat planes loop (_backward_weight) wins on 8x8 at stride
# 1 too: 1.4x on 32x128x8x8, 1.1x on 1x512x8x8; at stride 2 the two come out even
# (channels last kept), and on 4x4 planes channels last is 1.4x-1.8x faster (AMD EPYC
# Zen 4, alternated, 2026-12-06).  The stride-2 phase-planes loop (_backward_weight_stride2)
# did not change that: channels last 1.3x-1.9x faster on 8x8 and 4x4 planes at stride 2,
# the planes loop 1.36x faster on 16x16 (AMD EPYC Zen 5, 2026-12-06).
CHANNELS_LAST_MAX_PIXELS = 64
CHANNELS_LAST_MAX_PIXELS_FAST_PLANES = 16


def _channels_last(x_shape, fast_planes_kernel=False):
    """The layout for x's planes; ``fast_planes_kernel``: the planes kernel that would run
    otherwise is _forward_stride1 or _forward_stride2_in_place, which win on 8x8 too."""
    limit = (CHANNELS_LAST_MAX_PIXELS_FAST_PLANES if fast_planes_kernel
             else CHANNELS_LAST_MAX_PIXELS)
    return x_shape[2] * x_shape[3] <= limit


# ---- the kernel interface (depthwise 3x3 only: see applies) ---------------------------------

def conv2d_forward(x, weight, stride, padding, dilation, groups, save=False):
    """(y, None): a direct kernel keeps nothing for the weight gradient, which reads x."""
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight, dtype=x.dtype)
    n, c, h, w = x.shape
    oh = conv_output_size(h, 3, stride[0], padding[0])
    ow = conv_output_size(w, 3, stride[1], padding[1])
    y = empty((n, c, oh, ow), x.dtype)
    _forward_into(x, weight, stride, padding, y)
    return y, None


def _forward_into(x, weight, stride, padding, y, spread=(1, 1)):
    """y = the depthwise correlation of x (its elements ``spread`` apart: planes layout
    only) and weight; y's shape sets how far the zero padding reaches on the bottom and
    right."""
    geometry = (stride[0], stride[1], padding[0], padding[1])
    in_place = _in_place_stride2(x.shape, stride, padding, y.shape)
    if tuple(spread) == (1, 1) and _channels_last(x.shape, tuple(stride) == (1, 1) or in_place):
        run(cl.forward, x.shape[0], 9 * y.size, x, cl.weight_channels_last(weight), *geometry,
            y)
    elif in_place and tuple(spread) == (1, 1):
        run(_forward_stride2_in_place, x.shape[0] * x.shape[1], 9 * y.size, x, weight, y)
    elif tuple(stride) in ((1, 1), (2, 2)) and tuple(spread) == (1, 1):
        kernel = _forward_stride1 if tuple(stride) == (1, 1) else _forward_stride2
        run(kernel, x.shape[0] * x.shape[1], 9 * y.size, x, weight, padding[0], padding[1], y)
    elif tuple(stride) == (1, 1) and tuple(spread) == (2, 2):
        run(_forward_spread2, x.shape[0] * x.shape[1], 9 * y.size, x, weight, padding[0],
            padding[1], y)
    else:
        run(_forward, x.shape[0] * x.shape[1], 9 * y.size, x, weight, *geometry, *spread, y)


def _in_place_stride2(x_shape, stride, padding, y_shape):
    """_forward_stride2_in_place applies: stride 2, padding 1, even H and W, y of H/2 x W/2
    (the usual stride-2 layer of a PyTorch MobileNet)."""
    return (tuple(stride) == (2, 2) and tuple(padding) == (1, 1)
            and x_shape[2] % 2 == 0 and x_shape[3] % 2 == 0
            and tuple(y_shape[2:]) == (x_shape[2] // 2, x_shape[3] // 2))


def conv2d_backward_input(grad_y, weight, x_shape, stride, padding, dilation, groups):
    grad_y = np.ascontiguousarray(grad_y)
    weight = np.ascontiguousarray(weight, dtype=grad_y.dtype)
    grad_x = empty(x_shape, grad_y.dtype)
    stride_1 = tuple(stride) == (1, 1)
    if max(padding) <= 2 and (stride_1 or not _channels_last(x_shape)):
        # dL/dx = the stride-1 correlation of dL/dy, padded by 2 - P (and on the bottom and
        # right as far as x reaches), with the flipped kernel: a gather like the forward,
        # which vectorizes (the scatter below does not).  At stride S, dL/dy's elements
        # are spread S apart, zeros between them (where no window started): 4x the work
        # at stride 2, still 2-5x faster than the plane scatter (on 8x8 and smaller
        # planes the channels-last scatter is faster).
        flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1])
        _forward_into(grad_y, flipped, (1, 1), (2 - padding[0], 2 - padding[1]), grad_x,
                      spread=stride)
        return grad_x
    geometry = (stride[0], stride[1], padding[0], padding[1])
    if _channels_last(x_shape):
        run(cl.backward_input, x_shape[0], 9 * grad_y.size, grad_y,
            cl.weight_channels_last(weight), *geometry, grad_x)
    else:
        run(_backward_input, x_shape[0] * x_shape[1], 9 * grad_y.size, grad_y, weight,
            *geometry, grad_x)
    return grad_x


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups,
                           saved=None):
    grad_y = np.ascontiguousarray(grad_y)
    x = np.ascontiguousarray(x, dtype=grad_y.dtype)
    geometry = (stride[0], stride[1], padding[0], padding[1])
    if _channels_last(x.shape, fast_planes_kernel=tuple(stride) == (1, 1)):
        per_example = np.empty((x.shape[0], 3, 3, weight_shape[0]), dtype=grad_y.dtype)
        run(cl.backward_weight, x.shape[0], 9 * grad_y.size, grad_y, x, *geometry,
            per_example)
        grad_w_last = per_example.sum(axis=0, dtype=np.float64)      # the examples' sum
        return grad_w_last.reshape(9, -1).T.reshape(weight_shape).astype(grad_y.dtype)
    grad_w = empty(weight_shape, grad_y.dtype)
    if tuple(stride) == (2, 2):
        run(_backward_weight_stride2, weight_shape[0], 9 * grad_y.size, grad_y, x,
            padding[0], padding[1], grad_w)
    else:
        run(_backward_weight, weight_shape[0], 9 * grad_y.size, grad_y, x, *geometry, grad_w)
    return grad_w
