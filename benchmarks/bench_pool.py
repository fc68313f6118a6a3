"""max-pool 2x2 (stride 2) forward + backward at (32, 64, 32, 32), float32:
tinynet vs PyTorch vs the NumPy path.

    python -m benchmarks.bench_pool [--repeats 15]
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse

import numpy as np

from benchmarks._common import alternate, header, median, ms, ratio, table, try_torch

import tinynet as tn                                     # noqa: E402
import tinynet.functional as F                           # noqa: E402
from tinynet import kernels                              # noqa: E402

SHAPES = [(32, 64, 32, 32)]


def contenders(shape, torch, op="max"):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    g = rng.standard_normal(shape[:2] + (shape[2] // 2, shape[3] // 2), dtype=np.float32)
    pool = F.max_pool2d if op == "max" else F.avg_pool2d

    def tinynet_step():
        xt = tn.tensor(x, requires_grad=True)
        pool(xt, 2).backward(g)

    def numpy_step():
        with kernels.use("numpy"):
            tinynet_step()

    out = {"tinynet": tinynet_step}
    if torch is not None:
        tx, tg = torch.from_numpy(x.copy()).requires_grad_(), torch.from_numpy(g)
        tpool = (torch.nn.functional.max_pool2d if op == "max"
                 else torch.nn.functional.avg_pool2d)

        def torch_step():
            tx.grad = None
            tpool(tx, 2).backward(tg)
        out["torch"] = torch_step
    out["numpy"] = numpy_step
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    torch = try_torch()
    header("2x2 pooling, stride 2, float32, forward+backward (median of alternating runs)")
    rows = []
    for shape in SHAPES:
        for op in ("max", "avg"):
            t = {k: median(v) for k, v in
                 alternate(contenders(shape, torch, op), repeats=args.repeats).items()}
            tt = t.get("torch")
            rows.append([f"{op} {'x'.join(map(str, shape))}", ms(t["tinynet"]),
                         ms(tt) if tt else "-", ms(t["numpy"]),
                         ratio(t["tinynet"], tt) if tt else "-",
                         ratio(t["numpy"], t["tinynet"])])
    table(rows, ["pool", "tinynet ms", "torch ms", "numpy ms", "tinynet/torch time",
                 "speed vs numpy"])
    print("\ntinynet/torch time: below 1.5x meets the target")


if __name__ == "__main__":
    main()
