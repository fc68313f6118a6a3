"""Loss functions: one number that says how wrong the predictions are.

    cross_entropy(logits, labels)   = mean_n  -log softmax(logits_n)[labels_n]
    nll_loss(log_probs, labels)     = mean_n  -log_probs[n, labels_n]
    mse_loss(input, target)         = mean    (input - target)^2
    binary_cross_entropy_with_logits(logits, targets)
                                    = mean    -[t log sigma(x) + (1 - t) log(1 - sigma(x))]
    binary_cross_entropy(probs, targets)
                                    = mean    -[t log p + (1 - t) log(1 - p)]

cross_entropy also takes PyTorch's ``weight`` (one per class), ``ignore_index``,
``label_smoothing`` and probability targets (N, C) instead of class indices; see there for
the exact formulas, which are PyTorch's.

``labels`` are integer class indices, one per row (not one-hot).  Every loss takes
``reduction``: 'mean' (the default, as in PyTorch), 'sum', or 'none' (one loss per element
or row).  The output keeps the input's dtype.
"""
import math

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, _as_array
from ._checks import check_ndim, check_number, check_reduction, float_tensor


def _reduce(losses, reduction):
    """Apply ``reduction`` to per-element losses; always returns an array (0-d for a scalar)."""
    xp = backend.get_array_module(losses)
    if reduction == "none":
        return losses
    total = losses.sum()
    if reduction == "mean":
        total = total / losses.size       # cheaper than .mean() on tiny batches
    return xp.asarray(total, dtype=losses.dtype)


def _reduced_grad(grad, shape, reduction):
    """dL/d(loss_i) for every element i, from the gradient of the reduced loss."""
    if reduction == "none":
        return grad
    count = math.prod(shape)
    return grad / count if reduction == "mean" else grad      # 0-d: broadcasts


# ---- classification with class indices ------------------------------------------------------


class CrossEntropy(Function):
    """log_softmax and the negative log-likelihood fused into one op.

    For one row with scores x, probabilities p = softmax(x) and label y:

        loss = -log p_y = log sum_j exp(x_j) - x_y
        d loss / d x_j = p_j - [j = y]          (softmax minus the one-hot label)

    The fused backward is the whole reason to fuse: the chain log -> softmax would divide by
    p and multiply it back; here the gradient is one subtraction."""

    def __init__(self, labels, reduction):
        self.labels, self.reduction = labels, reduction

    def forward(self, logits):
        xp = backend.get_array_module(logits)
        shifted = logits - logits.max(axis=1, keepdims=True)      # exp() <= 1: no overflow
        exp = xp.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        exp /= total
        self.probs = exp                                          # softmax, kept for backward
        # Position of [n, y_n] in the flattened (N, C) array: a 1-D take is several times
        # cheaper than the 2-D fancy index shifted[arange(N), labels] on small batches.
        n, classes = logits.shape
        self.picked = xp.arange(0, n * classes, classes) + self.labels
        losses = xp.log(total[:, 0]) - shifted.take(self.picked)
        return _reduce(losses, self.reduction)

    def backward(self, grad):
        grad_logits = self.probs.copy()           # copy: backward may run twice (retain_graph)
        grad_logits.reshape(-1)[self.picked] -= 1          # a view of the fresh C-order copy
        g = _reduced_grad(grad, (grad_logits.shape[0],), self.reduction)
        return grad_logits * (g[:, None] if self.reduction == "none" else g)


class TargetCrossEntropy(Function):
    """Cross-entropy against a target distribution q (N, C) that already carries the class
    weights and label smoothing (see ``cross_entropy``):

        loss_n = -sum_c q[n, c] log softmax(x_n)_c
        d loss_n / d x[n, j] = p[n, j] sum_c q[n, c] - q[n, j]       (p = softmax(x_n))
        d loss_n / d q[n, c] = -log softmax(x_n)_c

    ``denominator`` is what reduction='mean' divides the summed loss by: the summed weight
    of the counted labels, or N for probability targets (PyTorch's choices)."""

    def __init__(self, reduction, denominator):
        self.reduction, self.denominator = reduction, denominator

    def forward(self, logits, q):
        xp = backend.get_array_module(logits)
        shifted = logits - logits.max(axis=1, keepdims=True)
        total = xp.exp(shifted).sum(axis=1, keepdims=True)
        self.log_probs = shifted - xp.log(total)
        self.q = q
        losses = -(q * self.log_probs).sum(axis=1)
        if self.reduction == "none":
            return losses
        out = losses.sum() / (self.denominator if self.reduction == "mean" else 1)
        return xp.asarray(out, dtype=losses.dtype)

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        if self.reduction == "none":
            g = grad[:, None]
        else:
            g = grad / self.denominator if self.reduction == "mean" else grad
        probs = xp.exp(self.log_probs)
        grad_logits = (probs * self.q.sum(axis=1, keepdims=True) - self.q) * g
        return grad_logits, -self.log_probs * g


class NLLLoss(Function):
    """loss_n = -w_n log_probs[n, labels_n]: picks the log-probability of the right class,
    weighted by w_n = weight[labels_n] (1 without weights, 0 for an ignored row).

    Backward puts -w_n (times the upstream gradient) at each picked entry, 0 elsewhere.
    'mean' divides by ``denominator``: N, or the summed w_n (PyTorch's weighted mean)."""

    def __init__(self, labels, reduction, row_weight=None, denominator=None):
        self.labels, self.reduction = labels, reduction
        self.row_weight, self.denominator = row_weight, denominator

    def forward(self, log_probs):
        xp = backend.get_array_module(log_probs)
        self.shape = log_probs.shape
        rows = xp.arange(log_probs.shape[0])
        losses = -log_probs[rows, self.labels]
        if self.row_weight is None:
            return _reduce(losses, self.reduction)
        losses = losses * self.row_weight
        if self.reduction == "mean":
            return xp.asarray(losses.sum() / self.denominator, dtype=losses.dtype)
        return _reduce(losses, self.reduction)

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        n = self.shape[0]
        if self.row_weight is None:
            g = _reduced_grad(grad, (n,), self.reduction)
        else:
            g = grad / self.denominator if self.reduction == "mean" else grad
            g = g * self.row_weight
        grad_in = xp.zeros(self.shape, dtype=grad.dtype)
        grad_in[xp.arange(n), self.labels] = -g
        return grad_in


# ---- regression and binary targets ----------------------------------------------------------


class MSELoss(Function):
    """(input - target)^2 per element.  d/d input = 2 (input - target), d/d target = -that."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, input, target):
        self.diff = input - target
        return _reduce(self.diff * self.diff, self.reduction)

    def backward(self, grad):
        g = _reduced_grad(grad, self.diff.shape, self.reduction)
        grad_input = 2 * self.diff * g
        return grad_input, -grad_input


class BCEWithLogits(Function):
    """Binary cross-entropy on a logit x (a score, not a probability) and target t in [0, 1].

    -[t log sigma(x) + (1 - t) log(1 - sigma(x))] simplifies (use log sigma(x) =
    -log(1 + exp(-x))) to

        loss = max(x, 0) - x t + log(1 + exp(-|x|))

    where exp(-|x|) <= 1, so nothing overflows and no log(0) appears even for |x| = 1000.

    d loss / d x = sigma(x) - t,      d loss / d t = -x.

    PyTorch's ``pos_weight`` p (weighs the positive term, broadcast along the last axis) and
    ``weight`` w (weighs each element) give, with s(x) = log(1 + exp(-x)) = softplus(-x):

        loss = w [(1 - t) x + (1 + (p - 1) t) s(x)]
        d loss / d x = w [(1 - t) - (1 + (p - 1) t)(1 - sigma(x))],
        d loss / d t = w [-x + (p - 1) s(x)]
    (with p = w = 1 these are the lines above).  p and w are constants: no gradient."""

    def __init__(self, reduction, pos_weight=None, weight=None):
        self.reduction, self.pos_weight, self.weight = reduction, pos_weight, weight

    def forward(self, x, t):
        xp = backend.get_array_module(x)
        self.x, self.t = x, t
        z = xp.exp(-abs(x))
        self.sigma = xp.where(x >= 0, 1 / (1 + z), z / (1 + z))    # stable, as in sigmoid
        if self.pos_weight is None:
            losses = xp.maximum(x, 0) - x * t + xp.log1p(z)
        else:
            self.softplus_neg = xp.log1p(z) + xp.maximum(-x, 0)       # log(1 + exp(-x))
            self.log_weight = 1 + (self.pos_weight - 1) * t
            losses = (1 - t) * x + self.log_weight * self.softplus_neg
        if self.weight is not None:
            losses = losses * self.weight
        return _reduce(losses, self.reduction)

    def backward(self, grad):
        g = _reduced_grad(grad, self.x.shape, self.reduction)
        if self.weight is not None:
            g = g * self.weight
        if self.pos_weight is None:
            return (self.sigma - self.t) * g, -self.x * g
        grad_x = ((1 - self.t) - self.log_weight * (1 - self.sigma)) * g
        grad_t = (-self.x + (self.pos_weight - 1) * self.softplus_neg) * g
        return grad_x, grad_t


class BCE(Function):
    """Binary cross-entropy on probabilities p in [0, 1] and targets t:

        loss = -w [t log p + (1 - t) log(1 - p)],   each log clamped to >= -100 (as PyTorch,
                                                    so p = 0 or 1 gives a finite loss)
        d loss / d p = w (p - t) / max(p (1 - p), 1e-12)
        d loss / d t = -w [log p - log(1 - p)]

    binary_cross_entropy_with_logits is the stabler choice when the model outputs scores."""

    def __init__(self, reduction, weight=None):
        self.reduction, self.weight = reduction, weight

    def forward(self, p, t):
        xp = backend.get_array_module(p)
        self.p, self.t = p, t
        with np.errstate(divide="ignore"):
            self.log_p = xp.maximum(xp.log(p), -100)
            self.log_1mp = xp.maximum(xp.log1p(-p), -100)
        losses = -(t * self.log_p + (1 - t) * self.log_1mp)
        if self.weight is not None:
            losses = losses * self.weight
        return _reduce(losses, self.reduction)

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        g = _reduced_grad(grad, self.p.shape, self.reduction)
        if self.weight is not None:
            g = g * self.weight
        p = self.p
        grad_p = (p - self.t) / xp.maximum(p * (1 - p), 1e-12) * g
        return grad_p.astype(p.dtype, copy=False), -(self.log_p - self.log_1mp) * g


# ---- argument checks --------------------------------------------------------------------------


def _class_labels(labels, scores, op, scores_name, ignore_index=None):
    """(labels, any_ignored): the labels as an integer array on the scores' device, checked
    against the scores' (N, C) shape: one index per row, each in [0, C) or equal to
    ``ignore_index``; any_ignored says whether some row's label equals ``ignore_index``."""
    if isinstance(labels, Tensor):
        labels = labels.data
    elif not (isinstance(labels, np.ndarray) or backend.is_cupy_array(labels)):
        try:
            labels = np.asarray(labels)
        except ValueError as exc:
            raise TypeError(f"{op}: labels must be an array of integer class indices, "
                            f"got {type(labels).__name__} ({exc})") from None
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{op}: labels must be integer class indices (e.g. int64), got dtype "
                        f"{labels.dtype}; they are not one-hot or probabilities")
    if backend.device_of(labels) != scores.device:
        raise ValueError(f"{op}: labels are on '{backend.device_of(labels)}' but "
                         f"{scores_name} on '{scores.device}'; move them to one device")
    n, classes = scores.shape
    if labels.shape != (n,):
        raise ValueError(f"{op}: labels must have shape ({n},), one class index per row of "
                         f"{scores_name} (shape {tuple(scores.shape)}), got shape "
                         f"{tuple(labels.shape)}")
    if not labels.size:
        return labels, False
    # The usual case costs one min and one max: no label can equal an ignore_index
    # outside [low, high] (the default -100 when all labels are class indices).
    low, high = int(labels.min()), int(labels.max())
    any_ignored = (ignore_index is not None and low <= ignore_index <= high
                   and bool((labels == ignore_index).any()))
    if any_ignored:
        counted = labels[labels != ignore_index]
        low, high = (int(counted.min()), int(counted.max())) if counted.size else (0, 0)
    bad = low if low < 0 else high if high >= classes else None
    if bad is not None:
        raise ValueError(f"{op}: labels must be class indices in [0, {classes - 1}] for "
                         f"{classes} classes, got {bad}")
    return labels, any_ignored


def _scores(x, name, op):
    x = float_tensor(x, name, op)
    check_ndim(x, (2,), name, op, " (N, C): one row of class scores per example")
    return x


def _target(target, input, op, input_name, target_name):
    """A target of the input's shape, dtype and device.  Plain arrays (ints, bools or floats)
    are converted to the input's dtype; a Tensor must already match it."""
    if isinstance(target, Tensor):
        if target.dtype != input.dtype:
            raise TypeError(f"{op}: {target_name} must have the dtype of {input_name} "
                            f"({input.dtype}), got {target.dtype}; convert with .astype()")
    else:
        try:
            target = Tensor(_as_array(target, dtype=input.dtype))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{op}: {target_name} must be a numeric array or tensor, got "
                            f"{type(target).__name__} ({exc})") from None
    if target.device != input.device:
        raise ValueError(f"{op}: {target_name} is on '{target.device}' but {input_name} on "
                         f"'{input.device}'; move them to one device")
    if target.shape != input.shape:
        raise ValueError(f"{op}: {target_name} must have the shape of {input_name} "
                         f"{tuple(input.shape)}, got {tuple(target.shape)}")
    return target


# ---- the functional API ---------------------------------------------------------------------

def cross_entropy(logits, labels, reduction="mean", *, weight=None, ignore_index=-100,
                  label_smoothing=0.0):
    """Softmax cross-entropy of ``logits`` (N, C) against class indices ``labels`` (N,), or
    against class probabilities ``labels`` (N, C) (a float array or tensor).

    Equal to nll_loss(log_softmax(logits), labels), computed as one stable op.  PyTorch's
    options, with its exact formulas (l = log_softmax(logits), eps = label_smoothing, C
    classes, w the per-class ``weight``, 1 when not given):

    class indices y:  loss_n = (1 - eps) w[y_n] (-l[n, y_n]) + eps/C sum_c w[c] (-l[n, c]),
                      0 for rows with y_n == ignore_index; 'mean' divides the sum by
                      sum_n w[y_n] over the rows not ignored (not by N)
    probabilities t:  loss_n = -sum_c w[c] ((1 - eps) t[n, c] + eps/C) l[n, c];
                      'mean' divides by N; ignore_index does not apply

    The gradient, for class indices without weight or smoothing and reduction 'sum':
    dL/dlogits[n, c] = softmax(logits)[n, c] - [c == y_n] (divided by N for 'mean').

    weight is a constant (no gradient); probability targets that are Tensors get one.
    Only (N, C) inputs: PyTorch's extra spatial axes (N, C, d1, ...) are not supported."""
    op = "cross_entropy"
    reduction = check_reduction(reduction, op)
    logits = _scores(logits, "logits", op)
    label_smoothing = check_number(label_smoothing, "label_smoothing", op, 0.0, 1.0)
    n, classes = logits.shape
    xp = backend.get_array_module(logits.data)
    weight = _class_weight(weight, logits, op)
    if _is_probability_target(labels):
        target = _target(labels, logits, op, "logits", "labels (class probabilities)")
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / classes
        if weight is not None:
            target = target * weight
        return TargetCrossEntropy(reduction, n)(logits, target)
    labels, any_ignored = _class_labels(labels, logits, op, "logits", ignore_index)
    if weight is None and label_smoothing == 0 and not any_ignored:
        return CrossEntropy(labels, reduction)(logits)          # the common, fast case
    counted = labels != ignore_index
    rows, picked = xp.nonzero(counted)[0], labels[counted]
    class_weight = xp.ones(classes, logits.dtype) if weight is None else weight
    q = xp.zeros((n, classes), dtype=logits.dtype)
    q[rows, picked] = (1 - label_smoothing) * class_weight[picked]
    q[rows] += label_smoothing / classes * class_weight
    denominator = class_weight[picked].sum()
    return TargetCrossEntropy(reduction, denominator)(logits, q)


def _is_probability_target(labels):
    data = labels.data if isinstance(labels, Tensor) else labels
    if not hasattr(data, "dtype"):
        try:
            data = np.asarray(data)
        except ValueError:
            return False
    return data.dtype.kind == "f" and data.ndim == 2


def nll_loss(log_probs, labels, reduction="mean", *, weight=None, ignore_index=-100):
    """Negative log-likelihood: -log_probs[n, labels[n]], averaged over the batch.

    As PyTorch: ``weight`` (C,) weighs row n by weight[labels[n]], rows whose label is
    ``ignore_index`` count neither in the sum nor in the mean, and 'mean' divides by the
    summed weights of the rows counted."""
    op = "nll_loss"
    reduction = check_reduction(reduction, op)
    log_probs = _scores(log_probs, "log_probs", op)
    labels, any_ignored = _class_labels(labels, log_probs, op, "log_probs", ignore_index)
    weight = _class_weight(weight, log_probs, op)
    if weight is None and not any_ignored:
        return NLLLoss(labels, reduction)(log_probs)          # the common, fast case
    counted = labels != ignore_index
    xp = backend.get_array_module(log_probs.data)
    class_weight = xp.ones(log_probs.shape[1], log_probs.dtype) if weight is None else weight
    safe_labels = xp.where(counted, labels, 0)                # any valid index; weight 0
    row_weight = class_weight[safe_labels] * counted
    return NLLLoss(safe_labels, reduction, row_weight, row_weight.sum())(log_probs)


def _class_weight(weight, scores, op):
    """``weight`` as a (C,) constant array of the scores' dtype and device, or None."""
    if weight is None:
        return None
    classes = scores.shape[1]
    weight = _as_array(weight.data if isinstance(weight, Tensor) else weight, dtype=scores.dtype)
    if weight.shape != (classes,):
        raise ValueError(f"{op}: weight must have one entry per class, shape ({classes},), "
                         f"got {tuple(weight.shape)}")
    return backend.move(weight, scores.device)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error.  ``target`` must have ``input``'s shape (PyTorch would broadcast
    with a warning; a shape mismatch is almost always a bug, so it is an error here)."""
    op = "mse_loss"
    reduction = check_reduction(reduction, op)
    input = float_tensor(input, "input", op)
    target = _target(target, input, op, "input", "target")
    return MSELoss(reduction)(input, target)


def binary_cross_entropy_with_logits(logits, targets, reduction="mean", *, weight=None,
                                     pos_weight=None):
    """Sigmoid + binary cross-entropy in one stable op; ``targets`` in [0, 1], same shape.

    ``weight`` (broadcast to the logits' shape) weighs each element; ``pos_weight``
    (broadcast along the last axis, e.g. one per class) weighs the positive term, as
    PyTorch.  'mean' divides by the number of elements, whatever the weights."""
    op = "binary_cross_entropy_with_logits"
    reduction = check_reduction(reduction, op)
    logits = float_tensor(logits, "logits", op)
    targets = _target(targets, logits, op, "logits", "targets")
    weight = _broadcast_weight(weight, logits, "weight", op)
    pos_weight = _broadcast_weight(pos_weight, logits, "pos_weight", op)
    return BCEWithLogits(reduction, pos_weight, weight)(logits, targets)


def binary_cross_entropy(probs, targets, reduction="mean", *, weight=None):
    """Binary cross-entropy of probabilities ``probs`` in [0, 1] (e.g. a sigmoid's output)
    against ``targets`` of the same shape; each log is clamped at -100 as in PyTorch."""
    op = "binary_cross_entropy"
    reduction = check_reduction(reduction, op)
    probs = float_tensor(probs, "probs", op)
    targets = _target(targets, probs, op, "probs", "targets")
    if probs.numel():
        low, high = float(probs.data.min()), float(probs.data.max())
        if not (0 <= low and high <= 1):
            raise ValueError(f"{op}: probs must lie in [0, 1], got values in [{low}, {high}]; "
                             "for scores use binary_cross_entropy_with_logits")
    weight = _broadcast_weight(weight, probs, "weight", op)
    return BCE(reduction, weight)(probs, targets)


def _broadcast_weight(weight, x, name, op):
    """A constant weight array in x's dtype and device that broadcasts to x's shape."""
    if weight is None:
        return None
    weight = _as_array(weight.data if isinstance(weight, Tensor) else weight, dtype=x.dtype)
    try:
        np.broadcast_shapes(weight.shape, x.shape)
    except ValueError:
        raise ValueError(f"{op}: {name} of shape {tuple(weight.shape)} does not broadcast to "
                         f"the input's shape {tuple(x.shape)}") from None
    return backend.move(weight, x.device)
