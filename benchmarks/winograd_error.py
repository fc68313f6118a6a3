"""The float32 error of Winograd F(m x m, 3x3) for the forward, dL/dx and dL/dW, against im2col's:

    python -m benchmarks.winograd_error [--seeds 2]

#13 allows a Winograd variant only where its float32 error stays within 10x im2col's.  This
script measures the variants that would cut the backward's products further than F(2x2)'s
2.25x, so that the decision can be rerun rather than trusted:

  F(2x2)   points 0, 1, -1 (and infinity): what winograd.py computes (2.25x fewer products)
  F(3x3)   points 0, 1, -1 and one of 2, 1/2, -2, -1/2: 5x5 tiles, 3.24x fewer
  F(4x4)   points 0, 1, -1, 1/2, -2: what winograd4.py computes for the forward, 4x fewer

each for the forward, for dL/dx two ways (the forward run on dL/dy with the flipped kernel, as
winograd.py does, and the forward's transpose, B [U^T dM] B^T scattered back onto the
overlapping input tiles), and for dL/dW (G^T [sum over tiles dM V^T] G).  The Winograd code
here is NumPy (einsum over all tiles at once): a model of the kernels' arithmetic, not of
their speed; the test suite checks that it is exact in float64.  Error = max |r32 - r64| /
max |r64|, r64 computed by im2col in float64; the table gives each variant's error divided
by im2col's own float32 error on the same problem: the range over the shapes and seeds, and
the median.
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
VARIANTS = {"F(2x2)": (0, 1, -1), "F(4x4)": (0, 1, -1, Fraction(1, 2), -2)}
VARIANTS.update({f"F(3x3), {p}": (0, 1, -1, p)
                 for p in (2, Fraction(1, 2), -2, Fraction(-1, 2))})


def transforms(points, dtype):
    """(m, A^T, G, B^T) of F(m x m, 3x3) for ``points`` (m + 1 finite ones), in ``dtype``."""
    m = len(points) - 1
    return (m,) + tuple(t.astype(dtype) for t in matrices(points, m=m, r=3))


def _input_tiles(x, m, padding, tiles_h, tiles_w):
    """d[n, c, i, j] = the (m + 2) x (m + 2) tile of x_pad at rows m i.., columns m j..: a
    view of x padded by ``padding`` before and zeros after, as far as the last tile reads."""
    n, c, h, w = x.shape
    x_pad = np.zeros((n, c, m * tiles_h + 2, m * tiles_w + 2), x.dtype)
    x_pad[:, :, padding:padding + h, padding:padding + w] = x
    s = x_pad.strides
    return np.lib.stride_tricks.as_strided(
        x_pad, (n, c, tiles_h, tiles_w, m + 2, m + 2),
        (s[0], s[1], m * s[2], m * s[3], s[2], s[3]))


def _tile_counts(h, w, m, padding):
    oh, ow = h + 2 * padding - 2, w + 2 * padding - 2
    return oh, ow, -(-oh // m), -(-ow // m)


def forward(x, weight, points, padding=1):
    """y = the correlation of x with weight (O, C, 3, 3), by Winograd F(m x m, 3x3) in x's dtype:
    Y = A^T [ sum_c (G g G^T) * (B^T d B) ] A per tile."""
    m, a_t, g, b_t = transforms(points, x.dtype)
    n, c, h, w = x.shape
    o, k = weight.shape[0], m + 2
    oh, ow, th, tw = _tile_counts(h, w, m, padding)
    d = _input_tiles(x, m, padding, th, tw)
    v = np.einsum("ai,nctwij,bj->abcntw", b_t, d, b_t, optimize=True).reshape(k * k, c, -1)
    u = np.einsum("ai,ocij,bj->aboc", g, weight.astype(x.dtype), g).reshape(k * k, o, c)
    products = np.matmul(u, v.astype(x.dtype)).reshape(k, k, o, n, th, tw)
    y = np.einsum("ia,abontw,jb->notiwj", a_t, products, a_t, optimize=True)
    return y.reshape(n, o, th * m, tw * m)[:, :, :oh, :ow].astype(x.dtype)


def input_grad_flipped(grad_y, weight, points):
    """dL/dx (padding 1) as winograd.py computes it: the forward on dL/dy with the kernel
    flipped in both axes and its channel axes swapped."""
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return forward(grad_y, flipped, points, padding=1)


def input_grad_transposed(grad_y, weight, points, padding=1):
    """dL/dx as the forward's transpose: dM = A dY A^T per output tile, the products with U^T,
    then B [.] B^T, each (m + 2)-square result added onto the input tile it came from."""
    m, a_t, g, b_t = transforms(points, grad_y.dtype)
    n, o, oh, ow = grad_y.shape
    c, k = weight.shape[1], m + 2
    th, tw = -(-oh // m), -(-ow // m)
    gy = np.zeros((n, o, th * m, tw * m), grad_y.dtype)
    gy[:, :, :oh, :ow] = grad_y
    tiles = gy.reshape(n, o, th, m, tw, m).transpose(0, 1, 2, 4, 3, 5)
    dm = np.einsum("ai,notwij,bj->abontw", a_t.T, tiles, a_t.T, optimize=True)
    u = np.einsum("ai,ocij,bj->abco", g, weight.astype(grad_y.dtype), g).reshape(k * k, c, o)
    products = np.matmul(u, dm.reshape(k * k, o, -1).astype(grad_y.dtype))
    dv = np.einsum("ia,abcntw,jb->nctwij", b_t.T, products.reshape(k, k, c, n, th, tw), b_t.T,
                   optimize=True).astype(grad_y.dtype)
    h, w = oh + 2 - 2 * padding, ow + 2 - 2 * padding
    grad_pad = np.zeros((n, c, m * th + 2, m * tw + 2), grad_y.dtype)
    for i in range(th):                         # overlapping tiles: added, not assigned
        for j in range(tw):
            grad_pad[:, :, m * i:m * i + k, m * j:m * j + k] += dv[:, :, i, j]
    return grad_pad[:, :, padding:padding + h, padding:padding + w]


def weight_grad(grad_y, x, points, padding=1):
    """dL/dW = G^T [ sum over tiles (A dY A^T) * (B^T d B) ] G, the forward's adjoint."""
    m, a_t, g, b_t = transforms(points, x.dtype)
    n, c, h, w = x.shape
    o, k = grad_y.shape[1], m + 2
    oh, ow, th, tw = _tile_counts(h, w, m, padding)
    v = np.einsum("ai,nctwij,bj->abcntw", b_t, _input_tiles(x, m, padding, th, tw), b_t,
                  optimize=True).reshape(k * k, c, -1).astype(x.dtype)
    gy = np.zeros((n, o, th * m, tw * m), x.dtype)
    gy[:, :, :oh, :ow] = grad_y
    tiles = gy.reshape(n, o, th, m, tw, m).transpose(0, 1, 2, 4, 3, 5)
    dm = np.einsum("ai,notwij,bj->abontw", a_t.T, tiles, a_t.T, optimize=True)
    du = np.matmul(dm.reshape(k * k, o, -1).astype(x.dtype), v.transpose(0, 2, 1))
    return np.einsum("ai,aboc,bj->ocij", g, du.reshape(k, k, o, c), g).astype(x.dtype)


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
