"""Shape ops: reshape, transpose, indexing, padding, concatenation, stacking.

None of them does arithmetic: each moves values to new places, so each backward moves the
gradient back to where the value came from (reshape back, transpose by the inverse
permutation, scatter into zeros for indexing, slice off the padding, split a concatenation).
"""
import numpy as np

from .. import backend
from ..autograd import Function, Tensor, bump_version, is_grad_enabled
from ._checks import resolve_axis

class Reshape(Function):
    saves_inputs = False      # backward reads no input values

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, grad):
        return grad.reshape(self.in_shape)


class Transpose(Function):
    saves_inputs = False      # backward reads no input values

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
    repeated in a fancy index accumulates instead of overwriting.

    ``select`` is a basic index (integers, slices) applied first, ``index`` the rest: see
    ``getitem`` for why an index is split in two."""
    saves_inputs = False      # backward reads no input values

    def __init__(self, index, select=None):
        self.index, self.select = index, select

    def forward(self, x):
        self.in_shape = x.shape
        if self.select is not None:
            x = x[self.select]                     # a view: basic indexing copies nothing
        return x[self.index]

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        grad_x = xp.zeros(self.in_shape, dtype=grad.dtype)
        target = grad_x if self.select is None else grad_x[self.select]   # a view into it
        xp.add.at(target, self.index, grad)
        return grad_x


class Pad(Function):
    """Constant padding; ``pad_width`` as numpy's ((before, after), ...) per axis, all >= 0."""
    saves_inputs = False      # backward reads no input values

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
    saves_inputs = False      # backward reads no input values

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
    saves_inputs = False      # backward reads no input values

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
    """x[index] with PyTorch's placement rule for mixed indices.

    NumPy counts an integer as an index array: in ``a[0, :, [0, 1, 2]]`` the integer and the
    list are "separated by a slice", so NumPy puts the list's axis first.  PyTorch first
    applies the integers (each removes its axis) and only then the index arrays, so the list's
    axis stays where the list was.  tinynet does as PyTorch: ``x[integers][rest]``."""
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    select, rest = _split_integers(index)
    return GetItem(rest, select)(x)


def setitem(x, index, value):
    """``x[index] = value`` in place, for a tensor outside any graph (PyTorch's placement
    rule, as ``getitem``).  Bumps ``x``'s version, so a graph that read ``x`` before refuses
    to run backward with the new values."""
    if x.requires_grad and is_grad_enabled():
        kind = "a leaf tensor that requires grad" if x.is_leaf else "a tensor in a graph"
        raise RuntimeError(
            f"x[...] = value on {kind} (shape {tuple(x.shape)}): its gradient could no longer "
            "be computed.  Change a leaf under `with tn.no_grad():`, or build a new tensor "
            "(F.where, F.concat) instead of writing into one that is part of a graph")
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(value, Tensor):
        if value.device != x.device:
            raise ValueError(f"x[...] = value: value is on {value.device}, x on {x.device}")
        value = value.data
    elif x.device != "cpu" and isinstance(value, (np.ndarray, list, tuple)):
        value = backend.move(np.asarray(value), x.device)       # CuPy takes no NumPy array
    select, rest = _split_integers(index)
    target = x.data if select is None else x.data[select]      # a view into x.data
    target[rest] = value
    bump_version(x)


def _is_integer(i):
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _split_integers(index):
    """(integer part, rest) of an index that mixes integers with index arrays, where NumPy
    and PyTorch differ; (None, index) for every other index."""
    if not isinstance(index, tuple):
        return None, index
    is_array = [not (_is_integer(i) or i is None or i is Ellipsis or isinstance(i, slice))
                for i in index]
    if not any(is_array) or not any(_is_integer(i) for i in index):
        return None, index
    select, rest = [], []
    for i, array in zip(index, is_array):
        if _is_integer(i):
            select.append(i)                       # applied now: its axis disappears
        elif i is None:
            select.append(None)                    # the new axis is made now ...
            rest.append(slice(None))               # ... and kept whole afterwards
        elif array:
            a = np.asarray(i) if isinstance(i, (list, tuple)) else i
            covered = a.ndim if a.dtype == bool else 1      # a mask spans a.ndim axes
            select.extend([slice(None)] * covered)
            rest.append(i)
        else:                                      # a slice or Ellipsis: passes through
            select.append(i if i is Ellipsis else slice(None))
            rest.append(i)
    return tuple(select), tuple(rest)


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
    return Concat(resolve_axis("concat", axis, dim, default=0))(*_sequence(tensors, "concat"))


def stack(tensors, axis=None, *, dim=None):
    """Join along a new ``axis`` (or ``dim``)."""
    return Stack(resolve_axis("stack", axis, dim, default=0))(*_sequence(tensors, "stack"))


def _sequence(tensors, op):
    if isinstance(tensors, Tensor) or not hasattr(tensors, "__len__"):
        raise TypeError(f"{op}: tensors must be a list or tuple of tensors, got "
                        f"{type(tensors).__name__}")
    if len(tensors) == 0:
        raise ValueError(f"{op}: tensors must hold at least one tensor, got an empty "
                         f"{type(tensors).__name__}")
    return tensors
