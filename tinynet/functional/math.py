"""Elementwise arithmetic, matmul, linear and reductions, each forward beside its backward.

Broadcasting.  ``a + b`` may stretch a (3, 1) array to (3, 4).  Stretching copies a value
into several outputs, so in backward those outputs' gradients are summed back into the one
value: ``unbroadcast(grad, shape)`` sums over the axes that broadcasting added or stretched.
"""
import builtins
import math

import numpy as np

from .. import backend
from ..autograd import Function, Tensor, _as_array
from ._checks import resolve_axis, resolve_keepdims
# Shape ops live in shape.py; re-exported so that F.math and Tensor's methods find them here.
from .shape import (concat, flatten, getitem, pad, reshape, setitem, squeeze,  # noqa: F401
                    stack, transpose, unsqueeze)

# ---- helpers ----------------------------------------------------------------------------


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the backward of numpy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _check_float(x, name, op):
    if isinstance(x, Tensor) and x.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be a floating tensor, got dtype {x.dtype}")


def as_tensor(x, like=None):
    """A Tensor for ``x``; numbers take the dtype and device of ``like``."""
    if isinstance(x, Tensor):
        return x
    dtype = like.dtype if like is not None and isinstance(x, (int, float)) else None
    device = like.device if like is not None else None
    return Tensor(_as_array(x, dtype=dtype, device=device))


# ---- elementwise arithmetic -----------------------------------------------------------

class Add(Function):
    saves_inputs = False      # backward reads no input values

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, grad):          # d(a+b)/da = 1, d(a+b)/db = 1
        return unbroadcast(grad, self.a_shape), unbroadcast(grad, self.b_shape)


class Sub(Function):
    saves_inputs = False      # backward reads no input values

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, grad):          # d(a-b)/da = 1, d(a-b)/db = -1
        return unbroadcast(grad, self.a_shape), unbroadcast(-grad, self.b_shape)


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):          # d(ab)/da = b, d(ab)/db = a
        return (unbroadcast(grad * self.b, self.a.shape),
                unbroadcast(grad * self.a, self.b.shape))


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, grad):          # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
        grad_a = grad / self.b
        return (unbroadcast(grad_a, self.a.shape),
                unbroadcast(-grad_a * self.a / self.b, self.b.shape))


class Neg(Function):
    saves_inputs = False      # backward reads no input values

    def forward(self, x):
        return -x

    def backward(self, grad):
        return -grad


class Pow(Function):
    """x ** p for a constant exponent p."""

    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, x):
        self.x = x
        return x ** self.exponent

    def backward(self, grad):          # d(x^p)/dx = p x^(p-1)
        p = self.exponent
        if np.ndim(p) == 0:
            if p == 0:                 # x^0 = 1 everywhere: slope 0 (0^-1 would give nan)
                return grad * 0
            return grad * (p * self.x ** (p - 1))
        xp = backend.get_array_module(grad)        # an array of exponents, as PyTorch:
        slope = xp.where(p == 0, 0, p * self.x ** (p - 1)).astype(grad.dtype, copy=False)
        return unbroadcast(grad * slope, self.x.shape)


class RPow(Function):
    """b ** x for a constant base b (a number or array) and a tensor exponent x.

    Computed as a power, not as exp(x ln b): a negative base with an integer exponent is
    fine ((-2) ** 3 = -8) and 0 ** 0 = 1.  d(b^x)/dx = b^x ln b; as PyTorch, the slope is 0
    where b = 0 and x >= 0 (there b^x is 0 or 1 and ln 0 = -inf would give NaN), and NaN
    for a negative base (ln b is undefined)."""

    def __init__(self, base):
        self.base = base

    def forward(self, x):
        xp = backend.get_array_module(x)
        base = xp.asarray(self.base, dtype=x.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.y = xp.power(base, x)
        self.x, self.base_array = x, base
        return self.y

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        base = self.base_array
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = self.y * xp.log(base)
        slope = xp.where((base == 0) & (self.x >= 0), 0, slope).astype(grad.dtype, copy=False)
        return unbroadcast(grad * slope, self.x.shape)


class Exp(Function):
    def forward(self, x):
        self.y = backend.get_array_module(x).exp(x)
        return self.y

    def backward(self, grad):          # d(e^x)/dx = e^x
        return grad * self.y


class Log(Function):
    def forward(self, x):
        self.x = x
        return backend.get_array_module(x).log(x)

    def backward(self, grad):          # d(log x)/dx = 1/x
        return grad / self.x


class Sqrt(Function):
    def forward(self, x):
        self.y = backend.get_array_module(x).sqrt(x)
        return self.y

    def backward(self, grad):          # d(sqrt x)/dx = 1/(2 sqrt x)
        return grad / (2 * self.y)


class Abs(Function):
    def forward(self, x):
        self.sign = backend.get_array_module(x).sign(x)
        return backend.get_array_module(x).abs(x)   # not abs(): this module defines its own

    def backward(self, grad):          # d|x|/dx = sign(x) (0 at the kink)
        return grad * self.sign


class Maximum(Function):
    """Elementwise max(a, b).  As in PyTorch, a tie a == b splits the gradient half/half
    (the subgradient in the middle of the kink), and a NaN, which max propagates, takes
    the whole gradient."""

    def forward(self, a, b):
        xp = backend.get_array_module(a)
        self.a_shape, self.b_shape = a.shape, b.shape
        a_share = xp.asarray((a > b) | xp.isnan(a)).astype(np.result_type(a, b))
        a_share[a == b] = 0.5
        self.a_share = a_share
        return xp.maximum(a, b)

    def backward(self, grad):
        return (unbroadcast(grad * self.a_share, self.a_shape),
                unbroadcast(grad * (1 - self.a_share), self.b_shape))


class Where(Function):
    """condition ? a : b, with ``condition`` a constant boolean array."""
    saves_inputs = False      # backward reads no input values

    def __init__(self, condition):
        self.condition = condition

    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return backend.get_array_module(a).where(self.condition, a, b)

    def backward(self, grad):
        zero = grad.dtype.type(0)
        xp = backend.get_array_module(grad)
        return (unbroadcast(xp.where(self.condition, grad, zero), self.a_shape),
                unbroadcast(xp.where(self.condition, zero, grad), self.b_shape))


class Clip(Function):
    saves_inputs = False      # backward reads no input values

    def __init__(self, low, high):
        self.low, self.high = low, high

    def forward(self, x):
        xp = backend.get_array_module(x)
        low = -np.inf if self.low is None else self.low
        high = np.inf if self.high is None else self.high
        self.inside = (x >= low) & (x <= high)
        return xp.clip(x, self.low, self.high)

    def backward(self, grad):          # slope 1 inside [low, high], 0 outside
        return grad * self.inside


class AsType(Function):
    saves_inputs = False      # backward reads no input values

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.source_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, grad):
        return grad.astype(self.source_dtype)


class ToDevice(Function):
    saves_inputs = False      # backward reads no input values

    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.source_device = backend.device_of(x)
        return backend.move(x, self.device)

    def backward(self, grad):          # the gradient travels back to where x was
        return backend.move(grad, self.source_device)


# ---- matrix product -------------------------------------------------------------------

class MatMul(Function):
    """C = A @ B.  For 2-D: dL/dA = dL/dC @ B^T, dL/dB = A^T @ dL/dC.

    Batched (N-D) operands follow numpy's matmul broadcasting; the extra batch axes are
    summed away by ``unbroadcast``.  1-D operands are promoted to matrices and back.
    A side that needs no gradient (a constant, a frozen weight) costs no product: dL/dA
    reads only B, dL/dB only A."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, grad):
        a, b = self.a, self.b
        need_a, need_b = self.needs_input_grad
        g = grad                                       # put back the axes a 1-D operand lost:
        if b.ndim == 1:
            g = g[..., None]                           # ... the last (N = 1) first,
        if a.ndim == 1:
            g = g[..., None, :]                        # ... then M = 1 (works for () too)
        grad_a = grad_b = None
        if need_a:
            b2 = b[:, None] if b.ndim == 1 else b      # (K,) -> (K, 1)
            grad_a = g @ b2.swapaxes(-1, -2)
            if a.ndim == 1:
                grad_a = grad_a[..., 0, :]
            grad_a = unbroadcast(grad_a, a.shape)
        if need_b:
            a2 = a[None, :] if a.ndim == 1 else a      # (K,) -> (1, K)
            grad_b = a2.swapaxes(-1, -2) @ g
            if b.ndim == 1:
                grad_b = grad_b[..., :, 0]
            grad_b = unbroadcast(grad_b, b.shape)
        return grad_a, grad_b


class Linear(Function):
    """y = x W^T + b, with W of shape (out_features, in_features) as in PyTorch.

    dL/dx = dL/dy W,   dL/dW = dL/dy^T x,   dL/db = sum of dL/dy over the batch."""

    # ``dot`` for 2-D x: the same product as ``@``, and on tiny arrays (XOR's 4x2) NumPy's
    # dot skips about 1.5 us of matmul's generalised-ufunc machinery.  Not for N-D x (NumPy's
    # dot then loops over rows, 10x slower) nor for dL/dW (transposed left operand: dot up
    # to 15% slower on a 1000x4096 layer).
    def forward(self, x, weight, bias=None):
        self.x, self.weight = x, weight
        y = x.dot(weight.T) if x.ndim == 2 else x @ weight.T
        if bias is not None:
            y += bias
        return y

    def backward(self, grad):
        x2 = self.x.reshape(-1, self.x.shape[-1])            # batch axes flattened
        g2 = grad.reshape(-1, grad.shape[-1])
        need_x, need_w = self.needs_input_grad[:2]
        # skip the products nobody needs (e.g. dL/dx of the input batch)
        grad_x = None
        if need_x:
            grad_x = grad.dot(self.weight) if grad.ndim == 2 else grad @ self.weight
        grads = (grad_x, g2.T @ x2 if need_w else None)
        if len(self.needs_input_grad) == 3:
            grads += (g2.sum(axis=0),)
        return grads


# ---- reductions --------------------------------------------------------------------------

def _normalize_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor of {ndim} dimensions")
    return tuple(sorted(a % builtins.max(ndim, 1) for a in axes))


def _expand_reduced(grad, in_shape, axes, keepdims):
    """Put back the reduced axes (as size 1) so ``grad`` broadcasts against the input."""
    if not keepdims:
        shape = list(grad.shape)
        for a in axes:
            shape.insert(a, 1)
        grad = grad.reshape(shape)
    return grad


class Sum(Function):
    saves_inputs = False      # backward reads no input values

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.axes = _normalize_axis(self.axis, x.ndim)
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, grad):          # every summed element gets the output's gradient
        xp = backend.get_array_module(grad)
        grad = _expand_reduced(grad, self.in_shape, self.axes, self.keepdims)
        return xp.broadcast_to(grad, self.in_shape).copy()


class Mean(Function):
    saves_inputs = False      # backward reads no input values

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.axes = _normalize_axis(self.axis, x.ndim)
        self.count = math.prod(x.shape[a] for a in self.axes)
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, grad):          # d(mean)/dx_i = 1/count
        xp = backend.get_array_module(grad)
        grad = _expand_reduced(grad, self.in_shape, self.axes, self.keepdims) / self.count
        return xp.broadcast_to(grad, self.in_shape).astype(grad.dtype, copy=True)


class Max(Function):
    """max over axes.  The gradient goes to the maximal element; ties share it equally."""
    saves_inputs = False      # backward reads no input values

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = _normalize_axis(self.axis, x.ndim)
        y = x.max(axis=self.axes, keepdims=True)
        is_max = x == y
        self.weights = is_max / is_max.sum(axis=self.axes, keepdims=True)
        return y if self.keepdims else y.squeeze(axis=self.axes)

    def backward(self, grad):
        grad = _expand_reduced(grad, self.weights.shape, self.axes, self.keepdims)
        return (grad * self.weights).astype(grad.dtype, copy=False)


# ---- the functional API --------------------------------------------------------------

def add(a, b): return Add()(a, b)
def sub(a, b): return Sub()(a, b)
def mul(a, b): return Mul()(a, b)
def div(a, b): return Div()(a, b)
def neg(x): return Neg()(x)
def exp(x): return Exp()(x)
def log(x): return Log()(x)
def sqrt(x): return Sqrt()(x)
def abs(x): return Abs()(x)
def maximum(a, b): return Maximum()(a, b)
def matmul(a, b):
    """C = A @ B (NumPy's matmul broadcasting).  For 2-D operands: dL/dA = dL/dC B^T,
    dL/dB = A^T dL/dC."""
    return MatMul()(a, b)


def linear(x, weight, bias=None):
    """x W^T + b.  x (..., in_features), weight (out_features, in_features), bias (out_features,)."""
    for name, t in (("input", x), ("weight", weight)):
        if not isinstance(t, Tensor) and not hasattr(t, "shape"):
            raise TypeError(f"linear: {name} must be a tensor or array, got "
                            f"{type(t).__name__}")
    # Each fact read once: this runs for every layer call, and on small models (XOR) the
    # checks would otherwise cost as much as the product.
    x_shape, w_shape = x.shape, weight.shape
    if not x_shape or x_shape[-1] != w_shape[-1]:
        raise ValueError(f"linear: input has {x_shape[-1] if x_shape else 'no'} features "
                         f"(shape {tuple(x_shape)}), weight expects in_features="
                         f"{w_shape[-1]} (weight shape {tuple(w_shape)})")
    if bias is not None and tuple(bias.shape) != (w_shape[0],):
        raise ValueError(f"linear: bias must have shape ({w_shape[0]},), got {tuple(bias.shape)}")
    if isinstance(x, Tensor):
        x_dtype = x.data.dtype
        if x_dtype.kind != "f":
            raise TypeError(f"linear: input must be a floating tensor, got dtype {x_dtype}")
        for name, t in (("weight", weight), ("bias", bias)):
            if isinstance(t, Tensor) and t.data.dtype != x_dtype:
                raise TypeError(f"linear: input has dtype {x_dtype} but {name} has "
                                f"{t.dtype}; convert one of them (e.g. "
                                f"x.astype(np.{t.dtype}) or model.double())")
    return Linear()(x, weight) if bias is None else Linear()(x, weight, bias)


def pow(x, exponent):
    if isinstance(exponent, Tensor):
        raise TypeError("pow: the exponent must be a number, not a Tensor")
    if isinstance(exponent, np.generic) or (isinstance(exponent, np.ndarray)
                                            and exponent.ndim == 0):
        exponent = exponent.item()         # a NumPy float64 scalar must not upcast float32 x
    elif isinstance(exponent, np.ndarray) and x.dtype.kind == "f":
        exponent = exponent.astype(x.dtype, copy=False)      # x's dtype, as a scalar's
    return Pow(exponent)(x)


def rpow(base, x):
    """``base ** x`` for a number or array ``base`` and a tensor exponent ``x``."""
    if isinstance(base, np.generic):
        base = base.item()                 # a NumPy scalar must not change x's dtype
    return RPow(base)(x)


def where(condition, a, b):
    """Elementwise ``a`` where ``condition`` is true, else ``b`` (condition: boolean array)."""
    condition = condition.data if isinstance(condition, Tensor) else condition
    if not hasattr(condition, "dtype"):
        condition = np.asarray(condition)
    if condition.dtype.kind != "b":     # as PyTorch: 0.5 is not a truth value
        raise TypeError(f"where: condition must be a boolean array or tensor, got dtype "
                        f"{condition.dtype} (compare first, e.g. x > 0)")
    return Where(condition)(a, b)


def clip(x, low=None, high=None):
    # NumPy scalars become Python numbers: a float64 bound must not make float32 x float64
    low, high = (b.item() if isinstance(b, (np.generic, np.ndarray)) and np.ndim(b) == 0
                 else b for b in (low, high))
    return Clip(low, high)(x)


def astype(x, dtype):
    if np.dtype(dtype) == x.dtype:
        return x
    return AsType(dtype)(x)


def to_device(x, device):
    return ToDevice(device)(x)


def minimum(a, b):
    """Elementwise min(a, b) = -max(-a, -b): ties split the gradient as in ``maximum``."""
    return neg(maximum(neg(a), neg(b)))


def clamp(x, min=None, max=None):
    """PyTorch's name for ``clip``: slope 1 inside [min, max] (ends included), 0 outside."""
    return clip(x, min, max)


# Reductions take NumPy's axis=/keepdims= or PyTorch's dim=/keepdim= (not both).

def sum(x, axis=None, keepdims=None, *, dim=None, keepdim=None):
    return Sum(resolve_axis("sum", axis, dim), resolve_keepdims("sum", keepdims, keepdim))(x)


def mean(x, axis=None, keepdims=None, *, dim=None, keepdim=None):
    return Mean(resolve_axis("mean", axis, dim), resolve_keepdims("mean", keepdims, keepdim))(x)


def max(x, axis=None, keepdims=None, *, dim=None, keepdim=None):
    """The largest value, over all elements or along ``axis``; ties share the gradient.

    Called with PyTorch's ``dim=`` keyword it returns PyTorch's pair ``(values, indices)``
    and, as PyTorch, sends the gradient to the one element at ``indices``.  With ``axis``
    (also positional) it returns the values only, as NumPy."""
    keepdims = resolve_keepdims("max", keepdims, keepdim)
    if dim is not None:
        resolve_axis("max", axis, dim)
        return _extreme_along(x, dim, keepdims, argmax)
    return Max(axis, keepdims)(x)


def min(x, axis=None, keepdims=None, *, dim=None, keepdim=None):
    """The smallest value: ``max`` of -x, negated (same conventions as ``max``)."""
    keepdims = resolve_keepdims("min", keepdims, keepdim)
    if dim is not None:
        resolve_axis("min", axis, dim)
        return _extreme_along(x, dim, keepdims, argmin)
    return neg(Max(axis, keepdims)(neg(x)))


def _arg_extreme(x, axis, dim, keepdims, keepdim, op, pick):
    axis = resolve_axis(op, axis, dim)
    keepdims = resolve_keepdims(op, keepdims, keepdim)
    data = x.data if isinstance(x, Tensor) else _as_array(x)
    if axis is None:       # index into the flattened tensor, as torch.argmax without dim
        index = pick(data.reshape(-1), axis=0)
        return Tensor(index.reshape((1,) * data.ndim) if keepdims else index)
    axis = _normalize_axis(axis, data.ndim)[0]
    return Tensor(pick(data, axis=axis, keepdims=keepdims))


def argmax(x, axis=None, keepdims=None, *, dim=None, keepdim=None):
    """Index of the largest value (an integer tensor, no gradient); the first one at ties."""
    return _arg_extreme(x, axis, dim, keepdims, keepdim, "argmax",
                        lambda a, **kw: backend.get_array_module(a).argmax(a, **kw))


def argmin(x, axis=None, keepdims=None, *, dim=None, keepdim=None):
    """Index of the smallest value (an integer tensor, no gradient); the first one at ties."""
    return _arg_extreme(x, axis, dim, keepdims, keepdim, "argmin",
                        lambda a, **kw: backend.get_array_module(a).argmin(a, **kw))


class _ValuesIndices(tuple):
    """PyTorch's (values, indices) result of ``max(dim=)``/``min(dim=)``."""
    values = property(lambda self: self[0])
    indices = property(lambda self: self[1])


def _extreme_along(x, dim, keepdim, arg):
    """values = x picked at ``arg``'s indices along ``dim``: an indexing op, so the gradient
    goes to exactly the picked elements."""
    indices = arg(x, dim=dim, keepdim=True).data
    xp = backend.get_array_module(indices)
    dim = _normalize_axis(dim, x.ndim)[0]
    where = list(xp.ogrid[tuple(slice(n) for n in indices.shape)])
    where[dim] = indices
    values = getitem(x, tuple(where))
    if not keepdim:
        values = reshape(values, x.shape[:dim] + x.shape[dim + 1:])
        indices = indices.squeeze(dim)
    return _ValuesIndices((values, Tensor(indices)))
