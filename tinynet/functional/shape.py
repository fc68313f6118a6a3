"""Shape ops: reshape, transpose, indexing, padding, concatenation, stacking.

None of them does arithmetic: each moves values to new places, so each backward moves the
gradient back to where the value came from (reshape back, transpose by the inverse
permutation, scatter into zeros for indexing, slice off the padding, split a concatenation).
"""
import numpy as np

from .. import backend
from ..autograd import Function, Tensor
from ._checks import resolve_axis

class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, grad):
        return grad.reshape(self.in_shape)


class Transpose(Function):
    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        self.axes_used = (tuple(reversed(range(x.ndim))) if self.axes is None
                          else tuple(a % x.ndim for a in self.axes))   # -1 -> ndim-1
        return x.transpose(self.axes_used)

    def backward(self, grad):          # undo the permutation with its inverse
        return grad.transpose(tuple(np.argsort(self.axes_used)))


class GetItem(Function):
    """x[index].  Backward scatters the gradient into zeros; ``add.at`` so that an index
    repeated in a fancy index accumulates instead of overwriting."""

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.in_shape = x.shape
        return x[self.index]

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        grad_x = xp.zeros(self.in_shape, dtype=grad.dtype)
        if xp is np:
            np.add.at(grad_x, self.index, grad)
        else:
            xp.add.at(grad_x, self.index, grad)
        return grad_x


class Pad(Function):
    """Constant padding; ``pad_width`` as numpy's ((before, after), ...) per axis, all >= 0."""

    def __init__(self, pad_width, value=0.0):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.pad(x, self.pad_width, mode="constant", constant_values=self.value)

    def backward(self, grad):          # the gradient of the kept region is passed on
        index = tuple(slice(before, grad.shape[i] - after)
                      for i, (before, after) in enumerate(self.pad_width))
        return grad[index]


class Concat(Function):
    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        xp = backend.get_array_module(*xs)
        self.sizes = [x.shape[self.axis] for x in xs]
        return xp.concatenate(xs, axis=self.axis)

    def backward(self, grad):          # cut the gradient back into the input pieces
        xp = backend.get_array_module(grad)
        cuts = np.cumsum(self.sizes)[:-1]
        return tuple(xp.split(grad, cuts.tolist(), axis=self.axis))


class Stack(Function):
    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        return backend.get_array_module(*xs).stack(xs, axis=self.axis)

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        return tuple(xp.moveaxis(grad, self.axis, 0))


# ---- the functional API --------------------------------------------------------------

def reshape(x, shape):
    if isinstance(shape, int):
        shape = (shape,)
    return Reshape(tuple(shape))(x)


def flatten(x, start_axis=1):
    """Keep the first ``start_axis`` axes, merge the rest (N, C, H, W) -> (N, C*H*W)."""
    return Reshape(tuple(x.shape[:start_axis]) + (-1,))(x)


def squeeze(x, dim=None):
    """Drop size-1 axes: all of them, or only ``dim`` (an int or tuple), which PyTorch leaves
    alone when its size is not 1."""
    if dim is None:
        dims = {i for i, n in enumerate(x.shape) if n == 1}
    else:
        dims = {_dim(d, x.ndim, "squeeze") for d in ((dim,) if isinstance(dim, int) else dim)}
        dims = {d for d in dims if x.shape[d] == 1}
    return Reshape(tuple(n for i, n in enumerate(x.shape) if i not in dims))(x)


def unsqueeze(x, dim):
    """Insert a size-1 axis at ``dim`` (in [-ndim-1, ndim], as PyTorch)."""
    dim = _dim(dim, x.ndim + 1, "unsqueeze")
    return Reshape(tuple(x.shape[:dim]) + (1,) + tuple(x.shape[dim:]))(x)


def _dim(dim, ndim, op):
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise ValueError(f"{op}: dim must be in [{-max(ndim, 1)}, {max(ndim, 1) - 1}], got {dim}")
    return int(dim) % max(ndim, 1)


def transpose(x, axes=None):
    return Transpose(None if axes is None else tuple(axes))(x)


def getitem(x, index):
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return GetItem(index)(x)


def pad(x, pad, mode="constant", value=0.0):
    """Constant padding, in either of two forms:

    PyTorch's flat tuple, last axis first: ``(left, right)`` pads the last axis,
        ``(left, right, top, bottom)`` the last two, and so on (``F.pad(x, (0, 1, 0, 1))``
        adds one column on the right and one row at the bottom of (N, C, H, W) images)
    NumPy's per-axis pairs, first axis first: ``((0, 0), (0, 0), (top, bottom), (left, right))``

    A negative width crops instead of padding, as PyTorch's constant mode does.  Only
    mode='constant' exists (PyTorch also has 'reflect', 'replicate', 'circular')."""
    if mode != "constant":
        raise ValueError(f"pad: mode must be 'constant' (the only one tinynet has), got {mode!r}")
    widths = _pad_widths(pad, x.ndim)
    if any(n + before + after < 0 for n, (before, after) in zip(x.shape, widths)):
        raise ValueError(f"pad: pad {pad!r} crops more than the input's shape "
                         f"{tuple(x.shape)} holds")
    if any(b < 0 or a < 0 for b, a in widths):          # crop first (an indexing op)
        x = getitem(x, tuple(slice(-min(b, 0), n + min(a, 0))
                             for n, (b, a) in zip(x.shape, widths)))
        widths = tuple((max(b, 0), max(a, 0)) for b, a in widths)
    if not any(b or a for b, a in widths):
        return x
    return Pad(widths, 0.0 if value is None else value)(x)


def _pad_widths(pad, ndim):
    """((before, after), ...) for every axis, from the flat or the per-axis form."""
    def as_int(v):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"pad: widths must be ints, got {v!r} in pad={pad!r}")
        return int(v)
    try:
        items = list(pad)
    except TypeError:
        raise TypeError(f"pad: pad must be a flat tuple of ints, last axis first, as PyTorch "
                        f"(e.g. (0, 1, 0, 1)), or one (before, after) pair per axis; "
                        f"got {pad!r}") from None
    if items and all(isinstance(i, (tuple, list, np.ndarray)) for i in items):
        if len(items) != ndim or any(len(i) != 2 for i in items):
            raise ValueError(f"pad: the per-axis form needs one (before, after) pair per axis "
                             f"of the {ndim}-D input, got {pad!r}")
        return tuple((as_int(b), as_int(a)) for b, a in items)
    flat = [as_int(v) for v in items]
    if len(flat) % 2 or len(flat) > 2 * ndim:
        raise ValueError(f"pad: the flat form needs an even number of ints, at most 2 per axis "
                         f"({2 * ndim} for a {ndim}-D input), got {len(flat)}: {pad!r}")
    pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]    # last axis first
    return tuple([(0, 0)] * (ndim - len(pairs)) + pairs[::-1])


def concat(tensors, axis=None, *, dim=None):
    """Join along an existing ``axis`` (PyTorch: ``torch.cat(tensors, dim)``)."""
    return Concat(resolve_axis("concat", axis, dim, default=0))(*tensors)


def stack(tensors, axis=None, *, dim=None):
    """Join along a new ``axis`` (or ``dim``)."""
    return Stack(resolve_axis("stack", axis, dim, default=0))(*tensors)
