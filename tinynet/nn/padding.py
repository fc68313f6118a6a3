"""Padding layers, as PyTorch's: ZeroPad2d and ConstantPad2d.

``padding`` is an int (all four sides) or PyTorch's (left, right, top, bottom).  Porting a
TensorFlow model with 'SAME' padding and stride 2 needs the asymmetric kind: TensorFlow
puts the extra row and column at the bottom and right, ``ZeroPad2d((0, 1, 0, 1))``."""
import numpy as np

from .. import functional as F
from .module import Module


class ConstantPad2d(Module):
    """Pad the last two axes (H, W) of (N, C, H, W) or (C, H, W) with ``value``; negative
    widths crop, as in PyTorch."""

    def __init__(self, padding, value):
        super().__init__()
        if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
            padding = (int(padding),) * 4
        padding = tuple(padding)
        if len(padding) != 4 or not all(isinstance(p, (int, np.integer)) and
                                        not isinstance(p, bool) for p in padding):
            raise ValueError(f"{type(self).__name__}: padding must be an int or 4 ints (left, "
                             f"right, top, bottom), got {padding!r}")
        self.padding, self.value = tuple(int(p) for p in padding), float(value)

    def forward(self, x):
        if x.ndim not in (3, 4):
            raise ValueError(f"{type(self).__name__}: expected (N, C, H, W) or (C, H, W), got "
                             f"shape {tuple(x.shape)}")
        return F.pad(x, self.padding, value=self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ZeroPad2d(ConstantPad2d):
    """Pad (H, W) with zeros: ``ZeroPad2d((left, right, top, bottom))``."""

    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"padding={self.padding}"
