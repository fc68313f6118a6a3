"""Differentiable operations on Tensors: ``import tinynet.functional as F``.

One module per family; in each, an op's forward and backward sit side by side."""
from .math import (abs, add, astype, clip, concat, div, exp, flatten, getitem, linear, log, matmul,
                   max, maximum, mean, mul, neg, pad, pow, reshape, sqrt, stack, sub, sum,
                   transpose, unbroadcast, where)
