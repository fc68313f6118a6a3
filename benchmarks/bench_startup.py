"""Start-up costs, each measured in a fresh subprocess:

    python -m benchmarks.bench_startup [--repeats 3]

* ``import tinynet`` (target < 0.5 s; Numba must not be imported, let alone compile);
* the first conv2d call (forward + backward, float32) of a fresh process with an EMPTY Numba
  cache (everything it needs is compiled: target < 3 s), then the first max-pool call, and
* the same with the cache that run left behind (kernels loaded from disk: target < 0.5 s).

The cold run uses a temporary NUMBA_CACHE_DIR so the project's own cache is not touched.
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse
import json
import statistics
import subprocess
import tempfile

from benchmarks._common import ROOT, header

IMPORT = """
import json, sys, time
t = time.perf_counter()
import tinynet
print(json.dumps({"import_s": time.perf_counter() - t, "numba_imported": "numba" in sys.modules}))
"""

FIRST_CALL = """
import json, time
import numpy as np
import tinynet as tn
import tinynet.functional as F
x = tn.tensor(np.random.rand(8, 16, 32, 32).astype(np.float32), requires_grad=True)
w = tn.tensor(np.random.rand(32, 16, 3, 3).astype(np.float32), requires_grad=True)
t = time.perf_counter()
F.conv2d(x, w, padding=1).sum().backward()
conv = time.perf_counter() - t
t = time.perf_counter()
F.max_pool2d(F.conv2d(x, w, padding=1), 2).sum().backward()
pool = time.perf_counter() - t
t = time.perf_counter()
F.max_pool2d(F.conv2d(x, w, padding=1), 2).sum().backward()
print(json.dumps({"first_conv_s": conv, "then_first_pool_s": pool,
                  "second_call_s": time.perf_counter() - t}))
"""


def run(code, env=None):
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, **(env or {})})
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    header("start-up (fresh subprocesses, median of runs)")
    imports = [run(IMPORT) for _ in range(args.repeats)]
    cold, warm = [], []
    for _ in range(args.repeats):        # alternate: cold cache, then the cache it left
        with tempfile.TemporaryDirectory() as cache:
            env = {"NUMBA_CACHE_DIR": cache}
            cold.append(run(FIRST_CALL, env))
            warm.append(run(FIRST_CALL, env))
    med = lambda runs, key: statistics.median(r[key] for r in runs)
    print(f"import tinynet:                      {med(imports, 'import_s'):.3f} s  "
          f"(numba imported: {any(r['numba_imported'] for r in imports)})  target < 0.5 s")
    print(f"first conv2d fwd+bwd, cold cache:    {med(cold, 'first_conv_s'):.3f} s  "
          "target < 3 s")
    print(f"  then first max_pool2d fwd+bwd:     {med(cold, 'then_first_pool_s'):.3f} s")
    print(f"first conv2d fwd+bwd, cached:        {med(warm, 'first_conv_s'):.3f} s  "
          "target < 0.5 s")
    print(f"  then first max_pool2d fwd+bwd:     {med(warm, 'then_first_pool_s'):.3f} s")
    print(f"conv+pool again (all loaded):        {med(warm, 'second_call_s'):.3f} s")

if __name__ == "__main__":
    main()
