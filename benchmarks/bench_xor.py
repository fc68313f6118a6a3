"""Per-step overhead on a tiny model: a 2-8-2 MLP on XOR, 2,000 full-batch SGD steps.

    python -m benchmarks.bench_xor [--repeats 5] [--steps 2000]

Model: Linear(2, 8) -> tanh -> Linear(8, 2) -> cross-entropy over the 4 XOR points,
SGD lr 0.5, float32, the same initial weights everywhere.  With 4 examples the arithmetic
is nothing; the time is the framework's per-op bookkeeping (building the graph, walking
it backward, the optimizer loop).  Contenders: tinynet (nn + optim), PyTorch (2 threads),
and the same network written by hand in plain NumPy (forward and backward as four lines
each: the floor any framework is measured against).
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse

import numpy as np

from benchmarks._common import alternate, header, median, ratio, table, try_torch

import tinynet as tn                                     # noqa: E402
import tinynet.functional as F                           # noqa: E402
from tinynet import nn, optim                            # noqa: E402

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
LABELS = np.array([0, 1, 1, 0])
LR = 0.5


def initial_weights():
    rng = np.random.default_rng(0)
    return {"0.weight": rng.uniform(-1, 1, (8, 2)).astype(np.float32),
            "0.bias": rng.uniform(-1, 1, 8).astype(np.float32),
            "2.weight": rng.uniform(-1, 1, (2, 8)).astype(np.float32),
            "2.bias": rng.uniform(-1, 1, 2).astype(np.float32)}


def tinynet_run(steps):
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    model.load_state_dict(initial_weights())
    opt = optim.SGD(model.parameters(), lr=LR)
    x = tn.tensor(X)
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), LABELS)
        loss.backward()
        opt.step()
    return float(loss.item())


def torch_run(torch, steps):
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in initial_weights().items()})
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    x, labels = torch.from_numpy(X), torch.from_numpy(LABELS)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
    return float(loss.item())


def numpy_run(steps):
    """The same network and update by hand: forward, softmax cross-entropy, backward."""
    w = initial_weights()
    w1, b1, w2, b2 = w["0.weight"], w["0.bias"], w["2.weight"], w["2.bias"]
    n = len(X)
    onehot = np.eye(2, dtype=np.float32)[LABELS]
    for _ in range(steps):
        h = np.tanh(X @ w1.T + b1)
        z = h @ w2.T + b2
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.log(p[np.arange(n), LABELS]).mean()
        dz = (p - onehot) / n
        dh = (dz @ w2) * (1 - h * h)
        w2 = w2 - LR * (dz.T @ h)
        b2 = b2 - LR * dz.sum(axis=0)
        w1 = w1 - LR * (dh.T @ X)
        b1 = b1 - LR * dh.sum(axis=0)
    return float(loss)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args(argv)
    torch = try_torch()
    header(f"XOR 2-8-2 MLP, {args.steps} full-batch SGD steps, float32")
    runs = {"tinynet": lambda: tinynet_run(args.steps)}
    if torch is not None:
        runs["torch"] = lambda: torch_run(torch, args.steps)
    runs["numpy (by hand)"] = lambda: numpy_run(args.steps)
    losses = {k: f() for k, f in runs.items()}
    t = {k: median(v) for k, v in alternate(runs, repeats=args.repeats, warmup=0).items()}
    rows = [[k, f"{t[k]:.3f}", f"{t[k] / args.steps * 1e6:.0f}", f"{losses[k]:.4f}",
             ratio(t[k], t["tinynet"])] for k in runs]
    table(rows, ["", "seconds", "us/step", "final loss", "time vs tinynet"])
    print(f"\ntinynet / plain NumPy time: {t['tinynet'] / t['numpy (by hand)']:.2f}x "
          "(target: at most 3x)")
    if torch is not None:
        print(f"tinynet / PyTorch time:     {t['tinynet'] / t['torch']:.2f}x "
              "(target: below 1x)")


if __name__ == "__main__":
    main()
