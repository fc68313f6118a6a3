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

    V[k, (n, t), c] = (B^T d_{n,c,t} B)[k]      input tiles,  k = 0..15 the 4x4 positions
    U[k, c, o]      = (G g_{o,c} G^T)[k]        kernel, once per call (NumPy, tiny)
    M[k, (n, t), o] = sum_c V[k, (n, t), c] U[k, c, o]       16 GEMMs, one per k
    y tile (n, o, t) = A^T M[:, (n, t), o] A

against im2col's one GEMM of 9 C rows per output pixel, this GEMM has 16 C rows per 4 output
pixels: 2.25x less arithmetic, and V is 16/4 = 4 values per input pixel, not col's 9.

Backward.  dL/dx is the "full" correlation of dL/dy with the kernel flipped in both axes and
its channel axes swapped, padding 2 - P: the same algorithm, run on dL/dy.  dL/dW is the
adjoint of the forward: dM = A dL/dY A^T per tile, dU[k] = sum over tiles dM[k] V[k]^T (one
batched product, computed transposed as in cpu_numba.py), dL/dg = G^T dU G.

Accuracy: the transforms add and subtract inputs (and halve kernel values), so the float32
error is a small multiple of im2col's (measured in benchmarks/RESULTS.md and tested).

Notation as in reference.py; TH, TW = ceil(OH / 2), ceil(OW / 2) tiles per plane, T = TH TW.
"""
import numpy as np
from numba import njit

from ..geometry import conv_output_hw
from .numba_threads import run
from .scratch import empty

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


def faster(function_name, x_shape, weight_shape, padding):
    """The measured dispatch rule of 'auto': is Winograd faster than the Numba im2col + GEMM
    kernels (cpu_numba.py) for this product and shape?

    Measured with ``python -m benchmarks.bench_winograd`` (benchmarks/RESULTS.md, 2026-11-28,
    AMD EPYC Zen 3, 2 vCPUs, machine loaded, one BLAS thread): at 11 shapes from
    8x16x32x32->16 to 1x256x56x56->256 Winograd was slower than im2col almost everywhere
    (medians: forward 0.81x im2col's speed, dL/dx 0.79x, dL/dW 0.57x; lowest 0.18x); the two
    cases above 1.0x (1.01x, 1.16x) were single noisy ones.  With two BLAS threads on the
    loaded machine it was far worse (the demo's step: 0.15x PyTorch against im2col's 0.87x):
    16 small GEMMs per convolution, each a barrier.  The GEMMs have an inner dimension of
    only C (im2col's has 9 C), where OpenBLAS reaches a fraction of its peak, and the tile
    transforms cost as much memory traffic as im2col saves.  So 'auto' never picks it here;
    ``tinynet.kernels.use("winograd")`` runs it.  Change this rule only with new measurements."""
    return False


# ---- the tile transforms (Numba) -------------------------------------------------------------
# Layouts: v (16, N T, C) and m (16, N T, O), channels last, so that each of the 16 products
# is a tall-and-thin GEMM (N T x C) @ (C x O).  OpenBLAS ran the other orientation,
# (O x C) @ (C x N T), 4x slower on one thread at the demo's shapes (64x32 @ 32x16384:
# 10.6 ms against 2.5 ms).  A task is one row of tiles of one example; within it the loops
# run over channels outside and tiles inside, so reads of x (or writes of y) follow its rows
# and the strided side stays within a 16 x TW x C block that fits in the L2 cache.


@njit(cache=True, nogil=True)
def _input_tiles(xp, th, tw, v, t0, t1):
    """v[k, n T + ti TW + tj, c] = (B^T d B)[k] with d = xp[n, c, 2 ti: 2 ti + 4,
    2 tj: 2 tj + 4], xp the zero-padded input.  Task = (n, ti)."""
    n_, c_ = xp.shape[:2]
    for task in range(t0, t1):
        n = task // th
        ti = task - n * th
        r = 2 * ti
        col0 = (n * th + ti) * tw
        for c in range(c_):
            p = xp[n, c]
            for tj in range(tw):
                q = 2 * tj
                # B^T d: rows combined (d0 - d2, d1 + d2, d2 - d1, d1 - d3), per column
                a00 = p[r, q] - p[r + 2, q]
                a01 = p[r, q + 1] - p[r + 2, q + 1]
                a02 = p[r, q + 2] - p[r + 2, q + 2]
                a03 = p[r, q + 3] - p[r + 2, q + 3]
                a10 = p[r + 1, q] + p[r + 2, q]
                a11 = p[r + 1, q + 1] + p[r + 2, q + 1]
                a12 = p[r + 1, q + 2] + p[r + 2, q + 2]
                a13 = p[r + 1, q + 3] + p[r + 2, q + 3]
                a20 = p[r + 2, q] - p[r + 1, q]
                a21 = p[r + 2, q + 1] - p[r + 1, q + 1]
                a22 = p[r + 2, q + 2] - p[r + 1, q + 2]
                a23 = p[r + 2, q + 3] - p[r + 1, q + 3]
                a30 = p[r + 1, q] - p[r + 3, q]
                a31 = p[r + 1, q + 1] - p[r + 3, q + 1]
                a32 = p[r + 1, q + 2] - p[r + 3, q + 2]
                a33 = p[r + 1, q + 3] - p[r + 3, q + 3]
                col = col0 + tj
                # (B^T d) B: the same combination of columns, per row
                v[0, col, c] = a00 - a02
                v[1, col, c] = a01 + a02
                v[2, col, c] = a02 - a01
                v[3, col, c] = a01 - a03
                v[4, col, c] = a10 - a12
                v[5, col, c] = a11 + a12
                v[6, col, c] = a12 - a11
                v[7, col, c] = a11 - a13
                v[8, col, c] = a20 - a22
                v[9, col, c] = a21 + a22
                v[10, col, c] = a22 - a21
                v[11, col, c] = a21 - a23
                v[12, col, c] = a30 - a32
                v[13, col, c] = a31 + a32
                v[14, col, c] = a32 - a31
                v[15, col, c] = a31 - a33


@njit(cache=True, nogil=True)
def _output_tiles(m, th, tw, y, t0, t1):
    """y[n, o, 2 ti + i, 2 tj + j] = (A^T M A)[i, j] with M = m[:, n T + ti TW + tj, o]
    (rows and columns past OH, OW dropped).  Task = (n, ti)."""
    n_, o_, oh, ow = y.shape
    for task in range(t0, t1):
        n = task // th
        ti = task - n * th
        r = 2 * ti
        second_row = r + 1 < oh
        col0 = (n * th + ti) * tw
        for o in range(o_):
            out = y[n, o]
            for tj in range(tw):
                col = col0 + tj
                # A^T M: rows (m0 + m1 + m2, m1 - m2 - m3), per column b
                s00 = m[0, col, o] + m[4, col, o] + m[8, col, o]
                s01 = m[1, col, o] + m[5, col, o] + m[9, col, o]
                s02 = m[2, col, o] + m[6, col, o] + m[10, col, o]
                s03 = m[3, col, o] + m[7, col, o] + m[11, col, o]
                s10 = m[4, col, o] - m[8, col, o] - m[12, col, o]
                s11 = m[5, col, o] - m[9, col, o] - m[13, col, o]
                s12 = m[6, col, o] - m[10, col, o] - m[14, col, o]
                s13 = m[7, col, o] - m[11, col, o] - m[15, col, o]
                q = 2 * tj
                out[r, q] = s00 + s01 + s02
                if second_row:
                    out[r + 1, q] = s10 + s11 + s12
                if q + 1 < ow:
                    out[r, q + 1] = s01 - s02 - s03
                    if second_row:
                        out[r + 1, q + 1] = s11 - s12 - s13


@njit(cache=True, nogil=True)
def _output_grad_tiles(gy, th, tw, dm, t0, t1):
    """dm[k, n T + ti TW + tj, o] = (A dY A^T)[k], dY the 2x2 tile of gy[n, o] (zeros past
    OH, OW): the adjoint of _output_tiles.  Task = (n, ti)."""
    n_, o_, oh, ow = gy.shape
    e = np.zeros((2, 2), dtype=gy.dtype)
    for task in range(t0, t1):
        n = task // th
        ti = task - n * th
        for o in range(o_):
            plane = gy[n, o]
            for tj in range(tw):
                for i in range(2):
                    for j in range(2):
                        r, q = 2 * ti + i, 2 * tj + j
                        e[i, j] = plane[r, q] if r < oh and q < ow else 0
                col = (n * th + ti) * tw + tj
                # A = (A^T)^T has rows (1, 0), (1, 1), (1, -1), (0, -1)
                for a in range(4):
                    if a == 0:
                        f0, f1 = e[0, 0], e[0, 1]
                    elif a == 1:
                        f0, f1 = e[0, 0] + e[1, 0], e[0, 1] + e[1, 1]
                    elif a == 2:
                        f0, f1 = e[0, 0] - e[1, 0], e[0, 1] - e[1, 1]
                    else:
                        f0, f1 = -e[1, 0], -e[1, 1]
                    dm[4 * a, col, o] = f0
                    dm[4 * a + 1, col, o] = f0 + f1
                    dm[4 * a + 2, col, o] = f0 - f1
                    dm[4 * a + 3, col, o] = -f1


# ---- the kernel interface ------------------------------------------------------------------

def _tiles(x_shape, padding):
    oh, ow = conv_output_hw(x_shape, (3, 3), (1, 1), padding)
    return oh, ow, (oh + 1) // 2, (ow + 1) // 2


def kernel_transform(weight):
    """U^T[k, c, o] = (G g[o, c] G^T)[k], shape (16, C, O), in the weight's dtype."""
    u = np.einsum("au,ocuv,bv->abco", G, weight.astype(np.float64), G)
    return np.ascontiguousarray(u.reshape(16, weight.shape[1], weight.shape[0]),
                                dtype=weight.dtype)


def input_transform(x, padding, th, tw):
    """V (16, N T, C) of x's tiles.  x is zero-padded first (PH, PW before, enough after to
    fill the last tile), so that the tile kernel needs no bounds checks."""
    n, c, h, w = x.shape
    (ph, pw), hp, wp = padding, 2 * th + 2, 2 * tw + 2
    x_pad = np.zeros((n, c, hp, wp), dtype=x.dtype)
    x_pad[:, :, ph:ph + h, pw:pw + w] = x[:, :, :hp - ph, :wp - pw]
    v = empty((16, n * th * tw, c), x.dtype)
    run(_input_tiles, n * th, 4 * x.size, x_pad, th, tw, v)
    return v


def _batched(a, b, transpose_a=False):
    """a[k] @ b[k] (or a[k]^T @ b[k]) for k = 0..15, each a plain 2-D product handed to
    BLAS (np.matmul on stacks with a transposed operand may not use BLAS)."""
    rows = a.shape[2] if transpose_a else a.shape[1]
    out = empty((a.shape[0], rows, b.shape[2]), a.dtype)
    for k in range(a.shape[0]):
        np.matmul(a[k].T if transpose_a else a[k], b[k], out=out[k])
    return out


def conv2d_forward(x, weight, stride, padding, dilation, groups, save=False):
    x = np.ascontiguousarray(x)
    weight = np.ascontiguousarray(weight, dtype=x.dtype)
    n, o = x.shape[0], weight.shape[0]
    oh, ow, th, tw = _tiles(x.shape, padding)
    v = input_transform(x, padding, th, tw)                     # (16, N T, C)
    m = _batched(v, kernel_transform(weight))                   # (16, N T, O)
    y = empty((n, o, oh, ow), x.dtype)
    run(_output_tiles, n * th, m.size, m, th, tw, y)
    return y, None   # nothing saved: dL/dW rebuilds what it needs


def conv2d_backward_input(grad_y, weight, x_shape, stride, padding, dilation, groups):
    """dL/dx = the Winograd correlation of dL/dy with w[o, c, 2 - u, 2 - v] as a (C, O, 3, 3)
    kernel, padding 2 - P: output size OH + 2 (2 - PH) - 2 = H."""
    flipped = np.ascontiguousarray(weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    grad_x, _ = conv2d_forward(grad_y, flipped, stride, (2 - padding[0], 2 - padding[1]),
                               dilation, groups)
    return grad_x


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups,
                           saved=None):
    """dL/dg = G^T dU G with dU[k]^T = V[k]^T dM[k] summed over tiles (the forward's
    adjoint; a product with a long inner dimension, as cpu_numba.py computes dL/dW)."""
    grad_y = np.ascontiguousarray(grad_y)
    x = np.ascontiguousarray(x, dtype=grad_y.dtype)
    n, o = grad_y.shape[:2]
    _, _, th, tw = _tiles(x.shape, padding)
    v = input_transform(x, padding, th, tw)                     # (16, N T, C)
    dm = empty((16, n * th * tw, o), grad_y.dtype)
    run(_output_grad_tiles, n * th, dm.size, grad_y, th, tw, dm)
    du_t = _batched(v, dm, transpose_a=True)                    # (16, C, O) = dU^T
    du = du_t.astype(np.float64).reshape(4, 4, *du_t.shape[1:])
    grad_w = np.einsum("au,abco,bv->ocuv", G, du, G)
    return np.ascontiguousarray(grad_w, dtype=grad_y.dtype).reshape(weight_shape)
