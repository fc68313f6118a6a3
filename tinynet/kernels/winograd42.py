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
0.3x-1.6x; F(4x4): 9.4x-15.3x, 2.4x-14.1x, 2.1x-10.3x).  The tile transforms are
Numba kernels in winograd42_tiles.py, built from the 1-D steps of both: B2^T d is
``winograd_tiles.bt``, A2^T m ``winograd_tiles.at``, A2 f ``winograd_weight.a_row``; B4^T d
is ``winograd4._b_t``, A4^T m and A4 e are ``winograd42_tiles.a_t4`` and ``a4``.

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
from . import products, simd, winograd
from .products import multiply, multiply_transposed
from .scratch import empty
from .winograd4 import G as G4, _constants
from .winograd42_tiles import (_input_tiles, _input_tiles_channels_last, _output_grad_tiles,
                               _output_tiles)

G2 = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
# U[4 a + b] = sum_{u, v} G4[a, u] G2[b, v] g[u, v]: the Kronecker product (24 x 9) times the
# kernel's nine weights as a vector; reversing those nine flips the kernel in both axes
_KRON = np.kron(G4, G2)
TILE = (4, 2)


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
    w[o, c, 2 - u, 2 - v] as (24, C, O), the kernel dL/dx runs the forward with (its slabs
    contiguous, as the products read them fastest)."""
    o, c = weight.shape[:2]
    if flipped:                     # (9, C O): the nine weights of w[o, c], c-major
        kron, kernels = _KRON[:, ::-1], weight.transpose(1, 0, 2, 3).reshape(c * o, 9).T
        o, c = c, o
    else:
        kron, kernels = _KRON, weight.reshape(o * c, 9).T
    u = winograd._slabs(o, c, weight.dtype, "winograd42_u", count=24)
    np.matmul(kron.astype(weight.dtype), kernels, out=u.reshape(24, o * c))
    return u


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
            multiply_transposed(u, v, m)                 # M[k] = U[k] V[k]
        else:
            v = winograd._slabs(c, size, x.dtype, "winograd_v", count=24)     # (24, C, B)
            _input_tiles(x, ph, pw, th, tw, r0, r1, v, factors)
            multiply(u, v, m)
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
    du = None                     # dU (24, O, C): the products add into it
    bias_sums = np.zeros(o)
    # V channels last wherever products.py's kernels run, so that dU = dM V reads V's rows
    # whole (V plain with its transpose copied a panel at a time ran 0.86x-1.28x this
    # speed, with no rule in the plane's width; RESULTS.md, eighth session)
    v_channels_last = products.KERNELS or channels_last(c, tw)
    for i in indices:
        r0, r1 = blocks[i]
        size = (r1 - r0) * tw
        dm = winograd._slabs(o, size, x.dtype, "winograd_m", count=24)    # (24, O, B)
        _output_grad_tiles(grad_y, th, tw, r0, r1, dm, bias_sums, factors)
        if du is None:
            du = np.zeros((24, o, c), x.dtype)
        if v_channels_last:
            v = winograd._slabs(size, c, x.dtype, "winograd_v", count=24)     # (24, B, C)
            _input_tiles_channels_last(x, ph, pw, th, tw, r0, r1, v, factors)
            multiply(dm, v, du, accumulate=True)        # dU[k] += dM[k] V[k]^T, (O, C)
        else:
            v = winograd._slabs(c, size, x.dtype, "winograd_v", count=24)     # (24, C, B)
            _input_tiles(x, ph, pw, th, tw, r0, r1, v, factors)
            multiply_transposed(dm, v, du, accumulate=True)
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


def preferred(x_shape, weight_shape, padding):
    """The rule of 'auto' and 'winograd' for a convolution winograd.py would compute (the
    forward only where winograd4.preferred does not take it): F(4x2) where the output has
    at least MIN_OUTPUT_ROWS rows and its tile rows, four output rows each, cover no more
    than 1.1x the rows F(2x2)'s do.  The same for every direction, so that the forward and
    its backward are one module's.  Measured with ``python -m benchmarks.bench_winograd42``
    (21 shapes, AMD Zen 5, OpenBLAS's Haswell kernels, 2026-12-06, RESULTS.md): on the
    final code F(4x2) ran 1.03x-1.48x F(2x2)'s speed on the 14 layers the rule takes
    (planes of 8x8 to 224x224), and lost on 6x6 and 7x7 (0.57x-0.86x, a tile row being most
    of the plane) and on 13x13 and 14x14, which its tiles cover as 16x16 (0.68x-0.99x
    where it was not ahead).  4x4 planes read 0.85x-0.96x in a first run and 1.08x-1.16x in
    the last: left to F(2x2)."""
    oh, ow = conv_output_hw(x_shape, (3, 3), (1, 1), padding)
    return oh >= MIN_OUTPUT_ROWS and -(-oh // 4) * 4 <= 1.1 * (-(-oh // 2) * 2)
