"""tinynet/kernels/jit.py: the kernels' Numba setting (256-bit vectors preferred on
AVX-512), made only where it is ours to make."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba")
import llvmlite.binding as llvm  # noqa: E402

from tinynet.kernels import jit  # noqa: E402

HAS_AVX512 = bool(llvm.get_host_cpu_features().get("avx512f", False))


def test_setting_follows_the_cpu():
    environ = {}
    made = jit.prefer_256_bit_vectors(environ, modules={})
    assert made == HAS_AVX512
    if HAS_AVX512:
        features = environ["NUMBA_CPU_FEATURES"].split(",")
        assert features[-1] == "+prefer-256-bit" and "+avx512f" in features
        assert ",".join(features[:-1]) == llvm.get_host_cpu_features().flatten()
    else:
        assert environ == {}


@pytest.mark.parametrize("environ, modules", [
    ({"NUMBA_CPU_FEATURES": "+avx2"}, {}),         # the user's choice stands
    ({"NUMBA_CPU_NAME": "generic"}, {}),
    ({}, {"numba": object()}),                      # Numba has read its settings already
])
def test_setting_left_alone(environ, modules):
    before = dict(environ)
    assert jit.prefer_256_bit_vectors(environ, modules) is False
    assert environ == before


def _numba_features_in_fresh_process(**extra_env):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_FEATURES",
                                                            "NUMBA_CPU_NAME")}
    env.update(extra_env)
    code = ("import tinynet.kernels.numba_bias, numba.core.config as c; "
            "print(c.CPU_FEATURES)")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_kernels_compile_with_the_setting():
    """A kernel module imported first makes the setting before Numba loads; Numba sees it."""
    features = _numba_features_in_fresh_process()
    if HAS_AVX512:
        assert features.endswith(",+prefer-256-bit")
    else:
        assert features == "None"
    assert _numba_features_in_fresh_process(NUMBA_CPU_FEATURES="+avx2") == "+avx2"


def _modules_importing_numba():
    """tinynet's modules that import Numba or llvmlite themselves (jit.py aside), and
    numba_threads.py, through which the kernels reach the first of them (atomics.py)."""
    root = os.path.dirname(os.path.dirname(jit.__file__))
    found = {"tinynet.kernels.numba_threads"}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if not name.endswith(".py") or path == jit.__file__:
                continue
            with open(path) as source:
                if any(line.lstrip().startswith(("import numba", "from numba", "import llvmlite",
                                                 "from llvmlite")) for line in source):
                    module = os.path.relpath(path[:-3], os.path.dirname(root))
                    found.add(module.replace(os.sep, ".").removesuffix(".__init__"))
    return sorted(found)


@pytest.mark.parametrize("module", _modules_importing_numba())
def test_numba_is_imported_after_the_setting(module):
    """Whichever module brings Numba in first, jit.py has run by then.  (atomics.py once
    imported Numba before it: every benchmark that imported numba_threads first ran with
    512-bit vectors, a convolution step 1.25x slower on the AMD Zen 5.)"""
    code = (
        "import importlib, importlib.abc, sys\n"
        "seen = []\n"
        "class Watch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'numba' and not seen:\n"
        "            seen.append('tinynet.kernels.jit' in sys.modules)\n"
        "sys.meta_path.insert(0, Watch())\n"
        f"importlib.import_module({module!r})\n"
        "print(seen)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[True]", f"importing {module} first: Numba imported before jit.py? {out}"
