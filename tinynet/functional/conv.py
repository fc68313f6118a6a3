"""2-D convolution, forward and backward side by side (read it as DeZero's functions_conv.py).

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

The same maths as plain loops, one output pixel at a time, is ``tinynet/kernels/reference.py``
(conv2d_forward, conv2d_backward_input, conv2d_backward_weight; ``kernels.conv2d_backward``
calls both, or a module's own version that shares work between them); run every op through
those loops with ``with tn.kernels.use("reference"): ...``.  By default on the CPU the Numba
kernels of ``tinynet/kernels/cpu_numba.py`` run (im2col + one matrix product);
``tinynet.kernels`` picks one per call.  Argument checks are in ``_checks.py``.
"""
from .. import kernels
from ..autograd import Function
from ..geometry import conv_output_size  # noqa: F401  (F.conv.conv_output_size, as before)
from ._checks import check_conv2d, check_conv_transpose2d
from .shape import pad as _pad


class Conv2d(Function):
    def __init__(self, stride, padding, dilation, groups):
        self.geometry = (stride, padding, dilation, groups)

    def forward(self, x, weight, bias=None):
        self.x, self.weight = x, weight
        # ``saved``: what the forward pass built that dL/dW can use again (the Numba
        # kernel's im2col matrix), kept only when the weight needs a gradient, as max
        # pooling keeps its argmax.  It lives here, on the Function, until backward.
        # y[n, o, i, j] += b[o] inside (kernels.add_bias, or the kernel's own output pass)
        y, self.saved = kernels.conv2d_forward(x, weight, *self.geometry,
                                               save=self.needs_input_grad[1], bias=bias)
        self.setting = kernels.current()
        return y

    def backward(self, grad):
        need_x, need_w = self.needs_input_grad[:2]
        # ``saved`` is for the module that made it (im2col's col, Winograd's U): under
        # another setting another module runs the backward, and computes it again
        saved = self.saved if kernels.current() == self.setting else None
        # the input image of a first layer needs no gradient: skip the larger GEMM then;
        # dL/db[o] = sum over n, i, j of dL/dy (inside dL/dW's pass where a kernel can)
        need_b = len(self.needs_input_grad) == 3 and self.needs_input_grad[2]
        grad_x, grad_w, grad_b = kernels.conv2d_backward(
            grad, self.x, self.weight, *self.geometry, saved, need_x, need_w, need_b)
        if len(self.needs_input_grad) == 3:
            return grad_x, grad_w, grad_b
        return grad_x, grad_w

    def release(self):
        saved = getattr(self, "saved", None)
        super().release()
        if saved is not None:       # its memory goes to the next forward (no page faults)
            kernels.recycle(saved)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) of ``x`` (N, C, H, W) with ``weight``
    (O, C/groups, KH, KW), plus ``bias`` (O,) if given; returns (N, O, OH, OW):

        y[n, o, i, j] = sum_{c, u, v} x[n, c, i SH + u DH - PH, j SW + v DW - PW] w[o, c, u, v]
                        + b[o]
        OH = floor((H + 2 PH - DH (KH - 1) - 1) / SH) + 1                   (likewise OW)

    with x = 0 outside the image and c over the C/groups inputs of o's group.  Backward:
    dL/dx is the "full" correlation of dL/dy with the kernel, dL/dw the correlation of x
    with dL/dy, dL/db[o] = sum_{n,i,j} dL/dy[n, o, i, j].

    stride, dilation   int or (h, w) pair, >= 1
    padding            int or (h, w) pair of zeros on each side, or 'valid' (0) or 'same'
                       (output size = input size; stride 1 only, as in PyTorch)
    groups             C and O are split into ``groups`` independent blocks; groups = C = O
                       is a depthwise convolution
    """
    x, weight, bias, stride, padding, dilation, groups, extra = check_conv2d(
        x, weight, bias, stride, padding, dilation, groups)
    if any(extra):       # padding='same' with an odd total: the extra zero at bottom/right
        x = _pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d(stride, padding, dilation, groups)(*inputs)


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
        need_x, need_w = self.needs_input_grad[:2]
        grad_x = (kernels.conv2d_forward(grad, self.weight, *self.geometry)[0]
                  if need_x else None)
        grad_w = (kernels.conv2d_backward_weight(self.x, grad, self.weight.shape, *self.geometry)
                  if need_w else None)
        if len(self.needs_input_grad) == 3:
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
    x, weight, bias, stride, padding, dilation, groups, out_shape = check_conv_transpose2d(
        x, weight, bias, stride, padding, output_padding, groups, dilation)
    fn = ConvTranspose2d(out_shape, stride, padding, dilation, groups)
    return fn(x, weight) if bias is None else fn(x, weight, bias)


__all__ = ["conv2d", "conv_transpose2d", "conv_output_size"]
