"""The random numbers tinynet draws (dropout masks, weight initialization), in one place.

    tn.manual_seed(0)             # makes dropout and nn initialization repeatable
    rng = get_generator()         # a numpy.random.Generator (get_generator('cuda'): CuPy's)

Code that needs randomness calls ``get_generator()`` each time instead of keeping its own
generator, so that one ``manual_seed`` call governs all of it.  The CuPy generator is made
only when first asked for, so seeding never imports CuPy.
"""
import numbers

import numpy as np

from . import backend

_seed = None                         # the last manual_seed (None: fresh OS entropy)
_numpy_generator = np.random.default_rng()
_cupy_generator = None               # made from _seed on first use


def manual_seed(seed):
    """Seed tinynet's generators (NumPy's now, CuPy's when it is next used)."""
    global _seed, _numpy_generator, _cupy_generator
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"manual_seed: seed must be an int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"manual_seed: seed must be >= 0, got {seed}")
    _seed = int(seed)
    _numpy_generator = np.random.default_rng(_seed)
    _cupy_generator = None           # remade from the new seed on next use
    return _numpy_generator


def get_generator(device="cpu"):
    """The generator to draw from for arrays on ``device`` ('cpu' or 'cuda')."""
    global _cupy_generator
    if backend.check_device(device) == "cpu":
        return _numpy_generator
    if _cupy_generator is None:
        cupy = backend.require_cupy()
        _cupy_generator = cupy.random.default_rng(_seed)
    return _cupy_generator
