"""Gradient-based pixel attribution (Simonyan et al. 2013 and relatives).

Vanilla gradient, the lecture's three steps:

    1. forward pass of the image x0
    2. E_grad(x0) = dS_c/dx at x = x0, the gradient of the class score S_c (pre-softmax)
       with respect to the input pixels; "set all other classes to zero" means the
       upstream gradient at the logits is the one-hot vector of class c
    3. visualize: absolute values (reduced over the colour channels by their max, as
       Simonyan et al.), or the positive and negative parts separately

Also gradient x input (x * dS_c/dx), integrated gradients (Sundararajan et al. 2017) and
guided backpropagation (Springenberg et al. 2015, used by Guided Grad-CAM).
Every function returns NumPy arrays of the input's shape.
"""
import warnings

import numpy as np

import tinynet as tn
from tinynet import nn

from ._common import (as_input, batches, check_logits, check_positive_int, check_targets,
                      class_score_gradients, frozen, to_numpy)


def _batched_input_gradient(model, x, target, batch_size):
    n = x.shape[0]
    target = check_targets(target, n)
    batch_size = n if batch_size is None else check_positive_int(batch_size, "batch_size")
    grads = []
    for a, b in batches(n, batch_size):
        _, g, _ = class_score_gradients(model, x[a:b] if b - a < n else x, target[a:b])
        grads.append(to_numpy(g))
    return np.concatenate(grads)


def vanilla_gradient(model, x, target, abs=False, batch_size=None):
    """E_grad(x) = dS_c/dx: the gradient of the pre-softmax score of class ``target``.

    model       a callable returning logits (N, num_classes), e.g. an nn.Module
    x           (N, C, H, W) images or (N, D) features, array or Tensor
    target      class index c, an int or one per example
    abs         return |dS_c/dx| (see ``channel_max`` to reduce over colour channels)
    batch_size  process this many examples at a time (default: all at once)

    For a linear model S = x W^T + b the answer is the weight row W[c].
    """
    xt = as_input(x, model)
    grad = _batched_input_gradient(model, xt, target, batch_size)
    return np.abs(grad) if abs else grad


def gradient_x_input(model, x, target, batch_size=None):
    """x * dS_c/dx elementwise (Shrikumar et al. 2016): the gradient weighted by the input."""
    xt = as_input(x, model)
    return to_numpy(xt) * _batched_input_gradient(model, xt, target, batch_size)


def integrated_gradients(model, x, target, baseline=None, steps=50, batch_size=None,
                         tolerance=0.05, return_delta=False):
    """Integrated gradients (Sundararajan et al. 2017), a Riemann midpoint sum:

        IG_i(x) = (x_i - x'_i) * 1/m sum_{j=1..m} dS_c/dx_i at x' + (j - 1/2)/m (x - x')

    with baseline x' (zeros by default) and m = ``steps``.  Completeness: the attributions
    sum to S_c(x) - S_c(x') up to the discretization error

        delta = |sum_i IG_i - (S_c(x) - S_c(x'))|        (per example)

    which is returned with ``return_delta=True``; a RuntimeWarning says when delta exceeds
    ``tolerance`` * |S_c(x) - S_c(x')| (+1e-6), i.e. when ``steps`` should be raised.
    The N * m path points of all examples are evaluated ``batch_size`` at a time (default m).
    """
    xt = as_input(x, model)
    steps = check_positive_int(steps, "steps")
    xs = to_numpy(xt)
    n = xs.shape[0]
    if baseline is None:
        base = np.zeros_like(xs)
    else:
        base = np.broadcast_to(np.asarray(to_numpy(baseline), dtype=xs.dtype), xs.shape)
    target = check_targets(target, n)
    alphas = ((np.arange(steps) + 0.5) / steps).astype(xs.dtype)
    batch_size = steps if batch_size is None else check_positive_int(batch_size, "batch_size")
    diff = xs - base
    total = np.zeros_like(xs)
    for a, b in batches(n * steps, batch_size):
        rows = np.arange(a, b)               # row r is path point r % m of example r // m
        owner = rows // steps
        alpha = alphas[rows % steps].reshape((-1,) + (1,) * (xs.ndim - 1))
        path = base[owner] + alpha * diff[owner]
        _, g, _ = class_score_gradients(model, tn.tensor(path, device=xt.device), target[owner])
        # rows are sorted by owner: sum each example's run of rows at once
        owners, first = np.unique(owner, return_index=True)
        total[owners] += np.add.reduceat(to_numpy(g), first, axis=0)
    attributions = diff * total / steps
    # completeness check
    both = np.concatenate([xs, np.ascontiguousarray(base)])
    with tn.no_grad(), frozen(model):
        logits = to_numpy(check_logits(model(tn.tensor(both, device=xt.device)), 2 * n))
    check_targets(target, n, logits.shape[1])
    gap = logits[np.arange(n), target] - logits[n + np.arange(n), target]
    delta = np.abs(attributions.reshape(n, -1).sum(axis=1) - gap)
    bad = delta > tolerance * np.abs(gap) + 1e-6
    if np.any(bad):
        warnings.warn(f"integrated_gradients: attributions miss S_c(x) - S_c(baseline) by "
                      f"{delta.max():.3g} (more than tolerance={tolerance} of the gap) for "
                      f"{int(bad.sum())} example(s); raise steps (now {steps})", RuntimeWarning)
    return (attributions, delta) if return_delta else attributions


def guided_backprop(model, x, target, batch_size=None):
    """Guided backpropagation: at every ``nn.ReLU`` module only positive gradients pass back.

    Plain backward through ReLU keeps the gradient where the input was positive; guided
    backprop also zeroes it where the gradient itself is negative:
        dL/dx = [x > 0] * max(dL/dy, 0).
    Implemented with a forward hook on each nn.ReLU that registers a tensor hook clipping
    the gradient of its output (ReLUs written as F.relu inside forward are not seen)."""
    xt = as_input(x, model)
    relus = [m for _, m in model.named_modules() if isinstance(m, nn.ReLU)]
    if not relus:
        warnings.warn("guided_backprop: the model has no nn.ReLU module, so this is the "
                      "plain gradient", RuntimeWarning)

    def positive_only(grad):
        return grad * (grad > 0)

    def on_forward(module, inputs, output):
        if output.requires_grad:
            output.register_hook(positive_only)

    handles = [m.register_forward_hook(on_forward) for m in relus]
    try:
        return _batched_input_gradient(model, xt, target, batch_size)
    finally:
        for h in handles:
            h.remove()


# ---- views of a map (the lecture's step 3) ------------------------------------------

def channel_max(attribution):
    """max_c |R_c| over the channel axis: (N, C, H, W) -> (N, H, W), as Simonyan et al."""
    a = np.asarray(attribution)
    if a.ndim != 4:
        raise ValueError(f"channel_max expects (N, C, H, W), got shape {a.shape}")
    return np.abs(a).max(axis=1)


def split_signs(attribution):
    """(positive part, negative part) of a signed map, both >= 0: R = pos - neg."""
    a = np.asarray(attribution)
    return np.maximum(a, 0), np.maximum(-a, 0)
