"""SmoothGrad (Smilkov et al. 2017): remove noise by adding noise.

Gradients fluctuate at small scales; averaging the maps of noisy copies smooths them:

    R_sg(x) = 1/n sum_{i=1..n} R(x + g_i),      g_i ~ N(0, sigma^2)

with sigma = noise_level * (max(x) - min(x)) for each input, as in the paper (noise_level
0.10-0.20 works well there).  Variants over the same samples:

    SmoothGrad-squared   1/n sum_i R(x + g_i)^2
    VarGrad              1/n sum_i R(x + g_i)^2 - R_sg(x)^2      (the variance)

``smoothgrad_loop`` below is the formula as a plain loop, one noisy copy at a time: read it
first.  ``smoothgrad`` computes the same numbers (tested equal, the same noise drawn in the
same order), but stacks the n noisy copies of all inputs and processes them ``batch_size`` at
a time, so one forward and one backward serve many samples while memory stays bounded.
"""
import numpy as np

import tinynet as tn

from ._common import (as_input, check_positive_int, check_targets, class_score_gradients,
                      progress_bar, to_numpy)

VARIANTS = ("mean", "squared", "vargrad")


def smoothgrad_loop(model, x, target, n_samples=50, noise_level=0.15, seed=None):
    """SmoothGrad of the vanilla gradient as its formula, one noisy copy at a time (slow;
    the definition that ``smoothgrad`` computes in batches):

        R_sg(x) = 1/n sum_{i=1..n} R(x + g_i),   g_i ~ N(0, sigma^2),
        R(x) = dS_c/dx,   sigma = noise_level * (max(x) - min(x))
    """
    xt = as_input(x, model)
    xs = to_numpy(xt)
    target = check_targets(target, xs.shape[0])
    rng = np.random.default_rng(seed)
    noise_dtype = np.float32 if xs.dtype == np.float32 else np.float64
    maps = []
    for x_k, c in zip(xs, target):
        sigma = np.asarray(noise_level * (x_k.max() - x_k.min())).astype(xs.dtype)
        total = np.zeros_like(x_k)
        for _ in range(n_samples):
            g = rng.standard_normal(x_k.shape, dtype=noise_dtype).astype(xs.dtype) * sigma
            noisy = tn.tensor((x_k + g)[None], device=xt.device)
            _, grad, _ = class_score_gradients(model, noisy, [c])     # R(x + g_i) = dS_c/dx
            total += to_numpy(grad)[0]
        maps.append(total / n_samples)
    return np.stack(maps)


def smoothgrad(model, x, target, n_samples=50, noise_level=0.15, method=None, seed=None,
               batch_size=64, variant="mean", progress=True):
    """SmoothGrad map of each input: the shape of ``x``, or of what ``method`` returns:

        R_sg(x) = 1/n sum_{i=1..n} R(x + g_i),    g_i ~ N(0, sigma^2),
        sigma = noise_level * (max(x) - min(x))   (per input)

    R is ``method`` (default: the vanilla gradient dS_c/dx of the class score).  variant
    'squared' averages R(x + g_i)^2 instead (SmoothGrad-squared); 'vargrad' gives
    1/n sum_i R(x + g_i)^2 - R_sg(x)^2, the variance (VarGrad).  ``smoothgrad_loop`` is the
    same formula as a plain loop.

    n_samples    n, noisy copies per input (>= 1)
    noise_level  sigma / (max - min) of each input
    method       attribution function ``method(model, x_batch, target_batch) -> array``, one
                 map per row of x_batch of any shape (e.g. grad_cam's (N, H, W)); None = the
                 vanilla gradient (signed: positive and negative evidence average separately,
                 as in the paper)
    seed         seed of the noise; the same seed gives exactly the same map
    batch_size   noisy copies per forward/backward
    variant      'mean' (SmoothGrad), 'squared' (SmoothGrad-squared) or 'vargrad'
    progress     show a tqdm bar over the batches
    """
    n_samples = check_positive_int(n_samples, "n_samples")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not np.isscalar(noise_level) or not noise_level >= 0:
        raise ValueError(f"noise_level must be a number >= 0, got {noise_level!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if method is not None and not callable(method):
        raise TypeError(f"method must be an attribution function (model, x, target) -> array, "
                        f"got {type(method).__name__}")
    xt = as_input(x, model)
    xs = to_numpy(xt)
    n = xs.shape[0]
    target = check_targets(target, n)
    flat = xs.reshape(n, -1)
    sigma = noise_level * (flat.max(axis=1) - flat.min(axis=1))        # one sigma per input
    sigma = sigma.reshape((n,) + (1,) * (xs.ndim - 1)).astype(xs.dtype)

    rng = np.random.default_rng(seed)
    # draw float32 noise directly for float32 inputs (half the work of float64 + a cast)
    noise_dtype = np.float32 if xs.dtype == np.float32 else np.float64
    total = n * n_samples           # row r is sample r % n_samples of input r // n_samples
    sums = squares = None                   # allocated at the first map: (n,) + its shape
    bar = progress_bar(total, "smoothgrad", progress)
    try:
        for start in range(0, total, batch_size):
            rows = np.arange(start, min(start + batch_size, total))
            owner = rows // n_samples
            noise = rng.standard_normal((len(rows),) + xs.shape[1:], dtype=noise_dtype)
            noisy = xs[owner] + noise.astype(xs.dtype, copy=False) * sigma[owner]
            if method is None:
                _, grad, _ = class_score_gradients(model, tn.tensor(noisy, device=xt.device),
                                                   target[owner])
                r = to_numpy(grad)
            else:
                r = np.asarray(to_numpy(method(model, tn.tensor(noisy, device=xt.device),
                                               target[owner])))
                if r.ndim == 0 or r.shape[0] != len(rows):
                    raise ValueError(f"method returned shape {r.shape}, expected one map per "
                                     f"input, shape ({len(rows)}, ...)")
            if sums is None:
                sums = np.zeros((n,) + r.shape[1:], dtype=xs.dtype)
                squares = np.zeros_like(sums) if variant != "mean" else None
            elif r.shape[1:] != sums.shape[1:]:
                raise ValueError(f"method returned maps of shape {r.shape[1:]}, earlier ones "
                                 f"were {sums.shape[1:]}")
            # rows are sorted by owner: sum each owner's run of rows at once
            owners, first = np.unique(owner, return_index=True)
            sums[owners] += np.add.reduceat(r, first, axis=0)
            if squares is not None:
                squares[owners] += np.add.reduceat(r * r, first, axis=0)
            bar.update(len(rows))
    finally:
        bar.close()
    mean = sums / n_samples
    if variant == "mean":
        return mean
    if variant == "squared":
        return squares / n_samples
    return np.maximum(squares / n_samples - mean * mean, 0)


def smoothgrad_squared(model, x, target, **kwargs):
    """SmoothGrad-squared: the mean of the squared maps of the noisy copies."""
    return smoothgrad(model, x, target, variant="squared", **kwargs)


def vargrad(model, x, target, **kwargs):
    """VarGrad (Adebayo et al. 2018): the variance of the maps of the noisy copies."""
    return smoothgrad(model, x, target, variant="vargrad", **kwargs)
