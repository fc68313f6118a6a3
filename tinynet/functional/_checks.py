"""Argument checks shared by the ops in activation, loss, norm and resample.

Each raises a ValueError or TypeError whose message names the op, the argument, what was
expected and what was given, and runs before any op does work or changes state."""
import numbers

from ..autograd import Tensor, _as_array


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
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
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
