"""Layers: each holds its parameters and calls the matching ``tinynet.functional`` op.

Shapes follow PyTorch (NCHW for images); parameter names, shapes and default
initialization follow PyTorch too, so ``state_dict`` keys and arrays match theirs.
"""
import math

import numpy as np

from .. import functional as F
from ..functional._checks import (check_groups, check_number, check_string_padding,
                                  int_pair)
from ..functional.pool import check_output_size, check_window
from . import init
from .module import Module, Parameter


def _check_int(value, name, layer):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer}: {name} must be an int, got {value!r}")


def _check_positive(value, name, layer):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")


# ---- dense and convolution ---------------------------------------------------------------

def _weight_and_bias(module, weight_shape, bias):
    """Register ``weight`` (weight_shape) and ``bias`` (weight_shape[0],) or None, then
    initialize them."""
    module.weight = Parameter(np.empty(weight_shape, dtype=np.float32))
    if bias:
        module.bias = Parameter(np.empty(weight_shape[0], dtype=np.float32))
    else:
        module.register_parameter("bias", None)
    module.reset_parameters()


def _reset_weight_and_bias(module):
    """PyTorch's default for Linear and Conv2d: weight ~ kaiming_uniform(a=sqrt(5)), that is
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias from the same range."""
    init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    if module.bias is not None:
        fan_in, _ = init.calculate_fan_in_and_fan_out(module.weight)
        bound = 1 / math.sqrt(fan_in)
        init.uniform_(module.bias, -bound, bound)


class Linear(Module):
    """y = x W^T + b, W of shape (out_features, in_features).

    Initialization as PyTorch: W, b ~ U(-1/sqrt(in_features), 1/sqrt(in_features))."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        _check_positive(in_features, "in_features", "Linear")
        _check_positive(out_features, "out_features", "Linear")
        self.in_features, self.out_features = int(in_features), int(out_features)
        _weight_and_bias(self, (out_features, in_features), bias)

    def reset_parameters(self):
        _reset_weight_and_bias(self)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Conv2d(Module):
    """2-D cross-correlation over (N, C_in, H, W) -> (N, C_out, OH, OW).

    weight (C_out, C_in/groups, KH, KW), bias (C_out,);
    OH = floor((H + 2 PH - DH (KH - 1) - 1) / SH) + 1, and likewise OW.
    Initialization as PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C_in/groups*KH*KW."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True):
        super().__init__()
        _check_positive(in_channels, "in_channels", "Conv2d")
        _check_positive(out_channels, "out_channels", "Conv2d")
        groups = check_groups(groups, "Conv2d")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must both be divisible by groups ({groups})")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        # F.conv2d's own checks, run here so that a bad argument fails at construction
        self.kernel_size = int_pair(kernel_size, "kernel_size", "Conv2d", 1, show_given=True)
        self.stride = int_pair(stride, "stride", "Conv2d", 1, show_given=True)
        if isinstance(padding, str):
            check_string_padding(padding, self.stride, "Conv2d")
            self.padding = padding
        else:
            self.padding = int_pair(padding, "padding", "Conv2d", 0, show_given=True)
        self.dilation = int_pair(dilation, "dilation", "Conv2d", 1, show_given=True)
        _weight_and_bias(self, (out_channels, in_channels // groups) + self.kernel_size, bias)

    def reset_parameters(self):
        _reset_weight_and_bias(self)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"    # PyTorch prints padding=same unquoted
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class ConvTranspose2d(Module):
    """Transposed convolution (N, C_in, H, W) -> (N, C_out, OH, OW), the input gradient of
    a Conv2d(C_out, C_in) used as a layer (see ``F.conv_transpose2d``).

    weight (C_in, C_out/groups, KH, KW) (PyTorch's layout), bias (C_out,);
    OH = (H - 1) SH - 2 PH + DH (KH - 1) + output_padding + 1.  Initialization as PyTorch:
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = weight.shape[1] * KH * KW."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("groups", groups)):
            _check_positive(value, name, "ConvTranspose2d")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"ConvTranspose2d: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must both be divisible by groups ({groups})")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        op = "ConvTranspose2d"
        self.kernel_size = int_pair(kernel_size, "kernel_size", op, 1, show_given=True)
        self.stride = int_pair(stride, "stride", op, 1, show_given=True)
        self.padding = int_pair(padding, "padding", op, 0, show_given=True)
        self.output_padding = int_pair(output_padding, "output_padding", op, 0, show_given=True)
        self.dilation = int_pair(dilation, "dilation", op, 1, show_given=True)
        self.weight = Parameter(np.empty((in_channels, out_channels // groups)
                                         + self.kernel_size, dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        _reset_weight_and_bias(self)     # fan_in from weight.shape[1], as PyTorch

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"output_padding={self.output_padding}, groups={self.groups}, "
                f"dilation={self.dilation}, bias={self.bias is not None}")


# ---- pooling --------------------------------------------------------------------------

class MaxPool2d(Module):
    """Maximum over each KH x KW window; stride defaults to kernel_size.  ``ceil_mode`` and
    ``return_indices`` as PyTorch; ``dilation`` only 1."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        check_window(type(self).__name__, kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode, self.return_indices)

    def forward_of_relu(self, x):
        """self.forward(relu(x)) as one op (F.relu_max_pool2d): what nn.Sequential runs for
        a ReLU and this module after it when no hook is registered on either."""
        return F.relu_max_pool2d(x, self.kernel_size, self.stride, self.padding,
                                 self.ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Mean over each KH x KW window (padding counts as zeros, as PyTorch's default);
    ``ceil_mode``, ``count_include_pad`` and ``divisor_override`` as PyTorch."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        check_window(type(self).__name__, kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (OH, OW), whatever the input size."""

    def __init__(self, output_size):
        super().__init__()
        check_output_size(output_size, "AdaptiveAvgPool2d")
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed output size (OH, OW), over PyTorch's adaptive bins."""

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        check_output_size(output_size, "AdaptiveMaxPool2d")
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x):
        return F.adaptive_max_pool2d(x, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


# ---- activations -------------------------------------------------------------------

class _Activation(Module):
    """``inplace`` is accepted so PyTorch model code runs unchanged; tinynet never
    overwrites an input, so it changes nothing but the repr."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class ReLU(_Activation):
    """max(0, x)."""

    def forward(self, x):
        return F.relu(x)


class LeakyReLU(_Activation):
    """x for x > 0, negative_slope * x otherwise."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__(inplace)
        check_number(negative_slope, "negative_slope", "LeakyReLU")
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ReLU6(_Activation):
    """min(max(0, x), 6) (MobileNet's activation)."""

    def forward(self, x):
        return F.relu6(x)


class Sigmoid(Module):
    """The logistic function 1 / (1 + exp(-x))."""

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class _AlongDim(Module):
    """Shared by Softmax and LogSoftmax (siblings, as in PyTorch): the axis ``dim``."""

    def __init__(self, dim=-1):
        super().__init__()
        _check_int(dim, "dim", type(self).__name__)
        self.dim = dim

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_AlongDim):
    """exp(x_i) / sum_j exp(x_j) along ``dim`` (default: the last axis)."""

    def forward(self, x):
        return F.softmax(x, axis=self.dim)


class LogSoftmax(_AlongDim):
    """x_i - log sum_j exp(x_j) along ``dim`` (default: the last axis): the log of Softmax,
    computed without forming the probabilities (no log(0) for a very negative x_i)."""

    def forward(self, x):
        return F.log_softmax(x, axis=self.dim)


# ---- regularization and shape -----------------------------------------------------

class Dropout(Module):
    """In training, zero each element with probability p and scale the rest by 1/(1-p);
    in eval mode, the identity."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        check_number(p, "p", "Dropout", 0.0, 1.0)
        self.p, self.inplace = p, inplace     # inplace: accepted for PyTorch code, ignored

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Flatten(Module):
    """Merge axes start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        _check_int(start_dim, "start_dim", "Flatten")
        _check_int(end_dim, "end_dim", "Flatten")
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        ndim = x.ndim
        start = self.start_dim % ndim if ndim else 0
        end = self.end_dim % ndim if ndim else 0
        shape = tuple(x.shape[:start]) + (-1,) + tuple(x.shape[end + 1:])
        if shape == tuple(x.shape):
            return x
        return F.reshape(x, shape)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Returns its input (a placeholder, e.g. for a removed classifier head)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x
