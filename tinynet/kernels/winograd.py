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
from .numba_threads import blas_threads_controllable, one_blas_thread, run
from .products import multiply, multiply_transposed
from .scratch import empty, new_buffer, scratch
from .winograd_tiles import (_input_tiles, _input_tiles_channels_last, _kernel_tiles,
                             _output_tiles, _output_tiles_one_by_one)

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


# ---- blocks and slabs -----------------------------------------------------------------------
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
# with only 32 output channels).  (Exceptions: V is (16, tiles, C) where a tile row is
# shorter than eight tiles, and in dL/dW at C = 32: _forward_blocks, winograd_weight.py.)
# The 16 slabs of V and M start 320 bytes apart modulo
# 4 KiB (``_slabs``): slabs of a multiple of 4 KiB put the 16 write streams on the same
# cache sets, and the transforms ran 2-3x slower for it.

STAGGER_BYTES = 320


def _slabs(a, b, dtype, role=None, count=16):
    """An uninitialized (count, a, b) array, each [k] C-contiguous, slab starts staggered
    (``count`` 24 for winograd42.py's F(4x2) tiles)."""
    step = a * b + STAGGER_BYTES // np.dtype(dtype).itemsize
    flat = scratch(role, (count * step,), dtype) if role else new_buffer((count * step,), dtype)
    return flat.reshape(count, step)[:, :a * b].reshape(count, a, b)


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
            multiply_transposed(u, v, m)                   # M[k] = U[k] V[k]
        else:
            v = _slabs(c, size, x.dtype, "winograd_v")          # (16, C, B)
            _input_tiles(x, ph, pw, th, tw, r0, r1, v)
            multiply(u, v, m)
        output_tiles(m, th, tw, r0, r1, bias, y)


def _forward(x, u, padding, bias=None):
    """y = the Winograd correlation of x with the kernel whose transform is u, plus bias."""
    return run_forward(_forward_blocks, (2, 2), TILES_PER_BLOCK, x, u, padding, bias)


def run_forward(blocks_function, tile, tiles_per_block, x, u, padding, bias):
    """The frame of a Winograd forward (this module's, winograd4.py's with 4x4 tiles and
    winograd42.py's with 4x2): y allocated, the bias as a (O,) array, and
    ``blocks_function`` run over the blocks of tile rows (output tiles of ``tile`` = (rows,
    columns), about ``tiles_per_block`` a block)."""
    n, o = x.shape[0], u.shape[1]
    oh, ow = conv_output_hw(x.shape, (3, 3), (1, 1), padding)
    th, tw = -(-oh // tile[0]), -(-ow // tile[1])
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
