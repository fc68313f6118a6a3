"""Loss functions: one number that says how wrong the predictions are.

    cross_entropy(logits, labels)   = mean_n  -log softmax(logits_n)[labels_n]
    nll_loss(log_probs, labels)     = mean_n  -log_probs[n, labels_n]
    mse_loss(input, target)         = mean    (input - target)^2
    binary_cross_entropy_with_logits(logits, targets)
                                    = mean    -[t log sigma(x) + (1 - t) log(1 - sigma(x))]

``labels`` are integer class indices, one per row (not one-hot).  Every loss takes
``reduction``: 'mean' (the default, as in PyTorch), 'sum', or 'none' (one loss per element
or row).  The output keeps the input's dtype.
"""
import math

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, _as_array
from ._checks import check_ndim, check_reduction, float_tensor


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
        losses = xp.log(total[:, 0]) - shifted[xp.arange(len(logits)), self.labels]
        return _reduce(losses, self.reduction)

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        n = self.probs.shape[0]
        grad_logits = self.probs.copy()           # copy: backward may run twice (retain_graph)
        grad_logits[xp.arange(n), self.labels] -= 1
        g = _reduced_grad(grad, (n,), self.reduction)
        return grad_logits * (g[:, None] if self.reduction == "none" else g)


class NLLLoss(Function):
    """loss_n = -log_probs[n, labels_n]: picks the log-probability of the right class.

    Backward puts -1 (times the upstream gradient) at each picked entry, 0 elsewhere."""

    def __init__(self, labels, reduction):
        self.labels, self.reduction = labels, reduction

    def forward(self, log_probs):
        xp = backend.get_array_module(log_probs)
        self.shape = log_probs.shape
        rows = xp.arange(log_probs.shape[0])
        return _reduce(-log_probs[rows, self.labels], self.reduction)

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        n = self.shape[0]
        grad_in = xp.zeros(self.shape, dtype=grad.dtype)
        grad_in[xp.arange(n), self.labels] = -_reduced_grad(grad, (n,), self.reduction)
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

    d loss / d x = sigma(x) - t,      d loss / d t = -x."""

    def __init__(self, reduction):
        self.reduction = reduction

    def forward(self, x, t):
        xp = backend.get_array_module(x)
        self.x, self.t = x, t
        z = xp.exp(-abs(x))
        self.sigma = xp.where(x >= 0, 1 / (1 + z), z / (1 + z))    # stable, as in sigmoid
        return _reduce(xp.maximum(x, 0) - x * t + xp.log1p(z), self.reduction)

    def backward(self, grad):
        g = _reduced_grad(grad, self.x.shape, self.reduction)
        return (self.sigma - self.t) * g, -self.x * g


# ---- argument checks --------------------------------------------------------------------------


def _class_labels(labels, scores, op, scores_name):
    """The labels as an integer array on the scores' device, checked against the scores'
    (N, C) shape: one index per row, each in [0, C)."""
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
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        bad = low if low < 0 else high if high >= classes else None
        if bad is not None:
            raise ValueError(f"{op}: labels must be class indices in [0, {classes - 1}] for "
                             f"{classes} classes, got {bad}")
    return labels


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

def cross_entropy(logits, labels, reduction="mean"):
    """Softmax cross-entropy of ``logits`` (N, C) against class indices ``labels`` (N,).

    Equal to nll_loss(log_softmax(logits), labels), computed as one stable op."""
    op = "cross_entropy"
    reduction = check_reduction(reduction, op)
    logits = _scores(logits, "logits", op)
    labels = _class_labels(labels, logits, op, "logits")
    return CrossEntropy(labels, reduction)(logits)


def nll_loss(log_probs, labels, reduction="mean"):
    """Negative log-likelihood: -log_probs[n, labels[n]], averaged over the batch."""
    op = "nll_loss"
    reduction = check_reduction(reduction, op)
    log_probs = _scores(log_probs, "log_probs", op)
    labels = _class_labels(labels, log_probs, op, "log_probs")
    return NLLLoss(labels, reduction)(log_probs)


def mse_loss(input, target, reduction="mean"):
    """Mean squared error.  ``target`` must have ``input``'s shape (PyTorch would broadcast
    with a warning; a shape mismatch is almost always a bug, so it is an error here)."""
    op = "mse_loss"
    reduction = check_reduction(reduction, op)
    input = float_tensor(input, "input", op)
    target = _target(target, input, op, "input", "target")
    return MSELoss(reduction)(input, target)


def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    """Sigmoid + binary cross-entropy in one stable op; ``targets`` in [0, 1], same shape."""
    op = "binary_cross_entropy_with_logits"
    reduction = check_reduction(reduction, op)
    logits = float_tensor(logits, "logits", op)
    targets = _target(targets, logits, op, "logits", "targets")
    return BCEWithLogits(reduction)(logits, targets)
