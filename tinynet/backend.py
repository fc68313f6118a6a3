"""Where arrays live: NumPy on the CPU, CuPy on the GPU.

Every op in tinynet is written once against ``xp``, the array module of its inputs
(``numpy`` or ``cupy``).  This file is the only place that knows both exist:

    xp = get_array_module(array)      # numpy or cupy, chosen by where the array lives
    device_of(array)                  # 'cpu' or 'cuda'
    move(array, 'cuda')               # host -> device copy (counted, see below)

CuPy is optional.  ``import tinynet`` never imports it; asking for 'cuda' without it
raises an error that says what to install.

Host<->device copies go through ``to_cpu`` and ``to_gpu`` only, so a test can wrap those
two functions and count the transfers a training step makes (the answer must be zero).
"""
import sys

import numpy as np

DEVICES = ("cpu", "cuda")

_cupy = None          # the cupy module once imported, False if the import failed
_cupy_error = None    # why the import failed, for the error message


def _import_cupy():
    global _cupy, _cupy_error
    if _cupy is None:
        try:
            import cupy
            cupy.cuda.runtime.getDeviceCount()   # raises when there is no GPU/driver
            _cupy = cupy
        except Exception as exc:                 # ImportError, CUDARuntimeError, ...
            _cupy, _cupy_error = False, exc
    return _cupy or None


def cuda_available():
    """True when CuPy imports and sees at least one GPU."""
    return _import_cupy() is not None


def require_cupy():
    """Return the cupy module, or raise a RuntimeError that says what to install."""
    cupy = _import_cupy()
    if cupy is None:
        raise RuntimeError(
            "device='cuda' needs CuPy and an NVIDIA GPU; install it with "
            "`pip install -e \".[gpu]\"` (cupy-cuda12x). "
            f"Importing cupy failed with: {_cupy_error!r}")
    return cupy


def is_cupy_array(array):
    # Checked by type name so that numpy-only machines never import cupy.
    if type(array) is np.ndarray:      # the common case, answered without string work
        return False
    return type(array).__module__.startswith("cupy")


def cupy_loaded():
    """False when no CuPy array can exist (nobody imported cupy): every array is NumPy's."""
    return "cupy" in sys.modules


def get_array_module(*arrays):
    """numpy, or cupy when any argument is a cupy array (DeZero's get_array_module)."""
    for array in arrays:
        if is_cupy_array(array):
            return require_cupy()
    return np


def device_of(array):
    return "cuda" if is_cupy_array(array) else "cpu"


def check_device(device, name="device"):
    """Normalize a device string ('cpu', 'cuda', 'cuda:0') or raise a clear error."""
    if not isinstance(device, str):
        raise TypeError(f"{name} must be 'cpu' or 'cuda', got {device!r}")
    base = device.split(":")[0]
    if base not in DEVICES:
        raise ValueError(f"{name} must be 'cpu' or 'cuda', got {device!r}")
    if base == "cuda":
        require_cupy()
    return base


def to_cpu(array):
    """Device -> host copy.  The one place tinynet calls cupy.asnumpy."""
    if is_cupy_array(array):
        return array.get()
    return np.asarray(array)


def to_gpu(array):
    """Host -> device copy.  The one place tinynet calls cupy.asarray on host data."""
    cupy = require_cupy()
    if is_cupy_array(array):
        return array
    return cupy.asarray(array)


def move(array, device):
    """Return ``array`` on ``device`` ('cpu' or 'cuda'); no copy when it is already there."""
    device = check_device(device)
    if device == device_of(array):
        return array
    return to_gpu(array) if device == "cuda" else to_cpu(array)
