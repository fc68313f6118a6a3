"""The reference CNN training step: tinynet vs PyTorch vs the NumPy path (img/s, memory).

    python -m benchmarks.bench_cnn [--repeats 9] [--batch 64]

Model (float32, batch 64 of 3x64x64 images, 10 classes):
    conv3x3(3->32) ReLU maxpool2, conv3x3(32->64) ReLU maxpool2, conv3x3(64->128) ReLU
    maxpool2, conv3x3(128->256) ReLU, global average pool, linear 256->10,
    cross-entropy, SGD (lr 0.01, momentum 0.9).
One step = forward, backward, optimizer step, with the same initial weights in both.

Peak memory is measured in a fresh subprocess per framework: the high-water mark of the
resident set (VmHWM) during 2 warm-up steps on a batch of 8 and 4 steps on the real batch,
minus the resident set before the first, once the models and the batches exist
(``rss_peak_mb``). That includes what the first steps load: tinynet's compiled Numba
kernels from their cache, about 170 MiB (PyTorch loads most of its kernels at import). So
two more figures: the same peak minus the resident set after the warm-up
(``after_warm_up_mb``: the real batch's step, most code loaded), and the whole process's
peak, the libraries included. For tinynet also the tracemalloc peak of one more step's
NumPy allocations, which is exact.
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse
import json
import resource
import subprocess

import numpy as np

from benchmarks._common import (ROOT, alternate, header, median, ms, ratio, table,
                                try_torch)

import tinynet as tn                                     # noqa: E402
import tinynet.functional as F                           # noqa: E402
from tinynet import kernels, models, optim               # noqa: E402

def tinynet_model():
    return models.reference_cnn()


def torch_model(torch):
    return models.reference_cnn(layers=torch.nn)      # the same modules, PyTorch's


def data(batch):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((batch, 3, 64, 64), dtype=np.float32),
            rng.integers(0, 10, size=batch))


def tinynet_step_fn(batch, weights=None):
    model = tinynet_model()
    if weights is not None:
        model.load_state_dict(weights)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, labels = data(batch)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(tn.tensor(x)), labels)
        loss.backward()
        opt.step()
        return loss
    return step


def torch_step_fn(torch, batch):
    model = torch_model(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, labels = data(batch)
    tx, tl = torch.from_numpy(x), torch.from_numpy(labels)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(tx), tl)
        loss.backward()
        opt.step()
        return loss
    return step, {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _reset_peak_rss():
    """Start the kernel's high-water mark of the resident set (VmHWM) again from the
    current one; True where Linux allows it (writing 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes():
    """VmHWM: this process's peak resident set since it started or since _reset_peak_rss.
    (Not getrusage's ru_maxrss: Linux carries that over from the parent, so a subprocess
    started by a large parent reports the parent's size: this benchmark's RSS figures up
    to 2026-12-06 came out 300-480 MB too high that way, and their ratio meant little.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


WARM_UP_BATCH = 8


def measure_memory(framework, batch):
    """Run in a subprocess: print {"rss_peak_mb": ..., "tracemalloc_peak_mb": ...}."""
    result = {}
    if framework == "torch":
        step, _ = torch_step_fn(try_torch(), batch)
        warm_up, _ = torch_step_fn(try_torch(), WARM_UP_BATCH)
    else:
        step = tinynet_step_fn(batch)
        warm_up = tinynet_step_fn(WARM_UP_BATCH)
    made = _rss_bytes()                     # the models and the batches exist, no step yet
    _reset_peak_rss()
    for _ in range(2):
        warm_up()
    loaded = _rss_bytes()
    for _ in range(4):
        step()
    result["rss_peak_mb"] = max(_peak_rss_bytes() - made, 0) / 2**20
    result["after_warm_up_mb"] = max(_peak_rss_bytes() - loaded, 0) / 2**20
    result["process_peak_mb"] = _peak_rss_bytes() / 2**20     # with the libraries imported
    if framework == "tinynet":              # after the RSS: tracemalloc costs memory itself
        import tracemalloc
        tracemalloc.start()
        step()
        result["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    print(json.dumps(result))


def memory_of(framework, batch):
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_cnn", "--memory", framework,
                          "--batch", str(batch)], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--memory", choices=["tinynet", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory:
        return measure_memory(args.memory, args.batch)

    torch = try_torch()
    header(f"reference CNN training step, batch {args.batch} of 3x64x64, float32")
    steps, weights = {}, None
    if torch is not None:
        steps["torch"], weights = torch_step_fn(torch, args.batch)
    steps = {"tinynet": tinynet_step_fn(args.batch, weights), **steps}
    numpy_step = tinynet_step_fn(args.batch, weights)

    def numpy_path():
        with kernels.use("numpy"):
            numpy_step()
    steps["numpy"] = numpy_path
    times = {k: median(v) for k, v in alternate(steps, repeats=args.repeats).items()}

    rows = []
    for name, seconds in times.items():
        rows.append([name, ms(seconds), f"{args.batch / seconds:.0f}",
                     ratio(args.batch / seconds, args.batch / times["torch"])
                     if "torch" in times else "-"])
    table(rows, ["", "step ms", "img/s", "throughput vs torch"])

    print("\npeak memory (fresh subprocess each, MiB; see the docstring):")
    mem = {"tinynet": memory_of("tinynet", args.batch)}
    if torch is not None:
        mem["torch"] = memory_of("torch", args.batch)
    for name, m in mem.items():
        print(f"  {name:<8} " + ", ".join(f"{k} {v:.0f}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in m.items()))
    if "torch" in mem and "rss_peak_mb" in mem["torch"] and "rss_peak_mb" in mem["tinynet"]:
        ours, theirs = mem["tinynet"], mem["torch"]
        print(f"  tinynet / torch (RSS growth): "
              f"{ours['rss_peak_mb'] / max(theirs['rss_peak_mb'], 1e-9):.2f}x; "
              f"(after the warm-up): "
              f"{ours['after_warm_up_mb'] / max(theirs['after_warm_up_mb'], 1e-9):.2f}x; "
              f"(whole process): "
              f"{ours['process_peak_mb'] / max(theirs['process_peak_mb'], 1e-9):.2f}x")


if __name__ == "__main__":
    main()
