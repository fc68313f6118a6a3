"""The products of a Winograd convolution as Numba kernels: out[k] = a[k] b[k] for every
slab k, the multiplications that are most of its time.

Why not np.matmul.  It runs one BLAS call per slab, and OpenBLAS may be held to narrower
vectors than the CPU has (OPENBLAS_CORETYPE=Haswell on an AVX-512 machine: 8-float
vectors where the CPU takes 16).  The kernel here uses the widest registers the kernels
are compiled for (simd.load_wide: 16 float32 with AVX-512, 8 with AVX2), whatever BLAS
does.  Measured on slabs of the sizes a Winograd block multiplies (one thread, AMD Zen 5,
2026-12-06, RESULTS.md): ~200 GFLOP/s against OpenBLAS's 100-115 with its Haswell
kernels, and about even with its AVX-512 (SkylakeX) ones.

How a small matrix product reaches the CPU's peak.  out = a b, a (M, K), b (K, N):

    for each panel of 2 L columns j (L: the lanes of a register)
        for each block of 4 rows i
            acc[r][h] = 0                         8 registers: 4 rows x 2 vectors
            for each k:                           the inner loop: 2 loads of b, 4 of a
                b_h = b[k, j + h L: j + (h + 1) L]            (h = 0, 1)
                acc[r][h] += a[i + r, k] * b_h    8 fused multiply-adds, L lanes each
            out[i: i + 4, j: j + 2 L] = acc

The eight accumulators stay in registers for the whole k loop: each number of b loaded
is used four times, each of a 2 L times, so the loop is bound by the multiply-adds, not by
memory.  The panel of b (K x 2 L) stays in the L1 cache while the row blocks pass over it.
Rows left over (M % 4) go one at a time; columns left over (N % 2 L) are copied into a
zero-padded panel first, so that every load is a whole vector.  Results match np.matmul to
float32 rounding; the order of the additions over k is each output's own, k = 0, 1, ...
"""
import numpy as np

from . import numba_threads, simd
from .jit import njit


CHAIN = 32


@njit(cache=True, nogil=True, inline="always", fastmath={"contract"})
def _row_blocks(a, b, out, j, rows, accumulate):
    """out[i, j: j + 2 L] (+)= a[i] b[:, j: j + 2 L] for the rows i in [0, rows): four rows
    at a time, the rest one at a time (b: rows of at least j + 2 L numbers)."""
    lanes = simd.wide_lanes(b)
    k_ = a.shape[1]
    like = simd.load_wide(out[0], j)
    zero = simd.splat(0.0, like)
    four = rows - rows % 4
    for i in range(0, four, 4):
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
                b0, b1 = simd.load_wide(b_k, j), simd.load_wide(b_k, j + lanes)
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
    for i in range(four, rows):
        a0, o0 = a[i], out[i]
        if accumulate:
            c00, c01 = simd.load_wide(o0, j), simd.load_wide(o0, j + lanes)
        else:
            c00 = c01 = zero
        for k in range(a.shape[1]):
            b_k = b[k]
            s = simd.splat(a0[k], like)
            c00 = c00 + s * simd.load_wide(b_k, j)
            c01 = c01 + s * simd.load_wide(b_k, j + lanes)
        simd.store(o0, j, c00)
        simd.store(o0, j + lanes, c01)


@njit(cache=True, nogil=True, fastmath={"contract"})
def product(a, b, out, accumulate=False):
    """out (M, N) = a (M, K) b (K, N), or out += a b with ``accumulate``.  a: any strides;
    b and out: rows of contiguous numbers (each row a[i] is read a number at a time, each
    row of b and out as vectors)."""
    rows, n_ = out.shape
    panel = 2 * simd.wide_lanes(b)
    full = n_ - n_ % panel
    for j in range(0, full, panel):
        _row_blocks(a, b, out, j, rows, accumulate)
    if full < n_:                   # the last columns, through a zero-padded panel
        left = n_ - full
        b_tail = np.zeros((b.shape[0], panel), b.dtype)
        b_tail[:, :left] = b[:, full:]
        out_tail = np.zeros((rows, panel), out.dtype)
        if accumulate:
            out_tail[:, :left] = out[:, full:]
        _row_blocks(a, b_tail, out_tail, 0, rows, accumulate)
        out[:, full:] = out_tail[:, :left]


@njit(cache=True, nogil=True, fastmath={"contract"})
def slab_products(a, b, out, accumulate=False):
    """out[k] = a[k] b[k] (or += with ``accumulate``) for every slab k: a (S, M, K), b (S,
    K, N), out (S, M, N), as ``product``."""
    for k in range(a.shape[0]):
        product(a[k], b[k], out[k], accumulate)


@njit(cache=True, nogil=True, fastmath={"contract"})
def slab_products_transposed(a, b, out):
    """out[k] = a[k] b[k]^T for every slab k: a (S, M, K), b (S, N, K), out (S, M, N).  Each
    b[k] is copied transposed, (K, N), and multiplied by ``product``: the copy reads K N
    numbers where the product makes M N K multiply-adds."""
    packed = np.empty((b.shape[2], b.shape[1]), b.dtype)
    for k in range(a.shape[0]):
        packed[:] = b[k].T
        product(a[k], packed, out[k])


# ---- which runs: these kernels, or NumPy's BLAS ------------------------------------------

def _kernels_faster():
    """Whether these kernels beat np.matmul here: where they are compiled for AVX-512 and
    NumPy's OpenBLAS runs a narrower kernel set.  Whole conv2d steps, the two alternated in
    one process (AMD Zen 5, 2026-12-06, RESULTS.md, eighth session): with OpenBLAS's
    Haswell kernels these ran 1.05x-1.34x faster on eight layers; against its AVX-512
    (SkylakeX) kernels 0.84x-1.09x; compiled for AVX2 (8-float vectors, as on AMD Zen 3)
    0.89x-1.09x against the Haswell kernels.  Another BLAS (MKL, Accelerate): NumPy's."""
    kernels = numba_threads.openblas_kernels()
    return (simd.REGISTER_BYTES == 64 and kernels is not None
            and kernels not in numba_threads.OPENBLAS_AVX512_KERNELS)


KERNELS = _kernels_faster()     # read on each call: a test may set it


def multiply(a, b, out, accumulate=False):
    """out[k] = a[k] b[k] for every slab k (out[k] += with ``accumulate``): a (S, M, K), b
    (S, K, N), out (S, M, N), b's and out's rows contiguous."""
    if KERNELS:
        slab_products(a, b, out, accumulate)
    elif accumulate:
        out += np.matmul(a, b)
    else:
        np.matmul(a, b, out=out)


def multiply_transposed(a, b, out):
    """out[k] = a[k] b[k]^T for every slab k: a (S, M, K), b (S, N, K), out (S, M, N)."""
    if KERNELS:
        slab_products_transposed(a, b, out)
    else:
        np.matmul(a, b.transpose(0, 2, 1), out=out)
