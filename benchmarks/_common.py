"""What every benchmark shares: fair timing on a noisy machine, and printing the table.

Fairness rules (the machine this was written on has 2 cores that other work shares, and a
vCPU sometimes stalls for seconds):

* every contender runs in the same process, after a warm-up call of its own;
* runs ALTERNATE (tinynet, PyTorch, NumPy, tinynet, ...), so a slow spell hits all alike;
* each timed run is preceded by an untimed one of the same contender, so that what ran
  before it (PyTorch's threads still spinning) does not slow it (``alternate``'s settle);
* the table reports the MEDIAN of the runs, and ratios of medians.
"""
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:          # `python benchmarks/NAME.py` from a source checkout
    sys.path.insert(0, str(ROOT))


def try_torch(threads=2):
    """The torch module with ``threads`` intra-op threads, or None when not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def alternate(contenders, repeats=7, warmup=1, min_time=0.0, settle=True):
    """Time each callable ``repeats`` times, interleaved; returns {name: [seconds per call]}.

    ``min_time``: a sample calls its contender as many times as make up at least this many
    seconds (the count found after the warm-up, by doubling, as timeit's autorange does:
    a first call may include compiling), so that a sub-millisecond op is not timed by
    single calls, which one vCPU stall, or PyTorch's OpenMP threads still spinning after
    its own call, can double.

    ``settle``: before each sample, run the contender untimed as many times as the sample
    will.  Whatever ran just before slowed the next contender for about a sample's length:
    two copies of the same depthwise kernel alternated with PyTorch read 1.0x-1.25x apart,
    the slower one always the copy that ran right after PyTorch; with the settling runs
    0.95x-1.13x, and 0.97x-1.02x without PyTorch in the alternation (AMD EPYC Zen 4,
    2026-12-06).  Each sample then times its contender in the state a user's own loop
    would find it in, at twice the benchmark's time."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    loops = {name: _calls_lasting(fn, min_time) for name, fn in contenders.items()}
    times = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]   # rotate who goes first
        for name in order:
            fn, count = contenders[name], loops[name]
            if settle:
                for _ in range(count):
                    fn()
            start = time.perf_counter()
            for _ in range(count):
                fn()
            times[name].append((time.perf_counter() - start) / count)
    return times


def _calls_lasting(fn, seconds):
    """How many calls of ``fn`` take at least ``seconds`` (1 when seconds is 0)."""
    count = 1
    while seconds > 0:
        start = time.perf_counter()
        for _ in range(count):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
        count = max(2 * count, math.ceil(count * seconds / max(elapsed, 1e-9)))
    return count


def median(values):
    return statistics.median(values)


def table(rows, headers):
    """Print rows (lists of str) under headers, columns aligned."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths)))


def ms(seconds):
    return f"{seconds * 1e3:.1f}"


def ratio(numerator, denominator):
    return f"{numerator / denominator:.2f}x" if denominator else "-"


def cpu_name():
    """The CPU as /proc/cpuinfo names it, with its family and model and its widest vector
    instructions: "AMD EPYC" alone is both a Zen 3 without AVX-512 (family 25 model 1) and a
    Zen 4 with it (family 25 model 17), and the kernels' speed differs between them."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not key.strip():          # the first processor's block ends here
                    break
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or "?"
    flags = fields.get("flags", "").split()
    vectors = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')} "
            f"model {fields.get('model', '?')}, {vectors})")


def machine():
    """One line naming the machine and the library versions."""
    import numpy as np
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    core = openblas_core()
    parts = [f"{cpu_name()}, {cores} cores", f"python {platform.python_version()}",
             f"numpy {np.__version__}" + (f" (OpenBLAS's {core} kernels)" if core else "")]
    try:
        import numba
        parts.append(f"numba {numba.__version__}")
    except ImportError:
        pass
    if "torch" in sys.modules:
        parts.append(f"torch {sys.modules['torch'].__version__}")
    blas = [f"{k}={_shorter(v)}" for k, v in os.environ.items()
            if k.startswith(("OPENBLAS", "OMP_", "MKL_", "NUMBA_"))]
    if blas:
        parts.append("env: " + " ".join(blas))
    return "; ".join(parts)


def openblas_core():
    """The kernel set NumPy's OpenBLAS runs (tinynet.kernels.numba_threads.openblas_kernels)."""
    from tinynet.kernels.numba_threads import openblas_kernels
    return openblas_kernels()


def _shorter(value):
    """A long feature list (NUMBA_CPU_FEATURES: the host's ~100 LLVM features and
    tinynet/kernels/jit.py's +prefer-256-bit) as its count and last entry."""
    features = value.split(",")
    return value if len(features) <= 4 else f"<{len(features)} features, last {features[-1]}>"


def header(title):
    print(f"== {title}")
    print(machine())
    print()
