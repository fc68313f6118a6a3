"""benchmarks/_common.py's machine line: it names the kernel set NumPy's OpenBLAS runs,
which decides the matrix products' speed as much as the CPU does."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinynet.kernels import numba_threads

ROOT = Path(__file__).resolve().parents[1]


def _core_in_fresh_process(**environ):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env.update(environ)
    code = "from benchmarks._common import openblas_core; print(openblas_core())"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(ROOT), check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def test_the_openblas_kernel_set_follows_openblas_coretype():
    if not numba_threads.blas_threads_controllable():
        pytest.skip("NumPy's BLAS here is not an OpenBLAS (its kernel set cannot be named)")
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        flags = []
    if "avx2" not in flags:
        pytest.skip("needs an x86-64 CPU with AVX2 (OpenBLAS's Haswell kernels) and Linux")
    assert _core_in_fresh_process(OPENBLAS_CORETYPE="Haswell") == "Haswell"
    own = _core_in_fresh_process()
    assert own not in ("", "None")
