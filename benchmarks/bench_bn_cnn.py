"""The ImageNet-subset demo's training step (conv-BN-ReLU): tinynet vs PyTorch, and the old paths.

    python -m benchmarks.bench_bn_cnn [--repeats 15] [--batch 64] [--profile]

Model (float32, batch 64 of 3x64x64 images, 10 classes):
    4 x [conv3x3 (no bias) -> BatchNorm2d -> ReLU], channels 32-64-128-256, a 2x2 max-pool
    after the first three, global average pool, linear 256->10, cross-entropy,
    SGD (lr 0.01, Nesterov momentum 0.9, weight decay 5e-4).
One step = forward, backward, optimizer step, with the same initial weights everywhere.

Contenders, alternating in one process (medians):
    tinynet          the default kernels ('auto')
    old BatchNorm    'auto', but BatchNorm through its plain NumPy code (the path before the
                     Numba kernels of kernels/numba_norm.py)
    winograd         kernels.use('winograd'): Winograd F(2x2, 3x3) for the 3x3 convolutions
                     ('auto' picks the Numba im2col kernels: see bench_winograd)
    torch            the same model in PyTorch CPU

On a crowded machine, one thread each compares more steadily:
    OPENBLAS_NUM_THREADS=1 python -m benchmarks.bench_bn_cnn --torch-threads 1

--profile runs cProfile over a few tinynet steps and prints where the time goes.
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse
import contextlib

import numpy as np

from benchmarks._common import alternate, header, median, ms, ratio, table, try_torch

import tinynet as tn                                     # noqa: E402
import tinynet.functional as F                           # noqa: E402
from tinynet import kernels, nn, optim                   # noqa: E402

CHANNELS = (3, 32, 64, 128, 256)


def bn_cnn(layers, num_classes=10):
    modules = []
    for i in range(4):
        modules += [layers.Conv2d(CHANNELS[i], CHANNELS[i + 1], 3, padding=1, bias=False),
                    layers.BatchNorm2d(CHANNELS[i + 1]), layers.ReLU()]
        if i < 3:
            modules.append(layers.MaxPool2d(2))
    modules += [layers.AdaptiveAvgPool2d(1), layers.Flatten(),
                layers.Linear(CHANNELS[-1], num_classes)]
    return layers.Sequential(*modules)


def data(batch):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((batch, 3, 64, 64), dtype=np.float32),
            rng.integers(0, 10, size=batch))


SGD_ARGS = dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)


def tinynet_step_fn(batch, weights, setting=None):
    """One training step; ``setting``: None (auto), 'old-bn' or a kernels.use name."""
    model = bn_cnn(nn)
    if weights is not None:
        model.load_state_dict(weights)
    opt = optim.SGD(model.parameters(), **SGD_ARGS)
    x, labels = data(batch)

    def step():
        with _setting(setting):
            opt.zero_grad()
            loss = F.cross_entropy(model(tn.tensor(x)), labels)
            loss.backward()
            opt.step()
    return step


@contextlib.contextmanager
def _setting(setting):
    if setting is None:
        yield
    elif setting == "old-bn":                 # BatchNorm's NumPy code, convs as in 'auto'
        fast = kernels.numba_module
        kernels.numba_module = lambda name, array: None
        try:
            yield
        finally:
            kernels.numba_module = fast
    else:
        with kernels.use(setting):
            yield


def torch_step_fn(torch, batch):
    model = bn_cnn(torch.nn)
    opt = torch.optim.SGD(model.parameters(), **SGD_ARGS)
    x, labels = data(batch)
    tx, tl = torch.from_numpy(x), torch.from_numpy(labels)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(tx), tl).backward()
        opt.step()
    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return step, weights


def profile(step, steps=5):
    import cProfile
    import pstats
    step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    print(f"cProfile of {steps} tinynet steps (tottime per step, ms):")
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:25]
    for (file, line, name), (_, calls, tottime, cumtime, _) in rows:
        where = f"{os.path.basename(file)}:{line}({name})"
        print(f"  {tottime / steps * 1e3:8.1f}  {cumtime / steps * 1e3:8.1f} cum  "
              f"{calls // steps:5d} calls  {where}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--torch-threads", type=int, default=2,
                        help="PyTorch intra-op threads (match OPENBLAS_NUM_THREADS)")
    args = parser.parse_args(argv)
    torch = try_torch(args.torch_threads)
    steps, weights = {}, None
    if torch is not None:
        steps["torch"], weights = torch_step_fn(torch, args.batch)
    if args.profile:
        return profile(tinynet_step_fn(args.batch, weights))
    header(f"conv-BN-ReLU CNN training step, batch {args.batch} of 3x64x64, float32")
    steps = {"tinynet": tinynet_step_fn(args.batch, weights),
             "old BatchNorm": tinynet_step_fn(args.batch, weights, "old-bn"),
             "winograd": tinynet_step_fn(args.batch, weights, "winograd"), **steps}
    times = {k: median(v) for k, v in alternate(steps, repeats=args.repeats).items()}
    rows = [[name, ms(s), f"{args.batch / s:.0f}",
             ratio(times["torch"], s) if "torch" in times else "-"]
            for name, s in times.items()]
    table(rows, ["", "step ms", "img/s", "throughput vs torch"])


if __name__ == "__main__":
    main()
