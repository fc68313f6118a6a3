"""The products of a Winograd convolution as Numba kernels: out[k] = a[k] b[k] for every
slab k, the multiplications that are most of its time.

Why not np.matmul.  It runs one BLAS call per slab, and OpenBLAS may be held to narrower
vectors than the CPU has (OPENBLAS_CORETYPE=Haswell on an AVX-512 machine: 8-float
vectors where the CPU takes 16).  The kernel here uses the widest registers the kernels
are compiled for (simd.load_wide: 16 float32 with AVX-512, 8 with AVX2), whatever BLAS
does.  Measured on slabs of the sizes a Winograd block multiplies (one thread, AMD Zen 5,
2026-12-06, RESULTS.md): 185-235 GFLOP/s against OpenBLAS's 105-126 with its Haswell
kernels.  Where they run is decided by ``_kernels_faster``; ``multiply`` and
``multiply_transposed`` are what the Winograd modules call.

How a small matrix product reaches the CPU's peak.  out = a b, a (M, K), b (K, N):

    for each panel of 2 L columns j (L: the lanes of a register)
        copy b[:, j: j + 2 L] into one contiguous (K, 2 L) buffer
        for each block of 4 rows i
            acc[r][h] = 0                         8 registers: 4 rows x 2 vectors
            for each k:                           the inner loop: 2 loads of b, 4 of a
                b_h = b[k, j + h L: j + (h + 1) L]            (h = 0, 1)
                acc[r][h] += a[i + r, k] * b_h    8 fused multiply-adds, L lanes each
            out[i: i + 4, j: j + 2 L] = acc

The eight accumulators stay in registers for the whole k loop: each number of b loaded
is used four times, each of a 2 L times, so the loop is bound by the multiply-adds, not by
memory.  The panel (K x 2 L, 8 KB at K = 64) stays in the L1 cache while the row blocks
pass over it; copying it first keeps its rows together (see _products).  The rows left
over (M % 4) are copied into a block of four padded with zero rows, and the last columns
(N % 2 L) padded with zeros in the panel, so that every block is whole.

The rounding.  The sum over k runs in stretches of CHAIN = 32 terms, each stretch summed
on its own and then added to the total: a float32 sum's error grows with the number of
additions in its chain, and this makes the chains 32 + K / 32 long instead of K.  It
cut F(4x4)'s float32 error at 128 channels (one 16x16 layer, six seeds) from 4.8x-9.7x
im2col's with OpenBLAS's products to 2.5x-5.2x with these (RESULTS.md, eighth session), at
no cost in speed (stretches of 16 terms cost 25%).
"""
import threading

import numpy as np

from . import numba_threads, simd
from .jit import njit
from .scratch import scratch


CHAIN = 32


@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def _row_blocks(a, b, out, j, q, rows, accumulate):
    """out[i, j: j + 2 L] (+)= a[i] b[:, q: q + 2 L] for the rows i in [0, rows), four rows
    at a time (rows: a multiple of 4; b: rows of at least q + 2 L numbers)."""
    lanes = simd.wide_lanes(b)
    k_ = a.shape[1]
    like = simd.load_wide(out[0], j)
    zero = simd.splat(0.0, like)
    for i in range(0, rows, 4):
        a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        o0, o1, o2, o3 = out[i], out[i + 1], out[i + 2], out[i + 3]
        if accumulate:
            c00, c01 = simd.load_wide(o0, j), simd.load_wide(o0, j + lanes)
            c10, c11 = simd.load_wide(o1, j), simd.load_wide(o1, j + lanes)
            c20, c21 = simd.load_wide(o2, j), simd.load_wide(o2, j + lanes)
            c30, c31 = simd.load_wide(o3, j), simd.load_wide(o3, j + lanes)
        else:
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = zero
        # the sum over k in runs of CHAIN, each added to the total: chains of additions
        # CHAIN + K / CHAIN long instead of K (less rounding where K is large)
        for k0 in range(0, k_, CHAIN):
            d00 = d01 = d10 = d11 = d20 = d21 = d30 = d31 = zero
            for k in range(k0, min(k0 + CHAIN, k_)):
                b_k = b[k]
                b0, b1 = simd.load_wide(b_k, q), simd.load_wide(b_k, q + lanes)
                s = simd.splat(a0[k], like)
                d00, d01 = d00 + s * b0, d01 + s * b1
                s = simd.splat(a1[k], like)
                d10, d11 = d10 + s * b0, d11 + s * b1
                s = simd.splat(a2[k], like)
                d20, d21 = d20 + s * b0, d21 + s * b1
                s = simd.splat(a3[k], like)
                d30, d31 = d30 + s * b0, d31 + s * b1
            c00, c01, c10, c11 = c00 + d00, c01 + d01, c10 + d10, c11 + d11
            c20, c21, c30, c31 = c20 + d20, c21 + d21, c30 + d30, c31 + d31
        simd.store(o0, j, c00)
        simd.store(o0, j + lanes, c01)
        simd.store(o1, j, c10)
        simd.store(o1, j + lanes, c11)
        simd.store(o2, j, c20)
        simd.store(o2, j + lanes, c21)
        simd.store(o3, j, c30)
        simd.store(o3, j + lanes, c31)


@njit(cache=True, nogil=True, inline="always")
def _copy(source, target, rows, columns):
    """target[:rows, :columns] = source[:rows, :columns], as loops: with slice assignments
    this module's kernel took 3.3-4.0 s to compile on a cold cache, with loops 1.4 s (as
    numba_first_layer.py found for its own)."""
    for i in range(rows):
        for j in range(columns):
            target[i, j] = source[i, j]


@njit(cache=True, nogil=True, inline="always")
def _pack(b, j, transposed, panel):
    """panel (K, 2 L) = columns j .. j + 2 L of b (K, N), or of b^T for b (N, K) with
    ``transposed``; zeros past the last column."""
    n_ = b.shape[0] if transposed else b.shape[1]
    width = panel.shape[1]
    lanes = width // 2
    if transposed:
        if j + width > n_:
            panel.fill(0)
        for q in range(min(width, n_ - j)):
            row = b[j + q]
            for k in range(panel.shape[0]):
                panel[k, q] = row[k]
    elif j + width <= n_:
        for k in range(panel.shape[0]):
            row, target = b[k], panel[k]
            simd.store(target, 0, simd.load_wide(row, j))
            simd.store(target, lanes, simd.load_wide(row, j + lanes))
    else:
        panel.fill(0)
        for k in range(panel.shape[0]):
            for q in range(n_ - j):
                panel[k, q] = b[k, j + q]


def _products(a, b, out, accumulate, transposed):
    """out[s] (+)= a[s] b[s] (b[s]^T with ``transposed``) for every slab s, a panel of 2 L
    columns at a time: the panel's columns of b copied into one contiguous (K, 2 L) buffer
    first.  Why copy: read in place, a panel is K runs of 2 L numbers a whole row of b
    apart, and at rows of 128 or more numbers those runs fall into few sets of the L1
    cache and evict each other (the products ran 156 GFLOP/s at N = 128 against 229 at N =
    32); copied, the panel is one run the row blocks all read from L1.  The last, partial
    panel is padded with zeros and its results go through ``out_panel``."""
    k_ = a.shape[2]
    rows, n_ = out.shape[1], out.shape[2]
    four, left_rows = rows - rows % 4, rows % 4
    width = 2 * simd.wide_lanes(out)
    panel = np.empty((k_, width), b.dtype)
    out_panel = np.empty((rows, width), out.dtype)
    a_rest = np.zeros((4, k_), a.dtype)         # the rows left over, padded with zeros
    out_rest = np.zeros((4, width), out.dtype)
    for s in range(a.shape[0]):
        _copy(a[s, four:], a_rest, left_rows, k_)
        for j in range(0, n_, width):
            _pack(b[s], j, transposed, panel)
            columns = min(width, n_ - j)
            for part in range(2):
                if part == 0:           # the blocks of four rows
                    rows_of_a, target, column, count = a[s], out[s], j, four
                    if columns < width:     # the last columns: through whole vectors
                        target, column = out_panel, 0
                        if accumulate:
                            _copy(out[s, :, j:], out_panel, four, columns)
                else:                   # the rows left over, as a block of four
                    if left_rows == 0:
                        break
                    rows_of_a, target, column, count = a_rest, out_rest, 0, 4
                    if accumulate:
                        _copy(out[s, four:, j:], out_rest, left_rows, columns)
                _row_blocks(rows_of_a, panel, target, column, 0, count, accumulate)
                if part == 0 and columns < width:
                    _copy(out_panel, out[s, :, j:], four, columns)
                if part == 1:
                    _copy(out_rest, out[s, four:, j:], left_rows, columns)


_compiled = {}
_compiling = threading.Lock()      # the Winograd blocks' threads may ask at the same time


def _kernel(dtype):
    """_products compiled for ``dtype`` once, its arrays typed with any strides ('A'), so
    that the layouts the Winograd modules pass (contiguous slabs, views into staggered
    buffers, transposed views) share one compiled kernel: each layout of its own cost
    1.6 s of compiling on a cold cache (with the slice assignments _copy replaced)."""
    kernel = _compiled.get(dtype)
    if kernel is None:
        with _compiling:
            if dtype not in _compiled:
                from numba import from_dtype, types     # here: jit.py sets up Numba first
                array = types.Array(from_dtype(dtype), 3, "A")
                signature = types.void(array, array, array, types.boolean, types.boolean)
                _compiled[dtype] = njit(signature, cache=True, nogil=True,
                                        fastmath={"contract"})(_products)
            kernel = _compiled[dtype]
    return kernel


def slab_products(a, b, out, accumulate=False):
    """out[s] = a[s] b[s] (or += with ``accumulate``) for every slab s: a (S, M, K) any
    strides, b (S, K, N), out (S, M, N) with contiguous rows."""
    _kernel(out.dtype)(a, b, out, accumulate, False)


def slab_products_transposed(a, b, out, accumulate=False):
    """out[s] = a[s] b[s]^T (or += with ``accumulate``) for every slab s: a (S, M, K), b
    (S, N, K) (its transpose is copied a panel at a time, as _products copies b's panels
    anyway), out (S, M, N)."""
    _kernel(out.dtype)(a, b, out, accumulate, True)


# ---- which runs: these kernels, or NumPy's BLAS ------------------------------------------

def _kernels_faster():
    """Whether these kernels beat np.matmul here: where they are compiled for AVX-512 and
    NumPy's OpenBLAS runs a narrower kernel set.  Whole conv2d steps (forward, dL/dx,
    dL/dW), the two alternated in one process on ten layers (AMD Zen 5, 2026-12-06,
    RESULTS.md, eighth session): against OpenBLAS's Haswell kernels these ran 1.12x-1.50x
    faster; against its AVX-512 (SkylakeX) kernels 0.86x-1.18x (slower on three layers);
    compiled for AVX2 (8-float vectors, as on AMD Zen 3) 0.95x-1.06x against the Haswell
    kernels.  Another BLAS (MKL, Accelerate): NumPy's."""
    kernels = numba_threads.openblas_kernels()
    return (simd.REGISTER_BYTES == 64 and kernels is not None
            and kernels not in numba_threads.OPENBLAS_AVX512_KERNELS)


KERNELS = _kernels_faster()     # read on each call: a test may set it


def multiply(a, b, out, accumulate=False):
    """out[k] = a[k] b[k] for every slab k (out[k] += with ``accumulate``): a (S, M, K), b
    (S, K, N), out (S, M, N), b's and out's rows contiguous."""
    if KERNELS:
        slab_products(a, b, out, accumulate)
    elif accumulate:                # this thread's reused buffer, not a new array per call
        block = scratch("products_sum", out.shape, out.dtype)
        np.matmul(a, b, out=block)
        out += block
    else:
        np.matmul(a, b, out=out)


def multiply_transposed(a, b, out, accumulate=False):
    """out[k] = a[k] b[k]^T for every slab k (out[k] += with ``accumulate``): a (S, M, K), b
    (S, N, K), out (S, M, N)."""
    if KERNELS:
        slab_products_transposed(a, b, out, accumulate)
    elif accumulate:
        block = scratch("products_sum", out.shape, out.dtype)
        np.matmul(a, b.transpose(0, 2, 1), out=block)
        out += block
    else:
        np.matmul(a, b.transpose(0, 2, 1), out=out)
