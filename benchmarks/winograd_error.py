"""The float32 error of Winograd F(m x n, 3x3) for the forward, dL/dx and dL/dW, against im2col's:

    python -m benchmarks.winograd_error [--seeds 2]

#13 allows a Winograd variant only where its float32 error stays within 10x im2col's.  This
script measures the variants that would cut the backward's products further than F(2x2)'s
2.25x, so that the decision can be rerun rather than trusted:

  F(2x2)   points 0, 1, -1 (and infinity): what winograd.py computes (2.25x fewer products)
  F(4x2)   F(4, 3) down the columns (the points of F(4x4)), F(2, 3) along the rows: what
           winograd42.py computes, 6x4 tiles, 3x fewer; F(2x4) the same turned
  F(3x3)   points 0, 1, -1 and one of 2, 1/2, -2, -1/2: 5x5 tiles, 3.24x fewer
  F(4x4)   points 0, 1, -1, 1/2, -2: what winograd4.py computes for the forward, 4x fewer

each for the forward, for dL/dx two ways (the forward run on dL/dy with the flipped kernel, as
winograd.py does, and the forward's transpose, B [U^T dM] B^T scattered back onto the
overlapping input tiles), and for dL/dW (G^T [sum over tiles dM V^T] G).  A variant is a pair
of 1-D algorithms, (points down the columns, points along the rows): a 2-D transform is one
1-D transform on each axis.  The Winograd code here is NumPy (einsum over all tiles at once):
a model of the kernels' arithmetic, not of their speed; the test suite checks that it is
exact in float64.  Error = max |r32 - r64| / max |r64|, r64 computed by im2col in float64;
the table gives each variant's error divided by im2col's own float32 error on the same
problem: the range over the shapes and seeds, and the median.
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse
from fractions import Fraction

import numpy as np

from benchmarks._common import header
from tinynet.kernels import cpu_numba
from tinynet.kernels.winograd4 import matrices

GEOMETRY = ((1, 1), (1, 1), (1, 1), 1)          # stride, padding, dilation, groups
SHAPES = [  # (N, C, H=W, O)
    (2, 32, 32, 64), (4, 64, 16, 128), (4, 128, 8, 256), (2, 3, 64, 32), (1, 64, 56, 64),
    (1, 256, 28, 256), (8, 32, 32, 32), (2, 256, 14, 128), (16, 64, 16, 128)]
F2, F4 = (0, 1, -1), (0, 1, -1, Fraction(1, 2), -2)
VARIANTS = {"F(2x2)": (F2, F2), "F(4x2)": (F4, F2), "F(2x4)": (F2, F4), "F(4x4)": (F4, F4)}
VARIANTS.update({f"F(3x3), {p}": ((0, 1, -1, p),) * 2
                 for p in (2, Fraction(1, 2), -2, Fraction(-1, 2))})


def transforms(points, dtype):
    """(m, A^T, G, B^T) of F(m, 3) for ``points`` (m + 1 finite ones), in ``dtype``."""
    m = len(points) - 1
    return (m,) + tuple(t.astype(dtype) for t in matrices(points, m=m, r=3))


def _input_tiles(x, m, padding, tiles_h, tiles_w):
    """d[n, c, i, j] = the (m0 + 2) x (m1 + 2) tile of x_pad at rows m0 i.., columns m1 j..
    (m = (m0, m1)): a view of x padded by ``padding`` before and zeros after, as far as the
    last tile reads."""
    n, c, h, w = x.shape
    x_pad = np.zeros((n, c, m[0] * tiles_h + 2, m[1] * tiles_w + 2), x.dtype)
    x_pad[:, :, padding:padding + h, padding:padding + w] = x
    s = x_pad.strides
    return np.lib.stride_tricks.as_strided(
        x_pad, (n, c, tiles_h, tiles_w, m[0] + 2, m[1] + 2),
        (s[0], s[1], m[0] * s[2], m[1] * s[3], s[2], s[3]))


def _tile_counts(h, w, m, padding):
    oh, ow = h + 2 * padding - 2, w + 2 * padding - 2
    return oh, ow, -(-oh // m[0]), -(-ow // m[1])


def _both(points, dtype):
    """((m0, m1), (A^T, G, B^T) down the columns, the same along the rows)"""
    (m0, *rows), (m1, *columns) = transforms(points[0], dtype), transforms(points[1], dtype)
    return (m0, m1), rows, columns


def _output_tiles(grad_y, m, th, tw):
    """dL/dy zero-padded to whole tiles, as (n, o, th, tw, m0, m1) tiles."""
    n, o, oh, ow = grad_y.shape
    gy = np.zeros((n, o, th * m[0], tw * m[1]), grad_y.dtype)
    gy[:, :, :oh, :ow] = grad_y
    return gy.reshape(n, o, th, m[0], tw, m[1]).transpose(0, 1, 2, 4, 3, 5)


def forward(x, weight, points, padding=1):
    """y = the correlation of x with weight (O, C, 3, 3), by Winograd in x's dtype:
    Y = A0^T [ sum_c (G0 g G1^T) * (B0^T d B1) ] A1 per tile (0: down the columns, 1: along
    the rows)."""
    m, (a0, g0, b0), (a1, g1, b1) = _both(points, x.dtype)
    n, c, h, w = x.shape
    o, k = weight.shape[0], (m[0] + 2) * (m[1] + 2)
    oh, ow, th, tw = _tile_counts(h, w, m, padding)
    d = _input_tiles(x, m, padding, th, tw)
    v = np.einsum("ai,nctwij,bj->abcntw", b0, d, b1, optimize=True).reshape(k, c, -1)
    u = np.einsum("ai,ocij,bj->aboc", g0, weight.astype(x.dtype), g1).reshape(k, o, c)
    products = np.matmul(u, v.astype(x.dtype)).reshape(m[0] + 2, m[1] + 2, o, n, th, tw)
    y = np.einsum("ia,abontw,jb->notiwj", a0, products, a1, optimize=True)
    return y.reshape(n, o, th * m[0], tw * m[1])[:, :, :oh, :ow].astype(x.dtype)


def input_grad_flipped(grad_y, weight, points):
    """dL/dx (padding 1) as winograd.py computes it: the forward on dL/dy with the kernel
    flipped in both axes and its channel axes swapped."""
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return forward(grad_y, flipped, points, padding=1)


def input_grad_transposed(grad_y, weight, points, padding=1):
    """dL/dx as the forward's transpose: dM = A0 dY A1^T per output tile, the products with
    U^T, then B0 [.] B1^T, each result added onto the input tile it came from."""
    m, (a0, g0, b0), (a1, g1, b1) = _both(points, grad_y.dtype)
    n, o, oh, ow = grad_y.shape
    c, k0, k1 = weight.shape[1], m[0] + 2, m[1] + 2
    th, tw = -(-oh // m[0]), -(-ow // m[1])
    tiles = _output_tiles(grad_y, m, th, tw)
    dm = np.einsum("ai,notwij,bj->abontw", a0.T, tiles, a1.T, optimize=True)
    u = np.einsum("ai,ocij,bj->abco", g0, weight.astype(grad_y.dtype), g1).reshape(
        k0 * k1, c, o)
    products = np.matmul(u, dm.reshape(k0 * k1, o, -1).astype(grad_y.dtype))
    dv = np.einsum("ia,abcntw,jb->nctwij", b0.T, products.reshape(k0, k1, c, n, th, tw),
                   b1.T, optimize=True).astype(grad_y.dtype)
    h, w = oh + 2 - 2 * padding, ow + 2 - 2 * padding
    grad_pad = np.zeros((n, c, m[0] * th + 2, m[1] * tw + 2), grad_y.dtype)
    for i in range(th):                         # overlapping tiles: added, not assigned
        for j in range(tw):
            grad_pad[:, :, m[0] * i:m[0] * i + k0, m[1] * j:m[1] * j + k1] += dv[:, :, i, j]
    return grad_pad[:, :, padding:padding + h, padding:padding + w]


def weight_grad(grad_y, x, points, padding=1):
    """dL/dW = G0^T [ sum over tiles (A0 dY A1^T) * (B0^T d B1) ] G1, the forward's
    adjoint."""
    m, (a0, g0, b0), (a1, g1, b1) = _both(points, x.dtype)
    n, c, h, w = x.shape
    o, k0, k1 = grad_y.shape[1], m[0] + 2, m[1] + 2
    oh, ow, th, tw = _tile_counts(h, w, m, padding)
    v = np.einsum("ai,nctwij,bj->abcntw", b0, _input_tiles(x, m, padding, th, tw), b1,
                  optimize=True).reshape(k0 * k1, c, -1).astype(x.dtype)
    tiles = _output_tiles(grad_y.astype(x.dtype), m, th, tw)
    dm = np.einsum("ai,notwij,bj->abontw", a0.T, tiles, a1.T, optimize=True)
    du = np.matmul(dm.reshape(k0 * k1, o, -1).astype(x.dtype), v.transpose(0, 2, 1))
    return np.einsum("ai,aboc,bj->ocij", g0, du.reshape(k0, k1, o, c), g1).astype(x.dtype)


def problem(n, c, size, o, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    w = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    grad_y = rng.standard_normal((n, o, size, size)).astype(np.float32)
    return x, w, grad_y


def error_ratios(x, w, grad_y, variants=VARIANTS):
    """{(variant, direction): its float32 error / im2col's}, directions 'forward', 'dL/dx
    flipped', 'dL/dx transposed', 'dL/dW'."""
    x64, w64, gy64 = (a.astype(np.float64) for a in (x, w, grad_y))
    exact = {"forward": cpu_numba.conv2d_forward(x64, w64, *GEOMETRY)[0],
             "dL/dx": cpu_numba.conv2d_backward_input(gy64, w64, x.shape, *GEOMETRY),
             "dL/dW": cpu_numba.conv2d_backward_weight(gy64, x64, w.shape, *GEOMETRY)}
    im2col = {"forward": cpu_numba.conv2d_forward(x, w, *GEOMETRY)[0],
              "dL/dx": cpu_numba.conv2d_backward_input(grad_y, w, x.shape, *GEOMETRY),
              "dL/dW": cpu_numba.conv2d_backward_weight(grad_y, x, w.shape, *GEOMETRY)}

    def error(result, direction):
        return np.abs(result - exact[direction]).max() / np.abs(exact[direction]).max()

    ratios = {}
    for name, points in variants.items():
        results = {"forward": ("forward", forward(x, w, points)),
                   "dL/dx flipped": ("dL/dx", input_grad_flipped(grad_y, w, points)),
                   "dL/dx transposed": ("dL/dx", input_grad_transposed(grad_y, w, points)),
                   "dL/dW": ("dL/dW", weight_grad(grad_y, x, points))}
        for label, (direction, result) in results.items():
            ratios[name, label] = error(result, direction) / error(im2col[direction], direction)
    return ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)
    header("Winograd float32 error / im2col's float32 error (#13 allows 10x)")
    collected = {}
    for shape in SHAPES:
        for seed in range(args.seeds):
            for key, ratio in error_ratios(*problem(*shape, seed)).items():
                collected.setdefault(key, []).append(ratio)
    directions = ("forward", "dL/dx flipped", "dL/dx transposed", "dL/dW")
    print(f"{'variant':18s}" + "".join(f"{d:>26s}" for d in directions))
    for name in VARIANTS:
        cells = []
        for d in directions:
            r = collected[name, d]
            cells.append(f"{min(r):.1f}-{max(r):.1f}x (median {np.median(r):.1f})")
        print(f"{name:18s}" + "".join(f"{cell:>26s}" for cell in cells))
    print(f"\n{len(SHAPES)} shapes x {args.seeds} seeds: " + ", ".join(
        f"{n}x{c}x{s}x{s}->{o}" for n, c, s, o in SHAPES))


if __name__ == "__main__":
    main()
