"""Weight initialization, as ``torch.nn.init`` does it.  Every function fills a Tensor's
array in place (keeping its dtype and device) and returns the Tensor.

Random numbers come from ``tinynet.random.get_generator()``, so ``tn.manual_seed(0)``
makes model construction reproducible.

Why Kaiming (He) initialization: for y = W x with fan_in inputs, Var(y) = fan_in Var(W) Var(x).
Choosing Var(W) = gain^2 / fan_in keeps the signal's variance the same from layer to layer.
A uniform U(-b, b) has variance b^2/3, hence b = gain * sqrt(3 / fan_in).
PyTorch's Linear and Conv2d use kaiming_uniform_(w, a=sqrt(5)): gain = sqrt(2/(1+a^2)) =
sqrt(1/3), so b = 1/sqrt(fan_in); their biases are U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
"""
import math

import numpy as np

from .. import backend
from ..autograd import bump_version


def _generator():
    from .. import random as tn_random      # imported here: tinynet.random may load later
    return tn_random.get_generator()


def _fill(tensor, values):
    data = tensor.data
    tensor.data[...] = backend.move(np.asarray(values, dtype=data.dtype), backend.device_of(data))
    bump_version(tensor)
    return tensor


def calculate_fan_in_and_fan_out(tensor):
    """fan_in = inputs per output unit: in_features, or C_in/groups * KH * KW for a conv."""
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, "
                         f"got shape {tuple(shape)}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """The factor that keeps activations' variance: 1 (linear, sigmoid), sqrt(2) (relu), ..."""
    if nonlinearity in ("linear", "conv2d", "sigmoid", "conv1d", "conv3d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


# Numbers drawn per piece by _fill_drawn: 8 MB of float64 at a time.
DRAW_CHUNK = 1 << 20


def _fill_drawn(tensor, draw):
    """Fill the tensor with draw(size) (a Generator method: float64 numbers), in pieces of
    DRAW_CHUNK.  The Generator hands out its numbers in order, so the pieces are the very
    numbers of one draw of the whole tensor (a seeded model gets the weights it always got),
    without a float64 copy of all of it: for VGG-16's 138M weights that copy was 1.1 GB and
    made construction take 2-12 s."""
    data = tensor.data
    if type(data) is not np.ndarray or not data.flags.c_contiguous or data.size <= DRAW_CHUNK:
        return _fill(tensor, draw(tensor.shape))
    flat = data.reshape(-1)                 # a view: writes land in the tensor
    for start in range(0, flat.size, DRAW_CHUNK):
        piece = flat[start:start + DRAW_CHUNK]
        piece[...] = draw(piece.size)       # cast to the tensor's dtype here
    bump_version(tensor)
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    return _fill_drawn(tensor, lambda size: _generator().uniform(a, b, size=size))


def normal_(tensor, mean=0.0, std=1.0):
    return _fill_drawn(tensor, lambda size: _generator().normal(mean, std, size=size))


def constant_(tensor, value):
    tensor.data[...] = value
    bump_version(tensor)
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-b, b) with b = gain * sqrt(3 / fan)."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """N(0, std^2) with std = gain / sqrt(fan)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)


def xavier_uniform_(tensor, gain=1.0):
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))
