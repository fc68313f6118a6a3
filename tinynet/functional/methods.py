"""Tensor's operators and op methods, attached to the class when ``tinynet.functional`` is
imported (DeZero's ``setup_variable``).

``t + u``, ``t @ w``, ``t[i]``, ``t[i] = v``, ``t.sum()``, ``t.reshape(...)``, ``t.to('cuda')``
each call an op of this package (math.py, shape.py); autograd.py, the layer below the ops,
defines Tensor without them, so that it imports no op module and the import graph has no
circle: autograd.py <- functional/math.py, shape.py, ... <- this module.
"""
import numpy as np

from .. import backend
from ..autograd import Tensor
from . import math as _math


class _TensorMethods:
    """The methods below become Tensor's (see ``attach``); ``self`` is a Tensor."""

    def to(self, device):
        """A copy on ``device`` ('cpu' or 'cuda'); gradients flow back across the move."""
        device = backend.check_device(device)
        if device == self.device:
            return self
        return _math.to_device(self, device)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def astype(self, dtype):
        return _math.astype(self, dtype)

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    # ---- operators ---------------------------------------------------------------------
    def __add__(self, other): return _math.add(self, other)
    def __radd__(self, other): return _math.add(other, self)
    def __sub__(self, other): return _math.sub(self, other)
    def __rsub__(self, other): return _math.sub(other, self)
    def __mul__(self, other): return _math.mul(self, other)
    def __rmul__(self, other): return _math.mul(other, self)
    def __truediv__(self, other): return _math.div(self, other)
    def __rtruediv__(self, other): return _math.div(other, self)
    def __pow__(self, exponent): return _math.pow(self, exponent)
    def __rpow__(self, base): return _math.rpow(base, self)
    def __neg__(self): return _math.neg(self)
    def __abs__(self): return _math.abs(self)
    def __matmul__(self, other): return _math.matmul(self, other)
    def __rmatmul__(self, other): return _math.matmul(other, self)
    def __getitem__(self, index): return _math.getitem(self, index)
    def __setitem__(self, index, value): _math.setitem(self, index, value)

    # ---- PyTorch-named methods (reductions take axis=/keepdims= or dim=/keepdim=) --------
    def sum(self, axis=None, keepdims=None, *, dim=None, keepdim=None):
        return _math.sum(self, axis, keepdims, dim=dim, keepdim=keepdim)
    def mean(self, axis=None, keepdims=None, *, dim=None, keepdim=None):
        return _math.mean(self, axis, keepdims, dim=dim, keepdim=keepdim)
    def max(self, axis=None, keepdims=None, *, dim=None, keepdim=None):
        """Values only with ``axis``; PyTorch's (values, indices) with ``dim=``."""
        return _math.max(self, axis, keepdims, dim=dim, keepdim=keepdim)
    def min(self, axis=None, keepdims=None, *, dim=None, keepdim=None):
        return _math.min(self, axis, keepdims, dim=dim, keepdim=keepdim)
    def argmax(self, axis=None, keepdims=None, *, dim=None, keepdim=None):
        return _math.argmax(self, axis, keepdims, dim=dim, keepdim=keepdim)
    def argmin(self, axis=None, keepdims=None, *, dim=None, keepdim=None):
        return _math.argmin(self, axis, keepdims, dim=dim, keepdim=keepdim)
    def clamp(self, min=None, max=None): return _math.clamp(self, min, max)
    def squeeze(self, dim=None): return _math.squeeze(self, dim)
    def unsqueeze(self, dim): return _math.unsqueeze(self, dim)
    def view(self, *shape):
        """``reshape`` under PyTorch's name (tinynet does not share storage: a copy may be
        made where PyTorch would return a view)."""
        return self.reshape(*shape)
    def exp(self): return _math.exp(self)
    def log(self): return _math.log(self)
    def sqrt(self): return _math.sqrt(self)
    def abs(self): return _math.abs(self)
    def reshape(self, *shape):
        return _math.reshape(self, shape[0] if len(shape) == 1 else shape)
    def transpose(self, dim0, dim1):
        """Swap two axes, as PyTorch's ``Tensor.transpose`` (``permute`` for any order)."""
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return _math.transpose(self, axes)
    def permute(self, *axes):
        return _math.transpose(self, axes[0] if len(axes) == 1 else axes)
    def flatten(self, start_axis=0):
        """Merge the axes from ``start_axis`` on (0: one flat vector, as torch.flatten)."""
        return _math.flatten(self, start_axis)
    T = property(lambda self: _math.transpose(self))


def attach(cls=Tensor):
    """Copy every method and property defined above onto ``cls``."""
    for name, value in vars(_TensorMethods).items():
        if name not in ("__module__", "__qualname__", "__doc__", "__dict__", "__weakref__",
                        "__firstlineno__", "__static_attributes__"):
            setattr(cls, name, value)


attach()
