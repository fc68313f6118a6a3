"""Activation functions sigma(eta), each forward beside its hand-written backward.

The lecture's three (with its sign slip fixed: the logistic is 1/(1 + exp(-eta)))::

    logistic(eta) = 1 / (1 + exp(-eta))          d/d eta = sigma (1 - sigma)
    tanh(eta)                                     d/d eta = 1 - tanh^2
    relu(eta)     = max(0, eta)                   d/d eta = 1 if eta > 0 else 0

plus leaky_relu, relu6, and softmax / log_softmax, which turn a row of scores into
probabilities (log-probabilities).  All are elementwise except softmax and log_softmax,
which mix the entries along one ``axis``.  Every op keeps its input's dtype.
"""
from .. import backend, kernels
from ..autograd import Function
from ._checks import check_axis, check_number, float_tensor, resolve_axis

# ---- piecewise-linear ---------------------------------------------------------------------


class ReLU(Function):
    """relu(eta) = max(0, eta).  The slope is 1 where eta > 0 and 0 elsewhere (0 at 0, as
    in PyTorch; at eta = NaN the output is NaN and, as in PyTorch, the slope 1)."""

    def forward(self, x):
        fast = _numba_relu(x)
        if fast is not None:                # the same in one compiled pass
            self.y = fast.relu_forward(x)
        else:
            self.y = backend.get_array_module(x).maximum(x, 0)
        return self.y           # kept instead of a mask: the next layer holds it anyway

    def backward(self, grad):
        y = self.y
        fast = _numba_relu(grad)
        if fast is not None and grad.shape == y.shape and grad.dtype == y.dtype:
            return fast.relu_backward(grad, y)
        xp = backend.get_array_module(grad)
        slope = ((y > 0) | xp.isnan(y)).astype(grad.dtype)   # 1 where eta > 0 or NaN
        slope *= grad                               # in place: one array, two passes
        return slope


# Below this many elements the NumPy code above is as fast (a compiled call has a fixed cost).
_NUMBA_RELU_MIN_SIZE = 1 << 12
# np.clip is one vectorised pass on one core: the kernel on two cores beat it 1.45x-1.71x
# from MobileNet v2's 1x144x56x56 (452K elements) up, tied at 1x192x28x28 (150K) and lost
# below (0.40x-0.74x: the hand-off to the second core costs more than it saves; Intel
# Xeon, 2026-12-05 night).  With the cheaper hand-off (numba_threads._Worker, AMD Zen 5,
# 2026-12-06, two runs) it wins from 150K up (1.17x-1.28x there, 1.48x-1.49x at 301K)
# and loses at 113K and below (0.75x-0.96x); rechecked with the kernels compiled as
# jit.py intends (those runs had 512-bit vectors, RESULTS.md): 150K 1.37x-1.44x, 113K and
# below 0.44x-0.71x.
_NUMBA_RELU6_FORWARD_MIN_SIZE = 1 << 17


def _numba_relu(array):
    """kernels/numba_activation.py when the Numba kernels run on this (C-contiguous, large
    enough) array, else None: the NumPy code, the kernels' reference, runs."""
    if array.size < _NUMBA_RELU_MIN_SIZE or not array.flags.c_contiguous:
        return None
    return kernels.numba_module("numba_activation", array)


class LeakyReLU(Function):
    """eta if eta > 0 else negative_slope * eta: a small slope keeps negative units alive.
    At NaN the slope is negative_slope, as in PyTorch."""

    def __init__(self, negative_slope):
        self.negative_slope = negative_slope

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.positive = x > 0
        return xp.where(self.positive, x, x * self.negative_slope)

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        return xp.where(self.positive, grad, grad * self.negative_slope)


class ReLU6(Function):
    """min(max(0, eta), 6).  Slope 1 strictly inside (0, 6), 0 outside (PyTorch's choice
    at the two kinks); slope 1 at NaN, as PyTorch.  The output y tells the slope as well as
    eta does (y is in (0, 6) or NaN exactly when eta is), so y is kept, not a mask."""

    def forward(self, x):
        fast = _numba_relu(x) if x.size >= _NUMBA_RELU6_FORWARD_MIN_SIZE else None
        if fast is not None:                # the same on every core
            self.y = fast.relu6_forward(x)
        else:
            self.y = backend.get_array_module(x).clip(x, 0, 6)
        return self.y

    def backward(self, grad):
        y = self.y
        fast = _numba_relu(grad)
        if fast is not None and grad.shape == y.shape and grad.dtype == y.dtype:
            return fast.relu6_backward(grad, y)
        xp = backend.get_array_module(grad)
        return grad * (((y > 0) & (y < 6)) | xp.isnan(y))


# ---- smooth squashing functions -------------------------------------------------------------


class Sigmoid(Function):
    """logistic(eta) = 1 / (1 + exp(-eta)), computed without overflow.

    exp(-eta) overflows for eta << 0 (float32 already at eta < -89).  With z = exp(-|eta|),
    which lies in (0, 1] and never overflows, the two algebraically equal forms

        eta >= 0:  1 / (1 + z)            eta < 0:  z / (1 + z)

    are both safe.  Backward uses the output: d sigma / d eta = sigma (1 - sigma)."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        z = xp.exp(-abs(x))
        self.y = xp.where(x >= 0, 1 / (1 + z), z / (1 + z))
        return self.y

    def backward(self, grad):
        return grad * self.y * (1 - self.y)


class Tanh(Function):
    def forward(self, x):
        self.y = backend.get_array_module(x).tanh(x)
        return self.y

    def backward(self, grad):          # d tanh / d eta = 1 - tanh^2
        return grad * (1 - self.y * self.y)


# ---- softmax and log-softmax ----------------------------------------------------------------


class Softmax(Function):
    """softmax(x)_i = exp(x_i) / sum_j exp(x_j) along ``axis``.

    Subtracting the row's maximum first changes nothing mathematically (it cancels in the
    ratio) but keeps every exp() <= 1, so large scores cannot overflow.

    Backward: with y = softmax(x) and upstream g, the Jacobian is diag(y) - y y^T, so
        dL/dx = y * (g - sum_j g_j y_j)."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, grad):
        y = self.y
        return y * (grad - (grad * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """log_softmax(x)_i = x_i - log sum_j exp(x_j), with the max subtracted first:

        log_softmax(x) = (x - m) - log sum_j exp(x_j - m),    m = max_j x_j

    so it stays finite for scores like 1000 where softmax itself rounds to 0 or 1.

    Backward: d log_softmax_i / d x_k = [i = k] - softmax_k, so
        dL/dx = g - softmax(x) * sum_i g_i."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        return self.y

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        return grad - xp.exp(self.y) * grad.sum(axis=self.axis, keepdims=True)


# ---- the functional API ---------------------------------------------------------------------

def relu(x):
    """max(0, x), elementwise.  Backward: dL/dx = dL/dy where x > 0, else 0."""
    return ReLU()(float_tensor(x, "x", "relu"))


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, else negative_slope * x."""
    negative_slope = check_number(negative_slope, "negative_slope", "leaky_relu")
    return LeakyReLU(negative_slope)(float_tensor(x, "x", "leaky_relu"))


def relu6(x):
    """min(max(0, x), 6), elementwise (MobileNet's activation)."""
    return ReLU6()(float_tensor(x, "x", "relu6"))


def sigmoid(x):
    """The logistic function y = 1 / (1 + exp(-x)), stable for any |x|.
    Backward: dL/dx = dL/dy y (1 - y)."""
    return Sigmoid()(float_tensor(x, "x", "sigmoid"))


def tanh(x):
    """y = tanh(x), elementwise.  Backward: dL/dx = dL/dy (1 - y^2)."""
    return Tanh()(float_tensor(x, "x", "tanh"))


def softmax(x, axis=None, *, dim=None):
    """exp(x) / sum(exp(x)) along ``axis`` (or PyTorch's ``dim``; default the last):
    each slice along it sums to 1.  Backward: dL/dx = y (dL/dy - sum(dL/dy y)), the sum
    along the same axis."""
    x = float_tensor(x, "x", "softmax")
    axis = resolve_axis("softmax", axis, dim, default=-1)
    return Softmax(check_axis(axis, x.ndim, "softmax"))(x)


def log_softmax(x, axis=None, *, dim=None):
    """log(softmax(x)) along ``axis`` (or ``dim``; default the last), computed stably
    (never log of a rounded 0)."""
    x = float_tensor(x, "x", "log_softmax")
    axis = resolve_axis("log_softmax", axis, dim, default=-1)
    return LogSoftmax(check_axis(axis, x.ndim, "log_softmax"))(x)
