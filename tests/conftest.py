"""Shared fixtures: a seeded random generator and the path to the real data."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tinynet import kernels

if importlib.util.find_spec("numba") is not None:
    # Before any test module's pytest.importorskip("numba"): the kernels then compile in the
    # tests as they do for a user (tinynet/kernels/jit.py sets Numba's vector width first).
    import tinynet.kernels.jit  # noqa: F401

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def shared_data():
    """../shared/data beside the project; tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (present in CI, absent on a user's machine)")
    return SHARED_DATA


@pytest.fixture(params=["reference", "numpy", "auto"])
def each_kernel(request):
    """Run the test under each kernel setting (conv and pool tests): the oracle's own
    backward is checked too."""
    with kernels.use(request.param):
        yield request.param
