"""Batch normalization as Numba kernels: three passes over the data per training step.

The readable version is ``BatchNorm`` in functional/norm.py (NumPy reductions over the N and
spatial axes); it stays the reference these kernels are tested against, and
``tinynet.kernels.use("numpy")`` or ``use("reference")`` runs it.  NumPy needs about ten
passes over the activations for one forward + backward (mean, var, x - mean, * inv_std,
* weight, + bias; then the g_hat products and their means, ...), each a separate full-size
array.  Per channel c, with m = N L values x[n, c, l] (L = H W):

    forward, pass 1   mean_c, var_c                      (one read of x)
    forward, pass 2   y = (x - mean_c) a_c + bias_c,  a_c = weight_c / sqrt(var_c + eps)
    backward, pass 1  S_c = sum dL/dy,  T_c = sum dL/dy (x - mean_c)       (one read of both)
    backward, pass 2  dL/dx = a_c dL/dy - k_c (x - mean_c) - a_c S_c / m,
                      k_c = a_c T_c / (m (var_c + eps))

Pass 2 of backward is the compact formula of functional/norm.py,
dL/dx = inv_std (g_hat - mean(g_hat) - x_hat mean(g_hat x_hat)), multiplied out with
g_hat = weight dL/dy and x_hat = (x - mean) inv_std; dL/dweight = T_c inv_std, dL/dbias = S_c.
Nothing but y (and dL/dx) is allocated at full size: backward recomputes x - mean from x.

A ReLU after the BatchNorm (BatchNormReLU in functional/norm.py, which nn.Sequential runs
for such a pair) costs no pass of its own: forward pass 2 writes max(y, 0), and both
backward passes take dL/dy = dL/d relu(y) where y > 0 (or NaN), else dL/d relu(y) * 0, y
recomputed from x exactly as pass 2 computed it, so the mask is bitwise ReLU's.  ReLU's own
kernels would read and write the activation once more in each direction.

Numerics.  The sums run in float64 whatever the input dtype.  The variance is taken from
sums of d = x - K with the shift K = the channel's first value (mean = K + sum(d)/m,
var = sum(d^2)/m - (sum(d)/m)^2): one pass, and no cancellation as long as K lies within a
few standard deviations of the mean, which a sample of the channel does.

The reductions are declared reassociable (fastmath 'reassoc' only: no change to NaN/inf
handling): without it the compiler must add the values one by one in order and cannot use
the SIMD lanes; measured 2-3x slower on the demo's shapes.

Arrays are viewed as (N, C, L); a (N, C) input is (N, C, 1).
"""
import numpy as np

from .jit import njit
from .numba_threads import run
from .scratch import empty_like

_REASSOC = {"reassoc"}


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _channel_moments(x, mean, var, c0, c1):
    """mean[c], var[c] (float64, biased) of x[:, c, :] for c in [c0, c1), from shifted sums."""
    n_, _, l_ = x.shape
    m = n_ * l_
    for c in range(c0, c1):
        shift = np.float64(x[0, c, 0])
        s1 = 0.0
        s2 = 0.0
        for n in range(n_):
            for q in range(l_):
                d = np.float64(x[n, c, q]) - shift
                s1 += d
                s2 += d * d
        d_mean = s1 / m
        mean[c] = shift + d_mean
        var[c] = max(s2 / m - d_mean * d_mean, 0.0)


@njit(cache=True, nogil=True)
def _affine(x, center, scale, offset, relu, y, t0, t1):
    """y[n, c, :] = v = (x[n, c, :] - center[c]) * scale[c] + offset[c], one (n, c) row per
    task; with ``relu``, max(v, 0) as numba_activation computes it (NaN kept)."""
    c_ = x.shape[1]
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        mu, a, b = center[c], scale[c], offset[c]
        for q in range(x.shape[2]):
            v = (x[n, c, q] - mu) * a + b
            y[n, c, q] = 0 if relu and v <= 0 else v


@njit(cache=True, nogil=True, fastmath=_REASSOC)
def _grad_sums(grad, x, center, scale, offset, relu, sum_grad, sum_grad_centered, c0, c1):
    """S[c] = sum dL/dy,  T[c] = sum dL/dy (x - center[c])  (float64), for c in [c0, c1).
    With ``relu``, ``grad`` is dL/d relu(y): dL/dy = grad where y = (x - center) scale +
    offset > 0 (or NaN), else grad * 0, y recomputed as _affine computed it."""
    n_, _, l_ = x.shape
    for c in range(c0, c1):
        mu = np.float64(center[c])
        mu_x, a, b = center[c], scale[c], offset[c]         # in x's dtype, as in _affine
        s = 0.0
        t = 0.0
        for n in range(n_):
            for q in range(l_):
                g = grad[n, c, q]
                if relu and (x[n, c, q] - mu_x) * a + b <= 0:
                    g = g * 0
                s += np.float64(g)
                t += np.float64(g) * (np.float64(x[n, c, q]) - mu)
        sum_grad[c] = s
        sum_grad_centered[c] = t


@njit(cache=True, nogil=True)
def _grad_input(grad, x, center, a, offset, relu, k, b, grad_x, t0, t1):
    """dL/dx[n, c, :] = a[c] dL/dy - k[c] (x - center[c]) + b[c], one (n, c) row per task
    (with ``relu``, dL/dy masked as in _grad_sums: ``a`` is the forward's scale)."""
    c_ = x.shape[1]
    for t in range(t0, t1):
        n = t // c_
        c = t - n * c_
        mu, ac, oc, kc, bc = center[c], a[c], offset[c], k[c], b[c]
        for q in range(x.shape[2]):
            g = grad[n, c, q]
            if relu and (x[n, c, q] - mu) * ac + oc <= 0:
                g = g * 0
            grad_x[n, c, q] = ac * g - kc * (x[n, c, q] - mu) + bc


# ---- what functional/norm.py calls -----------------------------------------------------------

def _as_ncl(a):
    a = np.ascontiguousarray(a)
    return a.reshape(a.shape[0], a.shape[1], -1)


def channel_mean_var(x):
    """Per-channel mean and biased variance of x (N, C, ...), as float64 arrays (C,)."""
    x3 = _as_ncl(x)
    c = x3.shape[1]
    mean, var = np.empty(c), np.empty(c)
    run(_channel_moments, c, x3.size, x3, mean, var)
    return mean, var


def _scale_and_offset(x3, inv_std, weight, bias):
    """Per channel, in x's dtype: a = inv_std weight and the bias (0 without one), the
    numbers _affine uses and the ReLU mask of the backward recomputes with."""
    inv_std = np.asarray(inv_std, dtype=np.float64)
    scale = inv_std if weight is None else inv_std * np.asarray(weight, dtype=np.float64)
    offset = np.zeros(x3.shape[1]) if bias is None else bias
    return scale.astype(x3.dtype), np.asarray(offset, dtype=x3.dtype)


def normalize(x, mean, inv_std, weight, bias, relu=False):
    """y = (x - mean) inv_std weight + bias per channel (weight, bias may be None), in one pass;
    with ``relu``, max(y, 0) in the same pass.  ``mean`` and ``inv_std`` are (C,) arrays;
    the arithmetic runs in x's dtype."""
    x3 = _as_ncl(x)
    scale, offset = _scale_and_offset(x3, inv_std, weight, bias)
    y = empty_like(x3)
    run(_affine, x3.shape[0] * x3.shape[1], x3.size, x3, np.asarray(mean, dtype=x3.dtype),
        scale, offset, relu, y)
    return y.reshape(np.shape(x))


def batch_norm_backward(grad, x, mean, inv_std, weight, training, need_weight, need_bias,
                        bias=None, relu=False):
    """(dL/dx, dL/dweight or None, dL/dbias or None) in two passes.  ``mean`` and
    ``inv_std`` are those the forward used (batch statistics when ``training``, the running
    ones otherwise); in eval mean and var are constants, so dL/dx = a dL/dy.  With ``relu``
    the forward was normalize(..., relu=True) and ``grad`` is the gradient of its output:
    both passes mask it where the normalized value was <= 0, recomputed from x (``bias``:
    the forward's)."""
    x3, g3 = _as_ncl(x), _as_ncl(grad)
    n, c, l_ = x3.shape
    dtype = x3.dtype
    inv_std = np.asarray(inv_std, dtype=np.float64)
    a = inv_std if weight is None else inv_std * np.asarray(weight, dtype=np.float64)
    scale, offset = _scale_and_offset(x3, inv_std, weight, bias)
    center = np.asarray(mean, dtype=dtype)
    grad_x = empty_like(x3)
    sum_grad = sum_centered = None
    if training or need_weight or need_bias:
        sum_grad, sum_centered = np.empty(c), np.empty(c)
        run(_grad_sums, c, 2 * x3.size, g3, x3, center, scale, offset, relu, sum_grad,
            sum_centered)
    if training:
        m = n * l_
        k = a * inv_std * inv_std * sum_centered / m
        b = -a * sum_grad / m
    else:
        k = b = np.zeros(c)
    run(_grad_input, n * c, 2 * x3.size, g3, x3, center, scale, offset, relu,
        k.astype(dtype), b.astype(dtype), grad_x)
    grad_w = (sum_centered * inv_std).astype(dtype) if need_weight else None
    grad_b = sum_grad.astype(dtype) if need_bias else None
    return grad_x.reshape(np.shape(x)), grad_w, grad_b
