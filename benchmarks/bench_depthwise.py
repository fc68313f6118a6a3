"""Depthwise 3x3 convolution (MobileNet v1 0.25 at 128 px, batch 32): tinynet vs PyTorch.

    python -m benchmarks.bench_depthwise [--repeats 9] [--min-time 0.03]

For each layer shape, forward alone (no gradients) and forward + backward (x and w require
gradients), float32, alternating in one process, medians.  "old" is tinynet with the
general depthwise loops of kernels/cpu_numba.py (the path before kernels/numba_depthwise.py).
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse
import contextlib

import numpy as np

from benchmarks._common import alternate, header, median, table, try_torch

import tinynet as tn                                     # noqa: E402
import tinynet.functional as F                           # noqa: E402
from tinynet.kernels import numba_depthwise              # noqa: E402

SHAPES = [  # (N, C, H=W, stride): MobileNet v1 0.25's depthwise layers at 128 px
    (32, 8, 64, 1), (32, 16, 64, 2), (32, 32, 32, 1), (32, 32, 32, 2), (32, 64, 16, 1),
    (32, 64, 16, 2), (32, 128, 8, 1), (32, 128, 8, 2), (32, 256, 4, 1)]


@contextlib.contextmanager
def old_loops(active):
    """While active, numba_depthwise declines every shape: cpu_numba's loops run."""
    applies = numba_depthwise.applies
    if active:
        numba_depthwise.applies = lambda *args: False
    try:
        yield
    finally:
        numba_depthwise.applies = applies


def contenders(n, c, size, stride, torch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, size, size), dtype=np.float32)
    w = rng.standard_normal((c, 1, 3, 3), dtype=np.float32)
    out = (size + 2 - 3) // stride + 1
    g = rng.standard_normal((n, c, out, out), dtype=np.float32)

    def tinynet(backward, old=False):
        # leaves made once, as on PyTorch's side (tn.tensor copies its array: 1-2 ms here)
        xt, wt = tn.tensor(x, requires_grad=backward), tn.tensor(w, requires_grad=backward)

        def step():
            with old_loops(old):
                xt.grad = wt.grad = None
                y = F.conv2d(xt, wt, stride=stride, padding=1, groups=c)
                if backward:
                    y.backward(g)
        return step

    tx, tw = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w))
    tg = torch.from_numpy(g)

    def torch_forward():
        with torch.no_grad():
            torch.nn.functional.conv2d(tx, tw, stride=stride, padding=1, groups=c)

    def torch_step():
        tx.grad = tw.grad = None
        torch.nn.functional.conv2d(tx, tw, stride=stride, padding=1, groups=c).backward(tg)
    return {"fwd": tinynet(False), "fwd old": tinynet(False, True), "fwd torch": torch_forward,
            "step": tinynet(True), "step old": tinynet(True, True), "step torch": torch_step}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=0.03,
                        help="seconds of calls per sample (many calls of a sub-ms layer)")
    args = parser.parse_args(argv)
    torch = try_torch(args.torch_threads)
    if torch is None:
        print("PyTorch is not installed: nothing to compare with")
        return
    header("depthwise conv 3x3 pad 1, float32 (speed = torch time / tinynet time)")
    rows = []
    for n, c, size, stride in SHAPES:
        t = {k: median(v) for k, v in alternate(contenders(n, c, size, stride, torch),
                                                 repeats=args.repeats,
                                                 min_time=args.min_time).items()}
        rows.append([f"{n}x{c}x{size}x{size} s{stride}",
                     f"{t['fwd torch'] / t['fwd']:.2f}x", f"{t['fwd torch'] / t['fwd old']:.2f}x",
                     f"{t['step torch'] / t['step']:.2f}x",
                     f"{t['step torch'] / t['step old']:.2f}x"])
        print(" ".join(rows[-1]), flush=True)
    print()
    table(rows, ["shape", "fwd speed", "old fwd", "fwd+bwd speed", "old fwd+bwd"])


if __name__ == "__main__":
    main()
