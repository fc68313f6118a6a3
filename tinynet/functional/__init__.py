"""Differentiable operations on Tensors: ``import tinynet.functional as F``.

One module per family; in each, an op's forward and backward sit side by side."""
from .math import (abs, add, argmax, argmin, astype, clamp, clip, div, exp, linear, log, matmul,
                   max, maximum, mean, min, minimum, mul, neg, pow, sqrt, sub, sum,
                   unbroadcast, where)
from .shape import concat, flatten, getitem, pad, reshape, squeeze, stack, transpose, unsqueeze
from .conv import conv2d, conv_transpose2d
from .pool import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, global_avg_pool2d,
                   max_pool2d, relu_max_pool2d)
from .activation import leaky_relu, log_softmax, relu, relu6, sigmoid, softmax, tanh
from .loss import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,
                   mse_loss, nll_loss)
from .norm import batch_norm, batch_norm_relu, dropout, group_norm, layer_norm
from .resample import affine_warp, interpolate
from . import methods  # noqa: F401,E402  (gives Tensor its operators: t + u, t.sum(), ...)
