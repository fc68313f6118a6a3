"""How the Numba kernels are compiled: ``njit``, with 256-bit vectors preferred.

Every kernel module imports ``njit`` from here instead of from Numba, so that one setting
is made before Numba compiles anything: on a CPU with AVX-512, LLVM is asked to prefer
256-bit vectors (its ``prefer-256-bit`` feature).

Why.  LLVM already prefers 256-bit vectors on Intel's AVX-512 server CPUs (the Xeon these
kernels were first tuned on), but on AMD's Zen 4 it uses 512-bit ones.  A 512-bit loop
unrolled four times takes 64 float32 elements per pass, so the short loops of these
kernels (tile rows of 34, plane rows of 8 to 16) ran mostly in their scalar remainders,
and Zen 4 executes a 512-bit instruction as two 256-bit halves anyway.  Measured on the
2-vCPU AMD EPYC Zen 4 (family 25 model 17), 2026-12-06 (benchmarks/RESULTS.md): Winograd
F(4x4)'s forward 1.3x-1.6x faster on 32- to 64-channel layers (bench_winograd4, three
runs without the setting, two with; without it F(4x4) was slower than F(2x2) there,
against the measured rule of winograd4.preferred); in four alternated pairs of processes,
a 32x32x32x32 or 32x64x16x16 convolution's forward and backward 1.08x-1.1x faster, the
other layers even.  On the Xeon the setting changes nothing (it is LLVM's default
there); forcing 512-bit vectors on it was slower (RESULTS.md, 2026-12-06).

The setting is Numba's environment variable NUMBA_CPU_FEATURES: the host's own features
(as LLVM detects them) plus ``+prefer-256-bit``.  Numba reads it when it is first imported,
so it takes effect only when tinynet's kernels are the first to import Numba in the
process; a value already set (by the user, or a parent process) is kept.  Numba's cache
keeps the code of each setting apart.
"""
import os
import sys

PREFER_256_BIT = "+prefer-256-bit"


def prefer_256_bit_vectors(environ=os.environ, modules=sys.modules):
    """Set NUMBA_CPU_FEATURES to the host's features plus prefer-256-bit when the CPU has
    AVX-512, Numba is not imported yet and neither NUMBA_CPU_FEATURES nor NUMBA_CPU_NAME is
    set; returns whether it set it."""
    if "numba" in modules or environ.get("NUMBA_CPU_FEATURES") or environ.get("NUMBA_CPU_NAME"):
        return False
    import llvmlite.binding as llvm         # Numba's own LLVM binding (imported by it anyway)
    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:                    # LLVM cannot read them here: leave Numba be
        return False
    if not features.get("avx512f", False):
        return False
    environ["NUMBA_CPU_FEATURES"] = f"{features.flatten()},{PREFER_256_BIT}"
    return True


def vector_register_bytes(environ=os.environ):
    """64 where the kernels are compiled for AVX-512, else 32 (AVX2; narrower CPUs split
    the vectors): the width of products.py's vectors, which need the wide registers and
    are written explicitly, so prefer-256-bit does not narrow them.  Read from
    NUMBA_CPU_FEATURES when it is set (as prefer_256_bit_vectors sets it), else from the
    host; a NUMBA_CPU_NAME other than 'host' (a portable build) gets 32."""
    features = environ.get("NUMBA_CPU_FEATURES")
    if features:
        return 64 if "+avx512f" in features.split(",") else 32
    if environ.get("NUMBA_CPU_NAME", "host") != "host":
        return 32
    import llvmlite.binding as llvm
    try:
        return 64 if llvm.get_host_cpu_features().get("avx512f", False) else 32
    except RuntimeError:
        return 32


prefer_256_bit_vectors()
REGISTER_BYTES = vector_register_bytes()

from numba import njit  # noqa: E402,F401  (after the setting: Numba reads it on import)
