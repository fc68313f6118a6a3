"""Batch normalization (Ioffe and Szegedy, 2015).

In training, each channel c is normalized with the mean and (biased) variance of the
current batch, over every axis but the channel axis:

    x_hat = (x - mean_c) / sqrt(var_c + eps),     y = weight_c * x_hat + bias_c

and the running statistics are updated as PyTorch does (the variance unbiased):

    running_mean = (1 - momentum) running_mean + momentum mean_c

In eval mode the running statistics are used instead, so one example's output does not
depend on the rest of its batch.  The arithmetic lives in ``F.batch_norm``.

LayerNorm and GroupNorm standardize each example on its own (no running statistics).
"""
import numpy as np

from .. import functional as F
from ..functional._checks import check_number
from . import init
from .module import Module, Parameter


class _BatchNorm(Module):
    _expected_ndims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, *, bias=True):
        super().__init__()
        if not isinstance(num_features, (int, np.integer)) or num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, "
                             f"got {num_features!r}")
        check_number(eps, "eps", type(self).__name__, low=0.0)
        check_number(momentum, "momentum", type(self).__name__, 0.0, 1.0)
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.has_bias = affine and bias     # PyTorch >= 2.6: affine scale without shift
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
        if self.has_bias:
            self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
            self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x):
        return self._normalize(x, F.batch_norm)

    def forward_relu(self, x):
        """relu(self.forward(x)) as one op (F.batch_norm_relu): what nn.Sequential runs for
        this module and a ReLU after it when no hook is registered on either."""
        return self._normalize(x, F.batch_norm_relu)

    def _normalize(self, x, batch_norm):
        name = type(self).__name__
        if x.ndim not in self._expected_ndims:
            raise ValueError(f"{name}: expected a {' or '.join(map(str, self._expected_ndims))}-D "
                             f"input, got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: input has {x.shape[1]} channels (shape "
                             f"{tuple(x.shape)}), expected num_features={self.num_features}")
        momentum = 0.0 if self.momentum is None else self.momentum
        counting = self.training and self.track_running_stats
        if counting and self.momentum is None:   # cumulative moving average, as PyTorch
            momentum = 1.0 / float(self.num_batches_tracked + 1)
        # Batch statistics in training, or when there are no running statistics to use.
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        out = batch_norm(x, self.running_mean if track else None,
                         self.running_var if track else None, self.weight, self.bias,
                         training=use_batch_stats, momentum=momentum, eps=self.eps)
        if counting:     # only after F.batch_norm accepted the input: errors change nothing
            self.num_batches_tracked += 1
        return out

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.has_bias}, track_running_stats={self.track_running_stats}")


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) images, per channel C."""
    _expected_ndims = (4,)


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) features or (N, C, L) sequences, per channel C."""
    _expected_ndims = (2, 3)


class LayerNorm(Module):
    """Layer normalization over the last axes (``normalized_shape``), as PyTorch's: each
    example on its own, identical in training and eval.  state_dict: weight, bias."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, *, bias=True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) \
            else tuple(normalized_shape)
        if not shape or not all(isinstance(n, (int, np.integer)) and n > 0 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be positive ints, got "
                             f"{normalized_shape!r}")
        self.normalized_shape = tuple(int(n) for n in shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        _affine_parameters(self, self.normalized_shape, elementwise_affine, bias)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """Group normalization of (N, C, ...) over groups of C/num_groups channels, as
    PyTorch's: each example on its own, identical in training and eval (no running
    statistics, so small batches are fine).  state_dict: weight, bias of shape (C,)."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True):
        super().__init__()
        for name, value in (("num_groups", num_groups), ("num_channels", num_channels)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"GroupNorm: {name} must be a positive int, got {value!r}")
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        self.eps, self.affine = eps, affine
        _affine_parameters(self, (self.num_channels,), affine, True)

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: expected input (N, {self.num_channels}, ...), got "
                             f"shape {tuple(x.shape)}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


def _affine_parameters(module, shape, affine, bias):
    """weight = 1 and bias = 0 of ``shape``, or None, as PyTorch's norm layers."""
    module.register_parameter("weight", Parameter(np.ones(shape, np.float32)) if affine else None)
    module.register_parameter("bias", Parameter(np.zeros(shape, np.float32))
                              if affine and bias else None)
