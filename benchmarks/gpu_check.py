"""One command for a machine with a GPU: correctness of every op on 'cuda', then speed.

    python -m benchmarks.gpu_check [--repeats 20]

1. Every op's output and input gradients on the GPU against the CPU, in float64 (random
   upstream gradient), printed as one table with the largest difference per op.
2. The reference CNN training step (benchmarks/bench_cnn.py) on the GPU: tinynet vs
   PyTorch CUDA when PyTorch has CUDA, in img/s, alternating runs, medians.

Without CuPy or a GPU it says so and exits 0.
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse

import numpy as np

from benchmarks._common import alternate, header, median, ms, table, try_torch

import tinynet as tn                                     # noqa: E402
import tinynet.functional as F                           # noqa: E402
from tinynet import backend, optim                       # noqa: E402

OPS = {
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, padding=1), [(2, 3, 8, 8), (4, 3, 3, 3), (4,)]),
    "conv2d stride/dilation/groups": (
        lambda x, w: F.conv2d(x, w, stride=2, padding=1, dilation=2, groups=2),
        [(2, 4, 9, 9), (6, 2, 3, 3)]),
    "conv2d depthwise": (lambda x, w: F.conv2d(x, w, padding=1, groups=4),
                         [(2, 4, 6, 6), (8, 1, 3, 3)]),
    "max_pool2d 2x2": (lambda x: F.max_pool2d(x, 2), [(2, 3, 8, 8)]),
    "max_pool2d 3x3 s1 p1": (lambda x: F.max_pool2d(x, 3, stride=1, padding=1), [(2, 3, 6, 6)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), [(2, 3, 7, 7)]),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (3, 2)), [(2, 3, 7, 5)]),
    "global_avg_pool2d": (F.global_avg_pool2d, [(2, 3, 4, 4)]),
    "linear": (F.linear, [(3, 4), (5, 4), (5,)]),
    "relu": (F.relu, [(3, 4)]),
    "leaky_relu": (F.leaky_relu, [(3, 4)]),
    "relu6": (lambda x: F.relu6(x * 4), [(3, 4)]),
    "sigmoid": (F.sigmoid, [(3, 4)]),
    "tanh": (F.tanh, [(3, 4)]),
    "softmax": (F.softmax, [(3, 4)]),
    "log_softmax": (F.log_softmax, [(3, 4)]),
    "mse_loss": (F.mse_loss, [(3, 4), (3, 4)]),
    "bce_with_logits": (lambda a, b: F.binary_cross_entropy_with_logits(a, F.sigmoid(b)),
                        [(3, 4), (3, 4)]),
    "interpolate bilinear": (lambda x: F.interpolate(x, size=(7, 5), mode="bilinear"),
                             [(2, 3, 4, 4)]),
    "elementwise math": (lambda a, b: (F.exp(a) * b + a / (1 + b * b) - F.sqrt(b * b + 1)),
                         [(3, 4), (3, 4)]),
    "matmul + reductions": (lambda a, b: (a @ b).mean(axis=0) + (a @ b).max(axis=1).sum(),
                            [(3, 4), (4, 3)]),
    "reshape/transpose/getitem": (lambda a: a.reshape(4, 3).T[1:, ::2], [(3, 4)]),
}


def check_op(name, fn, shapes):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in shapes]
    results = {}
    for device in ("cpu", "cuda"):
        inputs = [tn.tensor(a, requires_grad=True, device=device) for a in arrays]
        out = fn(*inputs)
        upstream = np.random.default_rng(1).standard_normal(out.shape)
        out.backward(backend.move(upstream, device))
        results[device] = [out.numpy()] + [backend.to_cpu(t.grad) for t in inputs]
    diff = max(float(np.max(np.abs(g - c))) if c.size else 0.0
               for c, g in zip(results["cpu"], results["cuda"]))
    return diff


def cnn_step_times(repeats, torch):
    from benchmarks.bench_cnn import data, tinynet_model, torch_model
    x, labels = data(64)
    model = tinynet_model().to("cuda")
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    tx, tl = tn.tensor(x, device="cuda"), backend.to_gpu(labels)
    cupy = backend.require_cupy()

    def tinynet_step():
        opt.zero_grad()
        F.cross_entropy(model(tx), tl).backward()
        opt.step()
        cupy.cuda.Device().synchronize()
    steps = {"tinynet (cupy)": tinynet_step}
    if torch is not None and torch.cuda.is_available():
        tmodel = torch_model(torch).cuda()
        topt = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
        ttx, ttl = torch.from_numpy(x).cuda(), torch.from_numpy(labels).cuda()

        def torch_step():
            topt.zero_grad()
            torch.nn.functional.cross_entropy(tmodel(ttx), ttl).backward()
            topt.step()
            torch.cuda.synchronize()
        steps["torch (cuda)"] = torch_step
    return {k: median(v) for k, v in alternate(steps, repeats=repeats, warmup=2).items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    if not tn.cuda_available():
        print("gpu_check: no GPU here (CuPy missing or no CUDA device): nothing to check.")
        print("On a machine with an NVIDIA GPU: pip install -e '.[gpu]' and run again.")
        return 0
    torch = try_torch()
    header("GPU check: every op on 'cuda' vs CPU (float64), then the reference CNN step")
    rows, failed = [], 0
    for name, (fn, shapes) in OPS.items():
        try:
            diff = check_op(name, fn, shapes)
            ok = diff < 1e-8
            rows.append([name, f"{diff:.1e}", "ok" if ok else "MISMATCH"])
        except Exception as exc:          # report every op, do not stop at the first
            ok = False
            rows.append([name, "-", f"ERROR {type(exc).__name__}: {exc}"[:60]])
        failed += not ok
    table(rows, ["op (value and gradients)", "max |gpu - cpu|", "status"])
    print()
    times = cnn_step_times(args.repeats, torch)
    table([[k, ms(v), f"{64 / v:.0f}"] for k, v in times.items()],
          ["reference CNN step, batch 64", "ms", "img/s"])
    if len(times) == 2:
        a, b = times.values()
        print(f"\ntinynet / PyTorch CUDA throughput: {b / a:.2f}x")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
