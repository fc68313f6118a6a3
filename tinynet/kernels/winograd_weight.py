"""Winograd F(2x2, 3x3)'s dL/dW and dL/db (winograd.py has the forward and dL/dx).

dL/dW is the adjoint of the forward y = A^T [U * V] A (winograd.py's notation): with
dM = A dY A^T the transform of each 2x2 tile dY of dL/dy,

    dU[k] = sum over the tiles of dM[k] V[k]^T        (O, C): 16 products whose inner
                                                      dimension is the tiles
    dL/dg[o, c] = G^T dU[:, o, c] G                   (the 4x4 dU back to 3x3)

V is x's input transform, made again a block of tiles at a time rather than kept from the
forward (4x x's size, to be read back from memory).  dL/db is the sum of dL/dy, taken while
dL/dy's tiles are transformed (the tiles cover dL/dy once).

Notation as in reference.py and winograd.py.
"""
import numpy as np

from . import numba_threads, simd, winograd, winograd_tiles  # blocks; transforms
from .jit import njit
from .products import multiply, multiply_transposed
from .scratch import empty

# dL/dW: the products' inner dimension is the block.  Swept on the Intel Xeon (layer time
# relative to the best of six shapes, RESULTS.md 2026-12-05): 512 tiles 1.00-1.10, 1024
# 1.00-1.07; on the AMD EPYC Zen 5 (2026-12-06, alternated in one process, eight shapes)
# 512 ran 0.98x-1.21x the speed of 1024, median 1.06x; rechecked there with 256-bit
# vectors (that sweep ran with 512-bit ones, RESULTS.md): 256 and 1024 ran 0.94x-1.01x
# 512's speed on the whole layer step, seven shapes.
TILES_PER_WEIGHT_BLOCK = 512
CHANNELS_LAST_C = 32            # dL/dW with V as (16, B, C) at this C (channels_last)
CHANNELS_LAST_KERNELS = numba_threads.OPENBLAS_AVX512_KERNELS
TILES_PER_CHANNELS_LAST_BLOCK = 256     # ... and blocks of this many tiles


@njit(cache=True, nogil=True, inline="always")
def a_row(f0, f1):
    """A f for two numbers along a tile row: A's rows (1, 0), (1, 1), (1, -1), (0, -1)."""
    return f0, f0 + f1, f0 - f1, -f1


@njit(cache=True, nogil=True)
def _output_grad_tiles(gy, th, tw, r0, r1, dm, bias_sums):
    """dm[k, o, (r - r0) TW + tj] = (A dY A^T)[k] for the tile rows r = n TH + ti in
    [r0, r1), dY = gy[n, o, 2 ti: 2 ti + 2, 2 tj: 2 tj + 2] (zeros past OH, OW): the adjoint
    of winograd_tiles._output_tiles.  On the way, bias_sums[o] += the sum of those dY
    (float64): dL/db, since the tiles cover dL/dy once.

    Eight tiles at a time as simd vectors (the tile's four numbers are the even and odd
    elements of two rows), the TW % 8 others first, one at a time; the float64 sum is kept
    per lane and the lanes added at the end of each channel."""
    oh, ow = gy.shape[2], gy.shape[3]
    odd = oh < 2 * th or ow < 2 * tw
    plane = np.zeros((2 * th, 2 * tw), gy.dtype)       # odd sizes: dY zero past OH, OW
    head = tw % simd.LANES
    for o in range(gy.shape[1]):
        total = 0.0
        lanes_total = simd.float64_zeros()
        for n in range(r0 // th, (r1 - 1) // th + 1):
            ti0, ti1 = max(r0 - n * th, 0), min(r1 - n * th, th)    # this example's rows
            source = gy[n, o]
            if odd:                            # its rows into the plane's, zeros past OW
                winograd_tiles.copy_rows(gy, n, o, 2 * ti0, min(2 * ti1, oh), 0, 0, ow, plane)
                source = plane
            for ti in range(ti0, ti1):
                e0, e1 = source[2 * ti], source[2 * ti + 1]
                t = (n * th + ti - r0) * tw
                out = dm[:, o, t:t + tw]             # (16, TW)
                for tj in range(head):
                    e00, e01, e10, e11 = e0[2 * tj], e0[2 * tj + 1], e1[2 * tj], e1[2 * tj + 1]
                    total += (np.float64(e00) + np.float64(e01)) + (np.float64(e10)
                                                                    + np.float64(e11))
                    # A dY: A's rows down the columns; then (A dY) A^T along each row
                    for k, f0, f1 in ((0, e00, e01), (4, e00 + e10, e01 + e11),
                                      (8, e00 - e10, e01 - e11), (12, -e10, -e11)):
                        out[k, tj], out[k + 1, tj], out[k + 2, tj], out[k + 3, tj] = a_row(
                            f0, f1)
                for tj in range(head, tw, simd.LANES):
                    e00, e01 = simd.load_even_odd(e0, 2 * tj)
                    e10, e11 = simd.load_even_odd(e1, 2 * tj)
                    lanes_total = lanes_total + ((simd.widen(e00) + simd.widen(e01))
                                                 + (simd.widen(e10) + simd.widen(e11)))
                    for k, f0, f1 in ((0, e00, e01), (4, e00 + e10, e01 + e11),
                                      (8, e00 - e10, e01 - e11), (12, -e10, -e11)):
                        h0, h1, h2, h3 = a_row(f0, f1)
                        simd.store(out[k], tj, h0)
                        simd.store(out[k + 1], tj, h1)
                        simd.store(out[k + 2], tj, h2)
                        simd.store(out[k + 3], tj, h3)
        bias_sums[o] += total + simd.lane_sum(lanes_total)


@njit(cache=True, nogil=True)
def _kernel_grad_tiles(du, grad_w, o0, o1):
    """grad_w[o, c] = G^T dU G, dU[a, b] = du[4 a + b, o, c] (float64 inside), for the
    output channels o in [o0, o1): the adjoint of _kernel_tiles."""
    c_ = grad_w.shape[1]
    half = np.empty((3, 4))
    for o in range(o0, o1):               # o outer: du[k, o, :] and grad_w[o] in order
        for c in range(c_):
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

# The layout at C = 32.  With V stored (16, B, C), OpenBLAS runs dL/dW's narrow products
# 1.5x-2x faster (64 x 32: 139 against 75 GFLOP/s), but the transform that writes that
# layout was no faster than the scalar _input_tiles then (1.3x-1.5x slower on 224x224
# planes).  The two together won only at C = 32: dL/dW 1.12x-1.30x, the reference CNN's step
# 1.03x; C = 16 and 24 lost (0.87x-1.05x), C = 40 and 64 came out even (0.91x-1.09x), C >=
# 128 lost (0.84x-0.90x) (2-core Intel Xeon, 2026-12-06, alternated in one process).  On the
# AMD Zen 4: C = 32 1.07x-1.59x, C = 16 0.84x, C = 48 and 64 0.96x-1.22x, C = 128
# 1.05x-1.36x; only C = 32 wins on both CPUs.  On the AMD Zen 5 with OpenBLAS held to its
# AVX2 (Haswell) kernels, C = 32 lost (the planes layout 1.07x-1.14x faster on three layers;
# 0.89x-0.97x for channels last on five, rechecked with 256-bit vectors), and with its
# AVX-512 kernels it was mixed: the gain is OpenBLAS's.  With both transforms on simd
# vectors (sixth session, Zen 5, C = 32, three layers): the planes layout 1.05x-1.19x faster
# with the Haswell kernels; with the AVX-512 ones channels last 1.16x and 1.32x faster on
# two layers, 0.83x on the third (O = 32).  Hence C = 32 only with an AVX-512 kernel set
# (the Xeon's was SkylakeX; on the Zen 4, which kernels OpenBLAS ran was not recorded).


def channels_last(c, tw):
    """Whether dL/dW stores V as (16, B, C) for C input channels and rows of TW tiles: where
    a row is shorter than eight tiles (with at least eight channels), so that the transform
    takes eight channels a vector rather than going one tile at a time (dL/dW 1.02x-1.23x
    faster on 8x8 and 14x14 planes with OpenBLAS's Haswell kernels, 1.02x-1.32x with its
    SkylakeX ones, AMD Zen 5, 2026-12-06); and at C = 32 where NumPy's OpenBLAS runs one of
    its AVX-512 kernel sets (the measurements above)."""
    if tw < simd.LANES and c >= simd.LANES:
        return True
    return c == CHANNELS_LAST_C and numba_threads.openblas_kernels() in CHANNELS_LAST_KERNELS


def _weight_grad_blocks(grad_y, x, ph, pw, th, tw, partial_sums, blocks, indices):
    """dU and dL/db summed over the blocks ``indices``, appended to ``partial_sums``."""
    o, c = grad_y.shape[1], x.shape[1]
    du = np.zeros((16, o, c), grad_y.dtype)
    bias_sums = np.zeros(o)
    for i in indices:
        r0, r1 = blocks[i]
        size = (r1 - r0) * tw
        dm = winograd._slabs(o, size, x.dtype, "winograd_m")    # (16, O, B)
        _output_grad_tiles(grad_y, th, tw, r0, r1, dm, bias_sums)
        # dU[k]^T = dM[k] V[k]^T, (O, C): the same product as V[k] dM[k]^T, but this
        # orientation ran 1.04x-1.3x faster on the 2-core Intel Xeon with O >= C, the layers
        # of every model here (one thread, blocks of 1024 tiles; with C > O the other one won
        # by about as much, RESULTS.md, 2026-12-05).
        if channels_last(c, tw):
            v = winograd._slabs(size, c, x.dtype, "winograd_v")    # (16, B, C)
            winograd_tiles._input_tiles_channels_last(x, ph, pw, th, tw, r0, r1, v)
            multiply(dm, v, du, accumulate=True)
        else:
            v = winograd._slabs(c, size, x.dtype, "winograd_v")    # (16, C, B)
            winograd_tiles._input_tiles(x, ph, pw, th, tw, r0, r1, v)
            multiply_transposed(dm, v, du, accumulate=True)
    partial_sums.append((du, bias_sums))


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups,
                           saved=None):
    """dL/dg = G^T dU G with dU[k] = V[k] dM[k]^T summed over tiles (the forward's adjoint;
    products with a long inner dimension, the tiles), a block of tiles at a time: V from x,
    dM from dL/dy.  ``saved`` (the forward's U) is not needed here."""
    return weight_and_bias_grad(grad_y, x, weight_shape, padding)[0]


def weight_and_bias_grad(grad_y, x, weight_shape, padding):
    """(dL/dW, dL/db): dL/db summed from dL/dy's tiles as they are transformed, no pass of
    its own."""
    grad_y = np.ascontiguousarray(grad_y)
    x = np.ascontiguousarray(x, dtype=grad_y.dtype)
    n = x.shape[0]
    _, _, th, tw = winograd._tiles(x.shape, padding)
    per_block = (TILES_PER_CHANNELS_LAST_BLOCK if channels_last(x.shape[1], tw)
                 else TILES_PER_WEIGHT_BLOCK)
    blocks = winograd._blocks(n, th, tw, per_block)
    partial_sums = []                        # one ((16, O, C), (O,)) per thread
    winograd._run_blocks(_weight_grad_blocks, blocks, grad_y, x, padding[0], padding[1], th,
                         tw, partial_sums)
    grad_w = empty(weight_shape, grad_y.dtype)
    (du, bias_sums), rest = partial_sums[0], partial_sums[1:]
    numba_threads.run(_kernel_grad_tiles, weight_shape[0], grad_w.size,
                      sum((more for more, _ in rest), du), grad_w)    # split over the threads
    grad_b = sum((more for _, more in rest), bias_sums).astype(grad_y.dtype)
    return grad_w, grad_b
