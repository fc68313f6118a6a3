"""conv2d forward + backward (3x3, padding 1, float32): tinynet vs PyTorch vs the NumPy path.

    python -m benchmarks.bench_conv [--repeats 7]

Each step: y = conv2d(x, w, b); y.backward(g), with x, w and b all requiring gradients, so
each step computes y, dL/dx, dL/dw and dL/db.  GFLOP/s counts 3 x 2 N O C KH KW OH OW (the
forward product and the two backward ones).  "numpy" is tinynet with
tinynet.kernels.use("numpy"): the array-generic im2col path, no Numba.
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse

import numpy as np

from benchmarks._common import (alternate, header, median, ms, ratio, table, try_torch)

import tinynet as tn                                     # noqa: E402
import tinynet.functional as F                           # noqa: E402
from tinynet import kernels                              # noqa: E402

SHAPES = [  # (N, C, H=W, O)
    (32, 3, 64, 32), (32, 32, 32, 64), (32, 64, 16, 128), (32, 128, 8, 256),
    (1, 64, 224, 64), (1, 256, 56, 256)]


def contenders(n, c, size, o, torch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, size, size), dtype=np.float32)
    w = (rng.standard_normal((o, c, 3, 3), dtype=np.float32) / np.sqrt(9 * c)).astype(np.float32)
    b = np.zeros(o, np.float32)
    g = rng.standard_normal((n, o, size, size), dtype=np.float32)

    xt, wt, bt = (tn.tensor(a, requires_grad=True) for a in (x, w, b))

    def tinynet_step():                  # as PyTorch's below: the tensors made once
        xt.grad = wt.grad = bt.grad = None
        F.conv2d(xt, wt, bt, padding=1).backward(g)

    def numpy_step():
        with kernels.use("numpy"):
            tinynet_step()

    out = {"tinynet": tinynet_step}
    if torch is not None:
        tx, tw, tb = (torch.from_numpy(a.copy()).requires_grad_() for a in (x, w, b))
        tg = torch.from_numpy(g)

        def torch_step():
            tx.grad = tw.grad = tb.grad = None
            torch.nn.functional.conv2d(tx, tw, tb, padding=1).backward(tg)
        out["torch"] = torch_step
    out["numpy"] = numpy_step
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    torch = try_torch()
    header("conv2d 3x3 pad 1, float32, forward+backward (median of alternating runs)")
    rows = []
    for n, c, size, o in SHAPES:
        x_shape, w_shape, geometry = (n, c, size, size), (o, c, 3, 3), ((1, 1), (1, 1), (1, 1), 1)
        chosen = "/".join(dict.fromkeys(   # the forward's module, and the backward's if another
            kernels.choose_conv(name, np.empty(0, np.float32), x_shape, w_shape,
                                *geometry).__module__.rsplit(".", 1)[-1]
            for name in ("conv2d_forward", "conv2d_backward_input")))
        times = alternate(contenders(n, c, size, o, torch), repeats=args.repeats)
        t = {k: median(v) for k, v in times.items()}
        gflop = 3 * 2 * n * o * c * 9 * size * size / 1e9
        tt = t.get("torch")
        rows.append([f"{n}x{c}x{size}x{size}->{o}", chosen,
                     ms(t["tinynet"]), f"{gflop / t['tinynet']:.0f}",
                     ms(tt) if tt else "-", f"{gflop / tt:.0f}" if tt else "-",
                     ms(t["numpy"]), f"{gflop / t['numpy']:.0f}",
                     ratio(tt, t["tinynet"]) if tt else "-",
                     ratio(t["numpy"], t["tinynet"])])
    table(rows, ["shape", "kernel", "tinynet ms", "GF/s", "torch ms", "GF/s", "numpy ms", "GF/s",
                 "speed vs torch", "speed vs numpy"])
    print("\nspeed vs X = X's time / tinynet's time (above 1: tinynet is faster); kernel: "
          "the modules tinynet.kernels chose under 'auto', forward/backward where they differ "
          "(cpu_numba: im2col + GEMM)")


if __name__ == "__main__":
    main()
