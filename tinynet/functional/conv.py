"""2-D convolution, forward and backward side by side.

Notation (NCHW, as in DeZero):

    N       batch size                      C, O     input and output channels
    H, W    input height and width          KH, KW   kernel height and width
    SH, SW  stride                          PH, PW   zero padding on each side
    DH, DW  dilation (gap between taps)     G        groups
    OH, OW  output size:  OH = floor((H + 2 PH - DH (KH - 1) - 1) / SH) + 1

A "convolution" layer computes a cross-correlation (the kernel is not flipped):

    y[n, o, i, j] = sum_{c, u, v} x[n, c, i SH + u DH - PH, j SW + v DW - PW] w[o, c, u, v] + b[o]

with x read as 0 outside the image and c running over the C/G input channels of o's group.
The lecture's example: the 3x3 input 0..8 with the 2x2 kernel 0..3 gives [[19, 25], [37, 43]]
(19 = 0*0 + 1*1 + 3*2 + 4*3).

Every input pixel reaches y through the windows that cover it, so backward is

    dL/dx = "full" correlation of dL/dy with the kernel      (kernels.conv2d_backward_input)
    dL/dw = correlation of x with dL/dy                        (kernels.conv2d_backward_weight)
    dL/db[o] = sum_{n, i, j} dL/dy[n, o, i, j]

The loops themselves live in ``tinynet.kernels`` (reference loops, im2col + GEMM, Numba,
CuPy); this op only checks arguments and calls the kernels through their dispatch.
"""
import numpy as np

from .. import kernels
from ..autograd import Function, Tensor
from ..kernels import conv_output_size
from ._checks import float_tensor, same_device
from .shape import pad as _pad


class Conv2d(Function):
    def __init__(self, stride, padding, dilation, groups):
        self.stride, self.padding = stride, padding
        self.dilation, self.groups = dilation, groups

    def forward(self, x, weight, bias=None):
        self.x, self.weight = x, weight
        y = kernels.conv2d_forward(x, weight, self.stride, self.padding, self.dilation,
                                   self.groups)
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)     # y is a fresh array from the kernel
        return y

    def backward(self, grad):
        geometry = (self.stride, self.padding, self.dilation, self.groups)
        x_input, w_input = self.inputs[:2]
        # the input image of a first layer needs no gradient: skip the larger GEMM then
        grad_x = (kernels.conv2d_backward_input(grad, self.weight, self.x.shape, *geometry)
                  if x_input.requires_grad else None)
        grad_w = (kernels.conv2d_backward_weight(grad, self.x, self.weight.shape, *geometry)
                  if w_input.requires_grad else None)
        if len(self.inputs) == 3:
            return grad_x, grad_w, grad.sum(axis=(0, 2, 3))
        return grad_x, grad_w


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) of ``x`` (N, C, H, W) with ``weight``
    (O, C/groups, KH, KW), plus ``bias`` (O,) if given; returns (N, O, OH, OW).

    stride, dilation   int or (h, w) pair, >= 1
    padding            int or (h, w) pair of zeros on each side, or 'valid' (0) or 'same'
                       (output size = input size; stride 1 only, as in PyTorch)
    groups             C and O are split into ``groups`` independent blocks; groups = C = O
                       is a depthwise convolution
    """
    op = "conv2d"
    x, weight, bias = _float_inputs(op, x, weight, bias)
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got {x.ndim}-D "
                         f"with shape {tuple(x.shape)}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (C_out, C_in/groups, KH, KW), got "
                         f"{weight.ndim}-D with shape {tuple(weight.shape)}")
    if weight.dtype != x.dtype:
        raise TypeError(f"{op}: weight dtype {weight.dtype} differs from input dtype "
                        f"{x.dtype}; cast one of them (e.g. weight.astype(x.dtype))")
    stride = _positive_pair(stride, "stride", op)
    dilation = _positive_pair(dilation, "dilation", op)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    groups = int(groups)

    n, c, h, w = x.shape
    o, c_per_group, kh, kw = weight.shape
    if c % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels C_in={c}")
    if o % groups:
        raise ValueError(f"{op}: groups={groups} must divide the output channels "
                         f"C_out={o} (weight shape {tuple(weight.shape)})")
    if c_per_group * groups != c:
        raise ValueError(
            f"{op}: input has C_in={c} channels, but weight {tuple(weight.shape)} with "
            f"groups={groups} expects C_in = weight.shape[1] * groups = {c_per_group * groups}")
    if bias is not None:
        if tuple(bias.shape) != (o,):
            raise ValueError(f"{op}: bias must have shape ({o},) (one per output channel), "
                             f"got {tuple(bias.shape)}")
        if bias.dtype != x.dtype:
            raise TypeError(f"{op}: bias dtype {bias.dtype} differs from input dtype {x.dtype}")

    if isinstance(padding, str):
        x, padding = _string_padding(x, padding, (kh, kw), stride, dilation, op)
        h, w = x.shape[2:]
    else:
        padding = _pair(padding, "padding", op)
        if min(padding) < 0:
            raise ValueError(f"{op}: padding must be >= 0, got {padding}")
    for axis, size, k, p, d in (("height", h, kh, padding[0], dilation[0]),
                                ("width", w, kw, padding[1], dilation[1])):
        if d * (k - 1) + 1 > size + 2 * p:
            raise ValueError(
                f"{op}: kernel {axis} {k} (dilated span {d * (k - 1) + 1}) is larger than "
                f"the padded input {axis} {size} + 2*{p} = {size + 2 * p}")

    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d(stride, padding, dilation, groups)(*inputs)


def _float_inputs(op, x, weight, bias):
    """input, weight and bias (or None) as floating Tensors on one device."""
    x = float_tensor(x, "input", op)
    weight = float_tensor(weight, "weight", op)
    if bias is not None:
        bias = float_tensor(bias, "bias", op)
    same_device(op, input=x, weight=weight, bias=bias)
    return x, weight, bias


def _pair(value, name, op):
    try:
        return kernels.pair(value, name)
    except TypeError as exc:
        raise TypeError(f"{op}: {exc}") from None


def _positive_pair(value, name, op):
    value = _pair(value, name, op)
    if min(value) < 1:
        raise ValueError(f"{op}: {name} must be >= 1, got {value}")
    return value


def _string_padding(x, padding, kernel, stride, dilation, op):
    """'valid' is no padding.  'same' pads D (K - 1) in total per axis, the odd one at the
    bottom/right as PyTorch does; an uneven split is padded explicitly beforehand."""
    if padding == "valid":
        return x, (0, 0)
    if padding != "same":
        raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', "
                         f"got {padding!r}")
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' needs stride 1, got stride={stride}")
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    before = tuple(t // 2 for t in total)
    extra = [t - 2 * b for t, b in zip(total, before)]       # 0 or 1 per axis
    if any(extra):
        x = _pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
    return x, before


# ---- transposed convolution ------------------------------------------------------------------


class ConvTranspose2d(Function):
    """The transposed convolution is conv2d's input gradient used as a forward pass: a
    conv2d maps (N, C_out, OH, OW) -> (N, C_in, H, W) with some weight w; its backward
    maps dL/dy of shape (N, C_in, H, W) back to (N, C_out, OH, OW).  So, with the same
    kernels,

        forward:   y  = conv2d_backward_input(x, w)        ("scatter" each input pixel
                                                             times the kernel into y)
        backward:  dL/dx = conv2d_forward(dL/dy, w)         (the transpose of the transpose)
                   dL/dw = conv2d_backward_weight(x, dL/dy) (x plays conv2d's dL/dy)
                   dL/db = sum over n, i, j of dL/dy"""

    def __init__(self, out_shape, stride, padding, dilation, groups):
        self.out_shape = out_shape
        self.geometry = (stride, padding, dilation, groups)

    def forward(self, x, weight, bias=None):
        self.x, self.weight = x, weight
        y = kernels.conv2d_backward_input(x, weight, self.out_shape, *self.geometry)
        if bias is not None:
            y = y + bias.reshape(1, -1, 1, 1)
        return y

    def backward(self, grad):
        x_input, w_input = self.inputs[:2]
        grad_x = (kernels.conv2d_forward(grad, self.weight, *self.geometry)
                  if x_input.requires_grad else None)
        grad_w = (kernels.conv2d_backward_weight(self.x, grad, self.weight.shape, *self.geometry)
                  if w_input.requires_grad else None)
        if len(self.inputs) == 3:
            return grad_x, grad_w, grad.sum(axis=(0, 2, 3))
        return grad_x, grad_w


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 2-D convolution ("deconvolution"), as ``torch.nn.functional.conv_transpose2d``
    (same argument order): ``x`` (N, C_in, H, W), ``weight`` (C_in, C_out/groups, KH, KW)
    (PyTorch's layout: the first axis is the *input* channels), ``bias`` (C_out,).

        OH = (H - 1) SH - 2 PH + DH (KH - 1) + output_padding_h + 1        (likewise OW)

    It is the gradient of conv2d with respect to its input: ``conv2d(y, weight, stride=s,
    padding=p, dilation=d, groups=g)`` has (N, C_in, H, W) outputs for (N, C_out, OH, OW)
    inputs, and conv_transpose2d goes the other way with the same weight.
    ``output_padding`` (< stride) picks among the OH that conv2d maps to the same H.
    Differences from PyTorch: PyTorch also accepts output_padding < dilation when it is not
    < stride; string padding is not accepted (neither does PyTorch)."""
    op = "conv_transpose2d"
    x, weight, bias = _float_inputs(op, x, weight, bias)
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C_in, H, W), got shape {tuple(x.shape)}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (C_in, C_out/groups, KH, KW), got shape "
                         f"{tuple(weight.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"{op}: {name} dtype {t.dtype} differs from input dtype {x.dtype}")
    stride = _positive_pair(stride, "stride", op)
    dilation = _positive_pair(dilation, "dilation", op)
    padding = _pair(padding, "padding", op)
    output_padding = _pair(output_padding, "output_padding", op)
    if min(padding) < 0:
        raise ValueError(f"{op}: padding must be >= 0, got {padding}")
    if not all(0 <= op_ < s for op_, s in zip(output_padding, stride)):
        raise ValueError(f"{op}: output_padding must be >= 0 and smaller than stride {stride}, "
                         f"got {output_padding}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    groups = int(groups)
    n, c_in, h, w = x.shape
    if weight.shape[0] != c_in:
        raise ValueError(f"{op}: input has C_in={c_in} channels, weight "
                         f"{tuple(weight.shape)} expects weight.shape[0] = {weight.shape[0]}")
    if c_in % groups:
        raise ValueError(f"{op}: groups={groups} must divide the input channels C_in={c_in}")
    c_out = weight.shape[1] * groups
    kh, kw = weight.shape[2:]
    out_hw = tuple((size - 1) * s - 2 * p + d * (k - 1) + extra + 1 for size, s, p, d, k, extra
                   in zip((h, w), stride, padding, dilation, (kh, kw), output_padding))
    if min(out_hw) < 1:
        raise ValueError(f"{op}: the output would be {out_hw} for input {tuple(x.shape)}; "
                         f"padding {padding} is too large")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"{op}: bias must have shape ({c_out},) (C_out = weight.shape[1] * "
                         f"groups), got {tuple(bias.shape)}")
    fn = ConvTranspose2d((n, c_out) + out_hw, stride, padding, dilation, groups)
    return fn(x, weight) if bias is None else fn(x, weight, bias)


__all__ = ["conv2d", "conv_transpose2d", "conv_output_size"]
