"""Argument checks shared by the ops (activation, loss, norm, resample, conv) and the layers.

Each raises a ValueError or TypeError whose message names the op, the argument, what was
expected and what was given, and runs before any op does work or changes state."""
import numbers

from ..autograd import Tensor, _as_array
from ..geometry import pair


def float_tensor(x, name, op):
    """``x`` as a floating Tensor: Tensors pass through, arrays/lists/numbers are wrapped.

    Integer, boolean and object data are refused: the ops here need real numbers."""
    if not isinstance(x, Tensor):
        try:
            x = Tensor(_as_array(x))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{op}: {name} must be a floating tensor or array, got "
                            f"{type(x).__name__} ({exc})") from None
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must have a floating dtype (float32 or float64), "
                        f"got dtype {x.dtype}")
    return x


def check_ndim(x, allowed, name, op, layout=""):
    """Raise unless ``x.ndim`` is one of ``allowed``."""
    if x.ndim not in allowed:
        want = " or ".join(f"{n}-D" for n in allowed)
        raise ValueError(f"{op}: {name} must be {want}{layout}, got {x.ndim}-D "
                         f"with shape {tuple(x.shape)}")


def check_axis(axis, ndim, op):
    """An int axis in [-ndim, ndim); returns it as a non-negative int."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if ndim == 0:
        raise ValueError(f"{op}: input must have at least 1 dimension, got a 0-D tensor")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis must be in [{-ndim}, {ndim - 1}] for a "
                         f"{ndim}-D input, got {axis}")
    return int(axis) % ndim


def check_number(value, name, op, low=None, high=None):
    """A real number (not bool, not NaN) in [low, high]; None leaves a side open."""
    if type(value) is not float and (isinstance(value, bool)     # (float first: the ABC
                                     or not isinstance(value, numbers.Real)):  # check is slow)
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    value = float(value)
    too_high = high is not None and value > high
    if (low is not None and value < low) or too_high or value != value:
        if low is None and high is None:
            want = "a number, not NaN"
        elif high is None:
            want = f">= {low}"
        else:
            want = f"in [{low}, {high}]"
        raise ValueError(f"{op}: {name} must be {want}, got {value}")
    return value


def check_reduction(reduction, op):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def same_device(op, **tensors):
    """Raise if the named Tensors live on different devices."""
    devices = {name: t.device for name, t in tensors.items() if isinstance(t, Tensor)}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{name} on '{dev}'" for name, dev in devices.items())
        raise ValueError(f"{op}: inputs must be on one device, got {where}; "
                         "move them with .to(device) first")


def resolve_axis(op, axis, dim, default=None):
    """``axis`` (NumPy's name) or ``dim`` (PyTorch's name) for the same argument; both at
    once is an error.  ``default`` when neither is given."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{op}: give axis= or its PyTorch name dim=, not both; got "
                            f"axis={axis!r} and dim={dim!r}")
        return dim
    return default if axis is None else axis


def resolve_keepdims(op, keepdims, keepdim):
    """``keepdims`` (NumPy) or ``keepdim`` (PyTorch); both at once is an error."""
    if keepdim is not None:
        if keepdims is not None:
            raise TypeError(f"{op}: give keepdims= or its PyTorch name keepdim=, not both; "
                            f"got keepdims={keepdims!r} and keepdim={keepdim!r}")
        return bool(keepdim)
    return bool(keepdims)


# ---- convolution arguments (F.conv2d, F.conv_transpose2d and nn.Conv2d) ------------------------

def int_pair(value, name, op, low=None, show_given=False):
    """``value`` as an (h, w) pair of ints (geometry.pair), each >= ``low`` when given.  The
    error shows the pair, or with ``show_given`` the value as the caller wrote it."""
    result = pair(value, name, op)
    if low is not None and min(result) < low:
        shown = repr(value) if show_given else str(result)
        raise ValueError(f"{op}: {name} must be >= {low}, got {shown}")
    return result


def check_groups(groups, op):
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    return int(groups)


def check_string_padding(padding, stride, op):
    """'valid' or 'same' (the latter with stride (1, 1) only, as in PyTorch)."""
    if padding not in ("valid", "same"):
        raise ValueError(f"{op}: padding must be an int, a pair, 'valid' or 'same', "
                         f"got {padding!r}")
    if padding == "same" and stride != (1, 1):
        raise ValueError(f"{op}: padding='same' needs stride 1, got stride={stride}")


def conv_tensors(op, x, weight, bias, weight_layout):
    """input (N, C, H, W), weight (4-D, ``weight_layout``) and bias (or None) as floating
    Tensors of one dtype on one device."""
    x = float_tensor(x, "input", op)
    weight = float_tensor(weight, "weight", op)
    if bias is not None:
        bias = float_tensor(bias, "bias", op)
    same_device(op, input=x, weight=weight, bias=bias)
    if x.ndim != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got {x.ndim}-D "
                         f"with shape {tuple(x.shape)}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D {weight_layout}, got "
                         f"{weight.ndim}-D with shape {tuple(weight.shape)}")
    if weight.dtype != x.dtype:
        raise TypeError(f"{op}: weight dtype {weight.dtype} differs from input dtype "
                        f"{x.dtype}; cast one of them (e.g. weight.astype(x.dtype))")
    if bias is not None and bias.dtype != x.dtype:
        raise TypeError(f"{op}: bias dtype {bias.dtype} differs from input dtype {x.dtype}")
    return x, weight, bias


def check_conv2d(x, weight, bias, stride, padding, dilation, groups):
    """F.conv2d's arguments, checked and normalized: returns (x, weight, bias, stride,
    padding, dilation, groups, extra), stride/padding/dilation as (h, w) pairs; for
    padding='same' with an odd total D (K - 1), ``extra`` is the one more row/column of
    zeros (0 or 1 per axis) that goes at the bottom/right, as PyTorch does."""
    op = "conv2d"
    x, weight, bias = conv_tensors(op, x, weight, bias, "(C_out, C_in/groups, KH, KW)")
    stride = int_pair(stride, "stride", op, low=1)
    dilation = int_pair(dilation, "dilation", op, low=1)
    groups = check_groups(groups, op)
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
    if bias is not None and tuple(bias.shape) != (o,):
        raise ValueError(f"{op}: bias must have shape ({o},) (one per output channel), "
                         f"got {tuple(bias.shape)}")
    extra = (0, 0)
    if isinstance(padding, str):
        check_string_padding(padding, stride, op)
        total = (dilation[0] * (kh - 1), dilation[1] * (kw - 1)) if padding == "same" else (0, 0)
        padding = (total[0] // 2, total[1] // 2)
        extra = (total[0] - 2 * padding[0], total[1] - 2 * padding[1])
        h, w = h + extra[0], w + extra[1]
    else:
        padding = int_pair(padding, "padding", op, low=0)
    for axis, size, k, p, d in (("height", h, kh, padding[0], dilation[0]),
                                ("width", w, kw, padding[1], dilation[1])):
        if d * (k - 1) + 1 > size + 2 * p:
            raise ValueError(
                f"{op}: kernel {axis} {k} (dilated span {d * (k - 1) + 1}) is larger than "
                f"the padded input {axis} {size} + 2*{p} = {size + 2 * p}")
    return x, weight, bias, stride, padding, dilation, groups, extra


def check_conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation):
    """F.conv_transpose2d's arguments, checked and normalized: returns (x, weight, bias,
    stride, padding, dilation, groups, out_shape), out_shape = (N, C_out, OH, OW)."""
    op = "conv_transpose2d"
    x, weight, bias = conv_tensors(op, x, weight, bias, "(C_in, C_out/groups, KH, KW)")
    stride = int_pair(stride, "stride", op, low=1)
    dilation = int_pair(dilation, "dilation", op, low=1)
    padding = int_pair(padding, "padding", op, low=0)
    output_padding = int_pair(output_padding, "output_padding", op)
    if not all(0 <= extra < s for extra, s in zip(output_padding, stride)):
        raise ValueError(f"{op}: output_padding must be >= 0 and smaller than stride {stride}, "
                         f"got {output_padding}")
    groups = check_groups(groups, op)
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
    return x, weight, bias, stride, padding, dilation, groups, (n, c_out) + out_hw
