"""Dropout and batch normalization: layers that behave differently in training and in eval.

    dropout:     training: zero each unit with probability p, scale the kept ones by 1/(1-p)
                 eval:     the identity
    batch_norm:  training: normalize each channel with the batch's mean and variance, and
                           update the running averages of both (in place, as PyTorch)
                 eval:     normalize with the running averages

plus layer_norm and group_norm, which normalize each example on its own (the same in
training and eval): over its last axes, or over groups of its channels.
"""
import numpy as np

from .. import backend, kernels
from ..autograd import Function, Tensor
from ..random import get_generator
from ._checks import check_ndim, check_number, float_tensor

# ---- dropout ----------------------------------------------------------------------------------


class Dropout(Function):
    """Inverted dropout: y = x * mask / (1 - p), mask_i ~ Bernoulli(1 - p).

    Scaling the kept units in training (not shrinking all of them in eval) keeps the
    expected value E[y] = x, so eval needs no change at all.  Backward multiplies by the
    same mask and scale: a dropped unit passes no gradient."""

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        rng = get_generator(backend.device_of(x))
        uniform = rng.random(x.shape, dtype=np.float64 if x.dtype == np.float64 else np.float32)
        keep = uniform >= self.p                               # true with probability 1 - p
        factor = 0.0 if self.p == 1 else 1.0 / (1.0 - self.p)  # p = 1 drops everything
        self.scale = keep * x.dtype.type(factor)               # mask/(1-p), in x's dtype
        return x * self.scale

    def backward(self, grad):
        return grad * self.scale


def dropout(x, p=0.5, training=True):
    """Zero units with probability ``p`` and scale the rest by 1/(1-p) when ``training``;
    return ``x`` itself otherwise.  The mask comes from ``tinynet.random.get_generator()``,
    so ``tn.manual_seed`` makes it repeatable."""
    op = "dropout"
    p = check_number(p, "p", op, 0.0, 1.0)
    training = _check_bool(training, "training", op)
    x = float_tensor(x, "x", op)
    if not training or p == 0:
        return x
    return Dropout(p)(x)


# ---- batch normalization -----------------------------------------------------------------------


class BatchNorm(Function):
    """Per channel c (axis 1), over the batch and spatial positions (m values):

        mu = mean(x),  var = mean((x - mu)^2)          (biased: divide by m)
        x_hat = (x - mu) / sqrt(var + eps)
        y = weight * x_hat + bias

    In training, mu and var depend on x, so backward has three paths from each x_i (through
    x_hat_i itself, through mu, through var).  Summed, they give the compact formula, with
    g_hat = dL/dx_hat = weight * dL/dy:

        dL/dx = 1/sqrt(var + eps) * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat))

    In eval, mu and var are constants (the running averages) and dL/dx = g_hat / sqrt(var + eps).
    Always: dL/dweight = sum(dL/dy * x_hat), dL/dbias = sum(dL/dy).

    BatchNormReLU (below) is the same op followed by relu."""

    relu = False

    def __init__(self, running_mean, running_var, training, momentum, eps, has_weight, has_bias):
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps = training, momentum, eps
        self.has_weight, self.has_bias = has_weight, has_bias

    def forward(self, x, *params):
        xp = backend.get_array_module(x)
        weight = params[0] if self.has_weight else None
        bias = params[-1] if self.has_bias else None
        self.fast = kernels.numba_module("numba_norm", x)    # None: the NumPy code below
        if self.fast is not None:
            return self._forward_numba(x, weight, bias)
        self.axes = (0,) + tuple(range(2, x.ndim))            # all but the channel axis
        self.shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)     # (C,) -> broadcastable
        if self.training:
            mean, var = x.mean(axis=self.axes), x.var(axis=self.axes)
            self._update_running_stats(mean, var, x.size // x.shape[1])
        else:
            mean, var = self.running_mean, self.running_var
        self.inv_std = (1 / xp.sqrt(var + self.eps)).reshape(self.shape)
        self.x_hat = (x - mean.reshape(self.shape)) * self.inv_std
        self.weight = weight
        y = self.x_hat if weight is None else self.x_hat * weight.reshape(self.shape)
        y = y if bias is None else y + bias.reshape(self.shape)
        if self.relu:
            y = self.y = xp.maximum(y, 0)
        return y

    def _forward_numba(self, x, weight, bias):
        """The same forward in two compiled passes (kernels/numba_norm.py); backward then
        recomputes x_hat from x instead of keeping it."""
        if self.training:
            mean, var = self.fast.channel_mean_var(x)                     # float64
            self._update_running_stats(mean.astype(x.dtype), var.astype(x.dtype),
                                       x.size // x.shape[1])
        else:
            mean, var = self.running_mean, self.running_var
        self.x, self.mean, self.weight, self.bias = x, mean, weight, bias
        self.inv_std = 1 / np.sqrt(var.astype(np.float64) + self.eps)
        return self.fast.normalize(x, mean, self.inv_std, weight, bias, self.relu)

    def _update_running_stats(self, mean, var, m):
        """running = (1 - momentum) * running + momentum * batch statistic, in place.
        The running variance gets the unbiased estimate var * m/(m-1), as in PyTorch."""
        k = self.momentum
        if self.running_mean is not None:
            self.running_mean[...] = (1 - k) * self.running_mean + k * mean
        if self.running_var is not None:
            self.running_var[...] = (1 - k) * self.running_var + k * var * (m / (m - 1))

    def backward(self, grad):
        if self.fast is not None:
            grad_x, grad_w, grad_b = self.fast.batch_norm_backward(
                grad, self.x, self.mean, self.inv_std, self.weight, self.training,
                self.has_weight, self.has_bias, self.bias, self.relu)
            return (grad_x,) + ((grad_w,) if self.has_weight else ()) + (
                (grad_b,) if self.has_bias else ())
        if self.relu:                   # dL/dy from dL/d relu(y), as ReLU's backward
            xp = backend.get_array_module(grad)
            grad = grad * ((self.y > 0) | xp.isnan(self.y)).astype(grad.dtype)
        axes, x_hat = self.axes, self.x_hat
        g_hat = grad if self.weight is None else grad * self.weight.reshape(self.shape)
        if self.training:
            grad_x = self.inv_std * (g_hat - g_hat.mean(axis=axes, keepdims=True)
                                     - x_hat * (g_hat * x_hat).mean(axis=axes, keepdims=True))
        else:
            grad_x = g_hat * self.inv_std
        grads = (grad_x,)
        if self.has_weight:
            grads += ((grad * x_hat).sum(axis=axes),)
        if self.has_bias:
            grads += (grad.sum(axis=axes),)
        return grads


class BatchNormReLU(BatchNorm):
    """relu(BatchNorm(x)) as one op.  Backward first turns the incoming dL/d relu(y) into
    dL/dy (zero where y <= 0, as ReLU's backward does), then runs BatchNorm's.  The Numba
    kernels do both inside BatchNorm's own passes (the mask recomputed from x), so ReLU's
    two passes over the activation and its output array are saved."""

    relu = True


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalization over axis 1 of ``x`` (N, C), (N, C, L) or (N, C, H, W).

    running_mean, running_var  (C,) arrays or Tensors of x's dtype; updated in place when
                               ``training`` (may be None then: batch statistics only)
    weight, bias               (C,) scale and shift, or None
    momentum                   running = (1 - momentum) * running + momentum * batch value
    """
    return _batch_norm("batch_norm", x, running_mean, running_var, weight, bias, training,
                       momentum, eps, relu=False)


def batch_norm_relu(x, running_mean, running_var, weight=None, bias=None, training=False,
                    momentum=0.1, eps=1e-5):
    """relu(batch_norm(x, ...)) as one op: the same values and gradients, in fewer passes
    over the activation with the Numba kernels (nn.Sequential runs a BatchNorm followed by
    a ReLU this way).  Arguments as batch_norm."""
    return _batch_norm("batch_norm_relu", x, running_mean, running_var, weight, bias,
                       training, momentum, eps, relu=True)


def _batch_norm(op, x, running_mean, running_var, weight, bias, training, momentum, eps,
                relu):
    x = float_tensor(x, "input", op)
    check_ndim(x, (2, 3, 4), "input", op, " (N, C), (N, C, L) or (N, C, H, W)")
    training = _check_bool(training, "training", op)
    momentum = check_number(momentum, "momentum", op, 0.0, 1.0)
    eps = check_number(eps, "eps", op, 0.0)
    channels = x.shape[1]
    stats = {}
    for name, value in (("running_mean", running_mean), ("running_var", running_var)):
        stats[name] = None if value is None else _channel_array(value, name, x, op)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must both be given or both be "
                         "None")
    if not training and running_mean is None:
        raise ValueError(f"{op}: training=False normalizes with running_mean and running_var, "
                         "got None for both")
    params = []
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            _channel_array(value, name, x, op)
            params.append(value)
    if training and x.numel() // max(channels, 1) <= 1:
        raise ValueError(f"{op}: training needs more than 1 value per channel to compute a "
                         f"variance, got input of shape {tuple(x.shape)}")
    fn = (BatchNormReLU if relu else BatchNorm)(
        stats["running_mean"], stats["running_var"], training, momentum, eps,
        weight is not None, bias is not None)
    return fn(x, *params)


# ---- layer and group normalization ------------------------------------------------------------


class Standardize(Function):
    """x_hat = (x - mean) / sqrt(var + eps), mean and (biased) var over ``axes`` of each
    slice.  The same three-path backward as batch norm in training (there over the batch):

        dL/dx = 1/sqrt(var + eps) * (g - mean(g) - x_hat * mean(g * x_hat))"""

    def __init__(self, axes, eps):
        self.axes, self.eps = axes, eps

    def forward(self, x):
        xp = backend.get_array_module(x)
        mean = x.mean(axis=self.axes, keepdims=True)
        var = x.var(axis=self.axes, keepdims=True)
        self.inv_std = 1 / xp.sqrt(var + x.dtype.type(self.eps))
        self.x_hat = (x - mean) * self.inv_std
        return self.x_hat

    def backward(self, grad):
        axes, x_hat = self.axes, self.x_hat
        return self.inv_std * (grad - grad.mean(axis=axes, keepdims=True)
                               - x_hat * (grad * x_hat).mean(axis=axes, keepdims=True))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalization (Ba et al., 2016), as ``torch.nn.functional.layer_norm``: each
    example is standardized over its last ``len(normalized_shape)`` axes, which must equal
    ``normalized_shape``; then y = x_hat * weight + bias (both of that shape, or None)."""
    op = "layer_norm"
    x = float_tensor(x, "input", op)
    shape = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) \
        else tuple(int(n) for n in normalized_shape)
    k = len(shape)
    if k == 0 or tuple(x.shape[x.ndim - k:]) != shape or x.ndim < k:
        raise ValueError(f"{op}: normalized_shape {shape} must equal the last axes of the "
                         f"input, got input of shape {tuple(x.shape)}")
    eps = check_number(eps, "eps", op, 0.0)
    _check_affine(weight, bias, shape, x, op)
    y = Standardize(tuple(range(x.ndim - k, x.ndim)), eps)(x)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalization (Wu and He, 2018), as ``torch.nn.functional.group_norm``: the C
    channels of x (N, C, ...) are split into ``num_groups`` groups of C/G channels, and each
    example's group is standardized over its channels and positions together; then
    y = x_hat * weight_c + bias_c per channel.  G = 1 is layer norm over (C, H, W); G = C
    is instance norm."""
    op = "group_norm"
    x = float_tensor(x, "input", op)
    if x.ndim < 2:
        raise ValueError(f"{op}: input must be (N, C, ...), got shape {tuple(x.shape)}")
    channels = x.shape[1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) \
            or num_groups <= 0 or channels % num_groups:
        raise ValueError(f"{op}: num_groups must be a positive int that divides the "
                         f"{channels} channels, got {num_groups!r}")
    eps = check_number(eps, "eps", op, 0.0)
    _check_affine(weight, bias, (channels,), x, op)
    grouped = x.reshape(x.shape[0], int(num_groups), -1)
    y = Standardize((2,), eps)(grouped).reshape(x.shape)
    per_channel = (channels,) + (1,) * (x.ndim - 2)      # broadcasts over (N, C, ...)
    if weight is not None:
        y = y * weight.reshape(per_channel)
    return y if bias is None else y + bias.reshape(per_channel)


def _check_affine(weight, bias, shape, x, op):
    for name, value in (("weight", weight), ("bias", bias)):
        if value is None:
            continue
        if not isinstance(value, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor of shape {shape} or None, got "
                            f"{type(value).__name__}")
        if tuple(value.shape) != shape:
            raise ValueError(f"{op}: {name} must have shape {shape}, got {tuple(value.shape)}")
        if value.dtype != x.dtype:
            raise TypeError(f"{op}: {name} must have the input's dtype {x.dtype}, got "
                            f"{value.dtype}")


def _channel_array(value, name, x, op):
    """The array behind a per-channel argument, checked: shape (C,), x's dtype and device."""
    array = value.data if isinstance(value, Tensor) else value
    if not (isinstance(array, np.ndarray) or backend.is_cupy_array(array)):
        raise TypeError(f"{op}: {name} must be an array or Tensor of shape ({x.shape[1]},), "
                        f"got {type(value).__name__}")
    if array.dtype != x.dtype:
        raise TypeError(f"{op}: {name} must have the input's dtype {x.dtype}, got "
                        f"{array.dtype}")
    if array.shape != (x.shape[1],):
        raise ValueError(f"{op}: {name} must have shape ({x.shape[1]},), one value per "
                         f"channel of input {tuple(x.shape)}, got {tuple(array.shape)}")
    if backend.device_of(array) != x.device:
        raise ValueError(f"{op}: {name} is on '{backend.device_of(array)}' but input on "
                         f"'{x.device}'; move them to one device")
    return array


def _check_bool(value, name, op):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be True or False, got {value!r}")
    return bool(value)
