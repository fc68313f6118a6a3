"""The kernels behind convolution and pooling, and the one place that chooses among them.

Every implementation module provides the same seven functions (all NCHW; ``stride``,
``padding``, ``dilation`` and ``kernel`` are (h, w) pairs of ints, padding is symmetric)::

    conv2d_forward(x, weight, stride, padding, dilation, groups, save) -> (y, saved)  # no bias
    conv2d_backward_input(grad_y, weight, x_shape, stride, padding, dilation, groups) -> grad_x
    conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups,
                           saved) -> grad_w
    max_pool2d_forward(x, kernel, stride, padding) -> (y, argmax)
    max_pool2d_backward(grad_y, argmax, x_shape) -> grad_x
    avg_pool2d_forward(x, kernel, stride, padding) -> y        # count_include_pad=True
    avg_pool2d_backward(grad_y, x_shape, kernel, stride, padding) -> grad_x

``conv2d_backward`` (here) runs both backward functions, or the module's own
``conv2d_backward`` where it has one (cpu_numba: dL/dy rearranged once for both products;
winograd and a first layer's dL/dW also sum dL/db on their way through dL/dy), and returns
(dL/dx, dL/dW, dL/db).  ``saved`` is what the forward pass computed that dL/dW can use again
(cpu_numba.py: the im2col matrix; winograd.py: the kernel transform U; when ``save`` is
true), kept by the caller, the Conv2d Function, exactly as max pooling's ``argmax``: no
kernel keeps state between calls, and a backward under another setting gets no ``saved``.
``argmax`` is int64 of shape (N, C, OH, OW): the flat index h*W + w of the maximum in the
unpadded input plane (the first one in row-major window order when several are equal).

The implementations:

    reference   kernels/reference.py   plain loops: the definition, and the tests' oracle
    numpy       kernels/im2col.py      im2col + GEMM, written against ``xp`` (numpy or cupy)
    numba       kernels/cpu_numba.py   compiled CPU loops (float32/float64 NumPy arrays)
                kernels/numba_first_layer.py   first layers (few channels): forward, dL/dW,
                                               dL/dx
    winograd    kernels/winograd.py    Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions
                kernels/winograd_tiles.py    F(2x2, 3x3)'s tile transforms (Numba)
                kernels/winograd_weight.py   F(2x2, 3x3)'s dL/dW and dL/db
                kernels/winograd4.py   Winograd F(4x4, 3x3), their forward (C <= 128)
                kernels/winograd42.py  Winograd F(4x2, 3x3): the backward, and the forward
                                       where F(4x4) is not taken (planes of 8x8 and more)
                kernels/winograd42_tiles.py  F(4x2, 3x3)'s tile transforms (Numba)
                kernels/products.py    their products as Numba kernels, where OpenBLAS
                                       runs narrower vectors than the CPU has
                kernels/numba_depthwise.py  depthwise 3x3 convolutions (every Numba setting;
                kernels/numba_depthwise_cl.py   its channels-last kernels for small planes)
    cupy        kernels/gpu_cupy.py    CUDA kernels for CuPy arrays

Beside the convolutions, the ops take Numba kernels of their own through ``numba_module``
(under 'auto', 'numba' and 'winograd'; their NumPy code is the reference): numba_norm.py
(BatchNorm), numba_activation.py (ReLU, ReLU6's backward), numba_bias.py (a convolution's
bias), numba_pool.py (pooling, through the interface above).  Every Numba module takes its
``njit`` from jit.py, which first asks LLVM for 256-bit vectors on AVX-512 CPUs (see there);
Winograd's tile transforms take explicit eight-lane vectors from simd.py where LLVM's own
vectoriser gives up (see there).

The ops in ``tinynet.functional`` call the functions of this module (``conv2d_forward``
etc.), which pick an implementation per call from the array's backend and the setting::

    tinynet.kernels.use("numpy")          # from now on
    with tinynet.kernels.use("reference"):
        ...                               # only inside the block

'auto' (the default, or the environment variable TINYNET_KERNELS) means: CuPy arrays ->
gpu_cupy, NumPy arrays -> cpu_numba when Numba is installed (a 3x3 stride-1 convolution
-> winograd where the measured rule ``winograd.faster`` says so: its forward F(4x4) where
``winograd4.preferred`` says so, else F(4x2) where ``winograd42.preferred`` says so, as
its backward; F(2x2) otherwise); im2col otherwise, or when the fast module lacks the
function.  'numba' never picks Winograd, 'winograd' always does where it applies (F(4x4),
F(4x2) or F(2x2) by the same two rules).  Fast modules are imported
when first needed, never at ``import tinynet``, so that importing the library compiles
nothing.
"""
import importlib
import importlib.util
import os
import warnings

import numpy as np

from .. import backend

from ..geometry import conv_output_size, pair  # noqa: F401  (tinynet.kernels.pair, as before)
from .scratch import recycle  # noqa: F401  (Conv2d.release gives its saved col back)
from .scratch import _keep_freed_memory_by_default, keep_freed_memory  # noqa: F401

_keep_freed_memory_by_default()     # why: scratch.py's docstring

# ---- choosing an implementation ------------------------------------------------------------

INTERFACE = ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight",
             "max_pool2d_forward", "max_pool2d_backward",
             "avg_pool2d_forward", "avg_pool2d_backward")

# user-facing setting -> module in this package
_MODULE_OF = {"reference": "reference", "numpy": "im2col", "im2col": "im2col",
              "numba": "cpu_numba", "cupy": "gpu_cupy", "winograd": "winograd"}
SETTINGS = ("auto", "reference", "numpy", "numba", "winograd")
_NUMBA_SETTINGS = ("auto", "numba", "winograd")     # settings that run Numba kernels

_loaded = {}     # module name -> module, or None when it could not be imported
_errors = {}     # module name -> the ImportError, for the message


def implementation(name):
    """The kernel module for ``name`` ('reference', 'numpy'/'im2col', 'numba', 'cupy'),
    imported on first use.  Raises ImportError when it is not available here."""
    module_name = _MODULE_OF.get(name, name)
    if module_name not in _MODULE_OF.values():
        raise ValueError(f"unknown kernel implementation {name!r}; "
                         f"expected one of {sorted(_MODULE_OF)}")
    module = _try_import(module_name)
    if module is None:
        raise ImportError(f"kernel implementation {name!r} (tinynet/kernels/{module_name}.py) "
                          f"is not available: {_errors.get(module_name)!r}")
    return module


def available():
    """Names of the implementations that import here (e.g. ['reference', 'numpy', 'numba'])."""
    names = ["reference", "numpy"]
    if _numba_installed() and _try_import("cpu_numba") is not None:
        names.append("numba")
    if backend.cuda_available() and _try_import("gpu_cupy") is not None:
        names.append("cupy")
    return names


def _try_import(module_name):
    if module_name not in _loaded:
        try:
            _loaded[module_name] = importlib.import_module(f"{__name__}.{module_name}")
        except ImportError as exc:   # the module or what it needs (numba, cupy) is missing
            _loaded[module_name], _errors[module_name] = None, exc
    return _loaded[module_name]


_numba_found = None


def _numba_installed():
    global _numba_found
    if _numba_found is None:
        _numba_found = importlib.util.find_spec("numba") is not None
    return _numba_found


def _initial_setting():
    name = os.environ.get("TINYNET_KERNELS", "auto").strip().lower() or "auto"
    if name not in SETTINGS:
        warnings.warn(f"TINYNET_KERNELS={name!r} is not one of {SETTINGS}; using 'auto'")
        name = "auto"
    return name


_setting = _initial_setting()


class use:
    """Choose the kernels: 'auto' (default), 'reference', 'numpy' (im2col), 'numba' (Numba
    im2col + GEMM convolutions) or 'winograd' (as 'numba', but Winograd for every 3x3
    stride-1 convolution it applies to).

    A plain call changes the setting from now on; as a context manager it is restored at
    the end of the block.  'numba' applies to NumPy arrays; CuPy arrays always use the GPU
    kernels unless 'reference' or 'numpy' is asked for."""

    def __init__(self, name):
        global _setting
        if not isinstance(name, str) or name.lower() not in SETTINGS:
            raise ValueError(f"kernels.use: name must be one of {SETTINGS}, got {name!r}")
        name = name.lower()
        if name in ("numba", "winograd") and not _numba_installed():
            raise RuntimeError(f"kernels.use({name!r}): Numba is not installed "
                               "(`pip install numba`)")
        self.previous, _setting = _setting, name

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        global _setting
        _setting = self.previous
        return False


def current():
    """The current setting ('auto', 'reference', 'numpy', 'numba' or 'winograd')."""
    return _setting


def choose(function_name, array):
    """The function that will run ``function_name`` for ``array``, under the current setting."""
    if _setting == "reference":
        module_name = "reference"
    elif backend.is_cupy_array(array):
        module_name = "im2col" if _setting == "numpy" else "gpu_cupy"
    elif (_setting in _NUMBA_SETTINGS and array.dtype in (np.float32, np.float64)
          and _numba_installed()):
        module_name = "cpu_numba"
    else:
        module_name = "im2col"
    module = _try_import(module_name)
    function = getattr(module, function_name, None) if module is not None else None
    if function is None:             # fast path missing here: the array-generic one works
        function = getattr(_try_import("im2col"), function_name)
    return function


def numba_module(module_name, array):
    """The Numba kernel module ``module_name`` (e.g. 'numba_norm') when the current setting
    runs Numba kernels on ``array`` (a float32/float64 NumPy array under 'auto', 'numba' or
    'winograd'),
    else None: the caller's plain NumPy code, its readable reference, runs instead."""
    if (_setting in _NUMBA_SETTINGS and type(array) is np.ndarray
            and array.dtype in (np.float32, np.float64) and _numba_installed()):
        return _try_import(module_name)
    return None


# ---- the entry points the ops call ------------------------------------------------------

def choose_conv(function_name, array, x_shape, weight_shape, stride, padding, dilation,
                groups):
    """choose(), except for three kinds of convolution when Numba kernels run: a depthwise
    3x3 one goes to numba_depthwise.py; one Winograd applies to goes to winograd.py under
    'winograd', and under 'auto' where the measured rule ``winograd.faster`` says so (its
    forward to winograd4.py, F(4x4, 3x3), where ``winograd4.preferred`` says so: at most
    128 input channels, for its float32 error, and planes its 4x4 tiles fit; else, and its
    backward, to winograd42.py, F(4x2, 3x3), where ``winograd42.preferred`` says so:
    planes of 8x8 and more that its tiles fit); and else a
    first layer's forward (3x3, few input channels) to numba_first_layer.py (its dL/dW, and
    its dL/dx where dL/dy fits the cache, go there through cpu_numba.py)."""
    depthwise = numba_module("numba_depthwise", array)
    if depthwise is not None and depthwise.applies(x_shape, weight_shape, stride, padding,
                                                   dilation, groups):
        return getattr(depthwise, function_name)
    winograd = numba_module("winograd", array) if _setting in ("auto", "winograd") else None
    if (winograd is not None
            and winograd.applies(x_shape, weight_shape, stride, padding, dilation, groups)
            and (_setting == "winograd"
                 or winograd.faster(function_name, x_shape, weight_shape, padding))):
        if function_name == "conv2d_forward":
            winograd4 = _try_import("winograd4")
            if winograd4.preferred(x_shape, weight_shape, padding):
                return winograd4.conv2d_forward
        winograd42 = _try_import("winograd42")
        if winograd42.preferred(x_shape, weight_shape, padding):
            return getattr(winograd42, function_name)
        return getattr(winograd, function_name)
    first_layer = (numba_module("numba_first_layer", array)
                   if function_name == "conv2d_forward" else None)
    if first_layer is not None and first_layer.forward_applies(
            x_shape, weight_shape, stride, padding, dilation, groups):
        return first_layer.conv2d_forward
    return choose(function_name, array)


def conv2d_forward(x, weight, stride, padding, dilation, groups, save=False, bias=None):
    """(y, saved), y with ``bias`` (O,) added per channel when given.  A module that adds
    the bias in its own output pass says so (``ADDS_BIAS``: winograd.py,
    numba_first_layer.py); for the others it is one more pass over y (``add_bias``)."""
    forward = choose_conv("conv2d_forward", x, x.shape, weight.shape, stride, padding,
                          dilation, groups)
    if bias is not None and getattr(importlib.import_module(forward.__module__), "ADDS_BIAS",
                                    False):
        return forward(x, weight, stride, padding, dilation, groups, save, bias)
    y, saved = forward(x, weight, stride, padding, dilation, groups, save)
    if bias is not None:                    # y is a fresh array from the kernel
        add_bias(y, bias)
    return y, saved


# Below this many elements NumPy's bias lines are as fast (a compiled call has a fixed cost).
_NUMBA_BIAS_MIN_SIZE = 1 << 16


def _numba_bias(array):
    """kernels/numba_bias.py when the Numba kernels run on this (C-contiguous, large enough)
    array, else None: the NumPy lines, the kernels' reference, run."""
    if array.size < _NUMBA_BIAS_MIN_SIZE or not array.flags.c_contiguous:
        return None
    return numba_module("numba_bias", array)


def add_bias(y, bias):
    """y[n, o, i, j] += b[o], in place."""
    fast = _numba_bias(y)
    if fast is None:
        y += bias.reshape(1, -1, 1, 1)
    else:
        fast.add_bias(y, bias)              # the same, on every core


def bias_grad(grad):
    """dL/db[o] = sum_{n, i, j} dL/dy[n, o, i, j]."""
    fast = _numba_bias(grad)
    return grad.sum(axis=(0, 2, 3)) if fast is None else fast.bias_grad(grad)


def conv2d_backward_input(grad_y, weight, x_shape, stride, padding, dilation, groups):
    return choose_conv("conv2d_backward_input", grad_y, x_shape, weight.shape, stride, padding,
                       dilation, groups)(
        grad_y, weight, x_shape, stride, padding, dilation, groups)


def conv2d_backward_weight(grad_y, x, weight_shape, stride, padding, dilation, groups,
                           saved=None):
    return choose_conv("conv2d_backward_weight", grad_y, x.shape, weight_shape, stride, padding,
                       dilation, groups)(
        grad_y, x, weight_shape, stride, padding, dilation, groups, saved)


def conv2d_backward(grad_y, x, weight, stride, padding, dilation, groups, saved=None,
                    need_x=True, need_w=True, need_b=False):
    """(dL/dx, dL/dW, dL/db), each None when not needed: the two functions above, or one call
    where the chosen module does both at once (cpu_numba: dL/dy's layout swap done once for
    the two).  Such a module may return dL/db too, summed while its dL/dW pass reads dL/dy
    (winograd.py, numba_first_layer.py); where it does not, ``bias_grad`` sums it."""
    backward_input = choose_conv("conv2d_backward_input", grad_y, x.shape, weight.shape,
                                 stride, padding, dilation, groups)
    both = getattr(importlib.import_module(backward_input.__module__), "conv2d_backward", None)
    if both is not None:
        grad_x, grad_w, grad_b = both(grad_y, x, weight, stride, padding, dilation, groups,
                                      saved, need_x, need_w, need_b)
    else:
        grad_x = (conv2d_backward_input(grad_y, weight, x.shape, stride, padding, dilation,
                                        groups) if need_x else None)
        grad_w = (conv2d_backward_weight(grad_y, x, weight.shape, stride, padding, dilation,
                                         groups, saved) if need_w else None)
        grad_b = None
    if need_b and grad_b is None:
        grad_b = bias_grad(grad_y)
    return grad_x, grad_w, grad_b


def max_pool2d_forward(x, kernel, stride, padding):
    return choose("max_pool2d_forward", x)(x, kernel, stride, padding)


def max_pool2d_backward(grad_y, argmax, x_shape):
    return choose("max_pool2d_backward", grad_y)(grad_y, argmax, x_shape)


def avg_pool2d_forward(x, kernel, stride, padding):
    return choose("avg_pool2d_forward", x)(x, kernel, stride, padding)


def avg_pool2d_backward(grad_y, x_shape, kernel, stride, padding):
    return choose("avg_pool2d_backward", grad_y)(grad_y, x_shape, kernel, stride, padding)

