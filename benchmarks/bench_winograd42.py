"""Winograd F(4x2, 3x3) against F(2x2, 3x3) for dL/dx, dL/dW and the forward (the dispatch rule).

    python -m benchmarks.bench_winograd42 [--repeats 7]

For each shape (3x3, stride 1, padding 1, float32) and each direction, kernels/winograd.py's
F(2x2) and kernels/winograd42.py's F(4x2) run alternating in one process, each as training
runs it: F(2x2)'s dL/dx from the kernel transform its forward kept, F(4x2)'s transforming
the flipped kernel itself; dL/dW with dL/db.  The table gives the medians, F(2x2)'s time /
F(4x2)'s (above 1: F(4x2) is faster) and which one the rule ``winograd42.preferred`` picks;
the forward's column is "-" where 'auto' runs F(4x4) (winograd4.preferred).  Also printed:
dL/dx's float32 error as a multiple of im2col's.  Other shapes:

    python -m benchmarks.bench_winograd42 --shapes "1x64x14->128" "8x64x16->64"
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse

import numpy as np

from benchmarks._common import alternate, header, median, ms, table
from benchmarks.bench_winograd import GEOMETRY, SHAPES as WINOGRAD_SHAPES, parse_shape, problems

from tinynet.kernels import cpu_numba, scratch, winograd, winograd4, winograd42  # noqa: E402

SHAPES = WINOGRAD_SHAPES + [  # and planes F(4x2)'s tiles cover badly, VGG's, wide batches
    (16, 64, 6, 64), (4, 96, 13, 96), (1, 128, 112, 128), (1, 512, 28, 512), (1, 512, 14, 512),
    (64, 256, 8, 256)]


def calls(x, w, g):
    """{direction: (F(2x2)'s call, F(4x2)'s call)}"""
    u = winograd.kernel_transform(w, keep=True)          # what F(2x2)'s forward keeps
    out = {"dL/dx": (lambda: winograd._input_grad(g, u, GEOMETRY[1]),
                     lambda: winograd42.conv2d_backward_input(g, w, x.shape, *GEOMETRY)),
           "dL/dW": (lambda: winograd.conv2d_backward(g, x, w, *GEOMETRY, None, False, True, True),
                     lambda: winograd42.conv2d_backward(g, x, w, *GEOMETRY, None, False, True,
                                                        True))}
    if not winograd4.preferred(x.shape, w.shape, GEOMETRY[1]):
        out["forward"] = (lambda: winograd.conv2d_forward(x, w, *GEOMETRY)[0],
                          lambda: winograd42.conv2d_forward(x, w, *GEOMETRY)[0])
    return out


def input_grad_error(n, c, size, o):
    """dL/dx's max |float32 - float64| / max |float64|, F(4x2)'s as a multiple of im2col's."""
    x, w, g = problems(min(n, 8), c, min(size, 32), o)
    exact = cpu_numba.conv2d_backward_input(g.astype(np.float64), w.astype(np.float64), x.shape,
                                            *GEOMETRY)
    errors = [np.abs(m.conv2d_backward_input(g, w, x.shape, *GEOMETRY) - exact).max()
              for m in (cpu_numba, winograd42)]
    return errors[1] / errors[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--shapes", nargs="+", type=parse_shape, default=SHAPES,
                        help="N x C x H -> O, e.g. 8x64x16->64 (default: the list above)")
    args = parser.parse_args(argv)
    header("conv 3x3 pad 1 float32: Winograd F(2x2,3x3) vs F(4x2,3x3), per direction")
    rows = []
    for shape in args.shapes:
        x, w, g = problems(*shape)
        scratch.release()                        # start from fresh memory
        row = ["x".join(map(str, shape[:3])) + f"->{shape[3]}"]
        rule = "F42" if winograd42.preferred(x.shape, w.shape, GEOMETRY[1]) else "F22"
        for f22, f42 in calls(x, w, g).values():
            t = {k: median(v) for k, v in alternate({"F22": f22, "F42": f42},
                                                    repeats=args.repeats, min_time=0.03).items()}
            row += [ms(t["F22"]), ms(t["F42"]), f"{t['F22'] / t['F42']:.2f}", rule]
        row += ["-"] * (13 - len(row))
        row.append(f"{input_grad_error(*shape):.1f}x")
        rows.append(row)
        print(" ".join(row), flush=True)
    print()
    table(rows, ["N x C x H -> O", "dx F22", "F42", "speed", "rule", "dW F22", "F42", "speed",
                 "rule", "fwd F22", "F42", "speed", "rule", "dx err/im2col"])
    print("\nms; speed = F(2x2)'s time / F(4x2)'s (above 1: F(4x2) faster); rule: which one "
          "'auto' picks; error = max|dx32 - dx64|, F(4x2)'s / im2col's")


if __name__ == "__main__":
    main()
