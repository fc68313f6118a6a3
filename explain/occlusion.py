"""Occlusion (Zeiler & Fergus 2014): a perturbation method, the model-agnostic baseline.

The lecture contrasts gradient methods (one backward pass) with perturbation methods: change
part of the input and watch the output.  Occlusion slides a window of baseline values over
the input and records how much the class score S_c drops:

    for every window position p (a box of shape ``sliding_window_shapes``, moved by
    ``strides`` along each axis, starting at 0):
        x_p      = x with the box p replaced by the baseline b
        drop_p   = S_c(x) - S_c(x_p)
    R_i = (1 / |P_i|) sum_{p in P_i} drop_p,   P_i = the windows that cover feature i

i.e. each pixel gets the average drop of the windows covering it.  This is Captum's
``Occlusion`` (``sliding_window_shapes``, ``strides``, ``baselines`` with the same meaning,
S_c the model's output for ``target``, pre-softmax for a model returning logits).  Features
that no window covers (when the strides skip the last rows) get 0; Captum divides 0 by a
count of 0 there.

Cost: one forward pass per window position and image, no backward: for a 64x64 image and
an 8x8 window with stride 4 that is 15 x 15 = 225 forward passes, against the single
forward+backward pass of the vanilla gradient.
"""
import itertools

import numpy as np

import tinynet as tn

from ._common import (as_input, batches, check_positive_int, check_targets, frozen,
                      progress_bar, to_numpy)


def _per_axis(value, ndim, name):
    values = (value,) * ndim if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != ndim or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                                  or v < 1 for v in values):
        raise ValueError(f"{name} must be a positive int or {ndim} positive ints (one per "
                         f"axis of an example, e.g. (C, H, W)), got {value!r}")
    return tuple(int(v) for v in values)


def window_positions(shape, window, strides):
    """The start index of every window along every axis: a list of tuples of slices."""
    starts = []
    for size, w, s, axis in zip(shape, window, strides, range(len(shape))):
        if w > size:
            raise ValueError(f"sliding_window_shapes: the window is {w} along axis {axis + 1} "
                             f"of the input, but the input is only {size}")
        starts.append(range(0, size - w + 1, s))
    return [tuple(slice(a, a + w) for a, w in zip(start, window))
            for start in itertools.product(*starts)]


def occlusion(model, x, target, sliding_window_shapes, strides=1, baselines=0.0,
              batch_size=64, progress=False):
    """Occlusion attributions of the same shape as ``x``.

    model                  returns scores (N, num_classes), e.g. logits
    x                      (N, C, H, W) images (or (N, D) features), array or Tensor
    target                 the class c, an int or one per example
    sliding_window_shapes  the box, one size per axis of an example: (C, KH, KW), e.g.
                           (3, 8, 8) to hide 8x8 pixels in all colour channels at once
    strides                the step between boxes: an int or one per axis
    baselines              the value put into the box: a number, or an array broadcastable
                           to one example (C, H, W) or to the batch (N, C, H, W)
    batch_size             occluded copies per forward pass
    """
    xt = as_input(x, model)
    xs = to_numpy(xt)
    n, shape = xs.shape[0], xs.shape[1:]
    target = check_targets(target, n)
    window = _per_axis(sliding_window_shapes, len(shape), "sliding_window_shapes")
    strides = _per_axis(strides, len(shape), "strides")
    batch_size = check_positive_int(batch_size, "batch_size")
    try:
        base = np.broadcast_to(np.asarray(baselines, dtype=xs.dtype), xs.shape)
    except ValueError:
        raise ValueError(f"baselines of shape {np.shape(baselines)} do not broadcast to the "
                         f"input's shape {xs.shape}") from None
    positions = window_positions(shape, window, strides)
    device = xt.device

    def scores(batch, rows):
        logits = to_numpy(model(tn.tensor(batch, device=device)))
        if logits.ndim != 2:
            raise ValueError(f"occlusion: the model must return (N, num_classes) scores, "
                             f"got shape {logits.shape}")
        return logits[np.arange(len(rows)), target[rows]]

    total = np.zeros(xs.shape, dtype=np.float64)
    counts = np.zeros(shape, dtype=np.float64)
    for box in positions:
        counts[box] += 1
    # every (image, window) pair is one occluded copy; run them batch_size at a time
    pairs = [(i, p) for i in range(n) for p in range(len(positions))]
    bar = progress_bar(len(pairs), "occlusion", progress)
    with tn.no_grad(), frozen(model):
        original = np.concatenate([scores(xs[a:b], np.arange(a, b)) for a, b in batches(n, 256)])
        for a, b in batches(len(pairs), batch_size):
            chunk = pairs[a:b]
            occluded = xs[[i for i, _ in chunk]].copy()
            for k, (i, p) in enumerate(chunk):
                box = (k,) + positions[p]
                occluded[box] = base[(i,) + positions[p]]
            rows = np.array([i for i, _ in chunk])
            drops = original[rows] - scores(occluded, rows)
            for (i, p), drop in zip(chunk, drops):
                total[(i,) + positions[p]] += drop
            bar.update(len(chunk))
    bar.close()
    attribution = np.divide(total, counts, out=np.zeros_like(total), where=counts > 0)
    return attribution.astype(xs.dtype, copy=False)
