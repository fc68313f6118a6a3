"""VGG-16 forward + backward at 224x224, batch 1, float32: tinynet vs PyTorch vs NumPy path.

    python -m benchmarks.bench_vgg16 [--repeats 3]

The network is torchvision's vgg16 layout (13 conv3x3 + ReLU, 5 max-pools, adaptive average
pool to 7x7, classifier 25088-4096-4096-1000) without the two Dropout layers, built here
from nn layers so the benchmark does not depend on tinynet.models.  Both frameworks get the
same weights.  One step: logits = model(x); cross_entropy(logits, label).backward().
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
from tinynet import kernels, nn                          # noqa: E402

CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
       512, 512, 512, "M"]


def build(mod):
    """VGG-16 from a module namespace with PyTorch's layer names (tinynet.nn or torch.nn)."""
    layers, c = [], 3
    for v in CFG:
        if v == "M":
            layers.append(mod.MaxPool2d(2))
        else:
            layers += [mod.Conv2d(c, v, 3, padding=1), mod.ReLU()]
            c = v
    layers += [mod.AdaptiveAvgPool2d(7), mod.Flatten(), mod.Linear(512 * 49, 4096), mod.ReLU(),
               mod.Linear(4096, 4096), mod.ReLU(), mod.Linear(4096, 1000)]
    return mod.Sequential(*layers)


def gflops_forward():
    """Multiply-adds x 2 of the conv and linear layers at 224x224."""
    total, c, size = 0, 3, 224
    for v in CFG:
        if v == "M":
            size //= 2
        else:
            total += 2 * v * c * 9 * size * size
            c = v
    total += 2 * (25088 * 4096 + 4096 * 4096 + 4096 * 1000)
    return total / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch = try_torch()
    header("VGG-16 forward+backward, 1x3x224x224, float32")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 224, 224), dtype=np.float32)
    label = np.array([3])

    model = build(nn)
    steps = {}
    if torch is not None:
        tmodel = build(torch.nn)
        model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
        tx, tl = torch.from_numpy(x), torch.from_numpy(label)

        def torch_step():
            tmodel.zero_grad()
            torch.nn.functional.cross_entropy(tmodel(tx), tl).backward()

    def tinynet_step():
        model.zero_grad()
        F.cross_entropy(model(tn.tensor(x)), label).backward()

    def numpy_step():
        with kernels.use("numpy"):
            tinynet_step()

    steps["tinynet"] = tinynet_step
    if torch is not None:
        steps["torch"] = torch_step
    steps["numpy"] = numpy_step
    t = {k: median(v) for k, v in alternate(steps, repeats=args.repeats).items()}
    gflop = 3 * gflops_forward()
    rows = [[k, ms(v), f"{gflop / v:.0f}", ratio(v, t["tinynet"])] for k, v in t.items()]
    table(rows, ["", "step ms", "GFLOP/s", "time vs tinynet"])


if __name__ == "__main__":
    main()
