"""Winograd F(4x4, 3x3) against F(2x2, 3x3), forward, per shape (the dispatch rule).

    python -m benchmarks.bench_winograd4 [--repeats 9]

For each shape (3x3, stride 1, padding 1, float32) the forward of kernels/winograd.py and
of kernels/winograd4.py run alternating in one process; the table gives the medians, F(2x2)'s
time / F(4x4)'s (above 1: F(4x4) is faster), and the float32 error of im2col, F(2x2) and
F(4x4) against the float64 result (max |y32 - y64| / max |y64|), with F(4x4)'s as a multiple
of im2col's.  The rule ``winograd4.faster`` was read off this table.  Other shapes:

    python -m benchmarks.bench_winograd4 --shapes "1x64x14->128" "8x64x16->64"
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse

import numpy as np

from benchmarks._common import alternate, header, median, ms, table
from benchmarks.bench_winograd import GEOMETRY, float32_errors, parse_shape, problems

from tinynet.kernels import cpu_numba, scratch, winograd, winograd4    # noqa: E402

SHAPES = [  # (N, C, H=W, O): the demo's / reference CNN's layers, bench_conv's, VGG's,
    # one-photo explanations, small planes and odd sizes
    (64, 32, 32, 64), (64, 64, 16, 128), (64, 128, 8, 256), (64, 256, 4, 256),
    (32, 32, 32, 64), (32, 64, 16, 128), (32, 128, 8, 256),
    (1, 64, 224, 64), (1, 256, 56, 256), (1, 128, 112, 128), (1, 512, 28, 512),
    (1, 512, 14, 512), (8, 16, 32, 16), (8, 64, 32, 64), (64, 48, 16, 96),
    (1, 64, 14, 128), (1, 128, 7, 256), (2, 48, 40, 48), (16, 64, 6, 64),
    (4, 96, 13, 96), (1, 64, 32, 64)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--shapes", nargs="+", type=parse_shape, default=SHAPES,
                        help="N x C x H -> O, e.g. 8x64x16->64 (default: the list above)")
    args = parser.parse_args(argv)
    header("conv 3x3 pad 1 float32 forward: Winograd F(2x2,3x3) vs F(4x4,3x3)")
    rows = []
    for shape in args.shapes:
        x, w, _ = problems(*shape)
        scratch.release()                        # start from fresh memory
        t = {k: median(v) for k, v in alternate(
            {"F2": lambda: winograd.conv2d_forward(x, w, *GEOMETRY)[0],
             "F4": lambda: winograd4.conv2d_forward(x, w, *GEOMETRY)[0]},
            repeats=args.repeats).items()}
        rule = winograd4.preferred(x.shape, w.shape, GEOMETRY[1])
        e_im2col, e_f2, e_f4 = float32_errors(*shape, modules=(cpu_numba, winograd, winograd4))
        row = ["x".join(map(str, shape[:3])) + f"->{shape[3]}", ms(t["F2"]), ms(t["F4"]),
               f"{t['F2'] / t['F4']:.2f}", "F4" if rule else "F2",
               f"{e_im2col:.1e}", f"{e_f2:.1e}", f"{e_f4:.1e}", f"{e_f4 / e_im2col:.1f}x"]
        rows.append(row)
        print(" ".join(row), flush=True)
    print()
    table(rows, ["N x C x H -> O", "F2 ms", "F4 ms", "speed", "rule", "f32 err im2col",
                 "F2", "F4", "F4/im2col"])
    print("\nspeed = F(2x2)'s time / F(4x4)'s (above 1: F(4x4) faster); rule: which one "
          "'auto' picks; error = max|y32 - y64| / max|y64|")


if __name__ == "__main__":
    main()
