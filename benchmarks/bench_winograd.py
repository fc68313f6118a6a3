"""Winograd F(2x2, 3x3) against im2col + GEMM, per conv direction and shape (the dispatch rule).

    python -m benchmarks.bench_winograd [--repeats 9]

For each shape (3x3, stride 1, padding 1, float32) and each of the three products (forward,
dL/dx, dL/dW), the Numba im2col kernels (kernels/cpu_numba.py) and the Winograd kernels
(kernels/winograd.py) run alternating in one process; the table gives the medians and
im2col's time / Winograd's time (above 1: Winograd is faster), and the same for the three
together ("layer"), which is what the rule decides on.  As in training, the forward keeps
what dL/dW reads again (im2col's col; Winograd keeps nothing, its dL/dW transforms x again).
The rule ``winograd.faster`` was read off this table.  Also printed: the float32 error of
each kernel against the float64 result.  Other shapes (quote them: ">" is a shell redirect):

    python -m benchmarks.bench_winograd --shapes "1x64x14->128" "8x64x16->64"
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse

import numpy as np

from benchmarks._common import alternate, header, median, ms, table

from tinynet.kernels import cpu_numba, scratch, winograd    # noqa: E402

SHAPES = [  # (N, C, H=W, O): the demo's / reference CNN's layers at batch 64, bench_conv's,
    # one-photo explanations (the demo's model at 56 px), VGG's
    (64, 3, 64, 32), (64, 32, 32, 64), (64, 64, 16, 128), (64, 128, 8, 256),
    (32, 32, 32, 64), (32, 64, 16, 128), (32, 128, 8, 256),
    (1, 64, 224, 64), (1, 256, 56, 256), (8, 16, 32, 16), (64, 256, 4, 256),
    (1, 64, 14, 128), (1, 128, 7, 256), (8, 64, 32, 64), (64, 48, 16, 96)]
GEOMETRY = ((1, 1), (1, 1), (1, 1), 1)          # stride, padding, dilation, groups


def problems(n, c, size, o):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, size, size), dtype=np.float32)
    w = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    g = rng.standard_normal((n, o, size, size), dtype=np.float32)
    return x, w, g


def calls(module, x, w, g):
    saved = module.conv2d_forward(x, w, *GEOMETRY, save=True)[1]
    return {"forward": lambda: module.conv2d_forward(x, w, *GEOMETRY, save=True)[0],
            "dL/dx": lambda: module.conv2d_backward_input(g, w, x.shape, *GEOMETRY),
            "dL/dW": lambda: module.conv2d_backward_weight(g, x, w.shape, *GEOMETRY, saved)}


def parse_shape(text):
    """'NxCxH->O' -> (N, C, H, O)"""
    left, o = text.split("->")
    return tuple(int(v) for v in left.split("x")) + (int(o),)


def float32_errors(n, c, size, o, modules=(cpu_numba, winograd)):
    """max |kernel(float32) - float64| / max |float64| for each module's forward."""
    x, w, g = problems(min(n, 8), c, min(size, 32), o)
    exact = cpu_numba.conv2d_forward(x.astype(np.float64), w.astype(np.float64), *GEOMETRY)[0]
    scale = np.abs(exact).max()
    return [np.abs(m.conv2d_forward(x, w, *GEOMETRY)[0] - exact).max() / scale
            for m in modules]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--shapes", nargs="+", type=parse_shape, default=SHAPES,
                        help="N x C x H -> O, e.g. 8x64x16->64 (default: the list above)")
    args = parser.parse_args(argv)
    header("conv 3x3 pad 1 float32: im2col (Numba + GEMM) vs Winograd F(2x2,3x3)")
    rows = []
    for shape in args.shapes:
        x, w, g = problems(*shape)
        scratch.release()                        # start from fresh memory
        im2col, wino = calls(cpu_numba, x, w, g), calls(winograd, x, w, g)
        row = ["x".join(map(str, shape[:3])) + f"->{shape[3]}"]
        total = {"im2col": 0.0, "winograd": 0.0}
        for direction in im2col:
            t = {k: median(v) for k, v in alternate(
                {"im2col": im2col[direction], "winograd": wino[direction]},
                repeats=args.repeats).items()}
            row += [f"{ms(t['im2col'])}/{ms(t['winograd'])}",
                    f"{t['im2col'] / t['winograd']:.2f}"]
            total = {k: total[k] + t[k] for k in total}
        row += [f"{total['im2col'] / total['winograd']:.2f}"]
        e_im2col, e_wino = float32_errors(*shape)
        row += [f"{e_im2col:.1e}", f"{e_wino:.1e}"]
        rows.append(row)
        print(" ".join(row), flush=True)
    print()
    table(rows, ["N x C x H -> O", "fwd ms i/w", "speed", "dx ms i/w", "speed",
                 "dW ms i/w", "speed", "layer", "f32 err im2col", "f32 err winograd"])
    print("\nspeed = im2col time / Winograd time (above 1: Winograd faster); "
          "error = max|y32 - y64| / max|y64|")


if __name__ == "__main__":
    main()
