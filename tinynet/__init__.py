"""tinynet: a deep-learning engine written to be read.

Tensors, reverse-mode automatic differentiation with every backward pass written by hand
beside its forward pass, convolution/pooling/BatchNorm layers, optimizers, data loading; a
NumPy backend on the CPU (Numba kernels for convolution and pooling) and CuPy on the GPU.
It follows the notation of the lecture "Neural Network Explanations" (Explainable AI,
Dr. Stefan Heindorf, Paderborn University); docs/README.md is the learning path through it.

    import tinynet as tn
    from tinynet import nn, optim, data
    import tinynet.functional as F

    x = tn.tensor(array, requires_grad=True)      # a Tensor: .data, .grad, .creator
    loss = F.cross_entropy(model(x), labels)
    loss.backward()                               # fills .grad of every leaf

What is where, in reading order:

    autograd.py      Tensor, Function (forward/backward), the tape, backward(), no_grad
    functional/      the ops, each forward beside its backward: math, shape, activation,
                     loss, conv, pool, norm, resample
    kernels/         convolution and pooling: reference.py (plain loops, the definition),
                     im2col.py (one matrix product), cpu_numba.py, gpu_cupy.py
    nn/              Module (parameters, train/eval, state_dict, hooks) and the layers
    optim.py         SGD, Adam, learning-rate schedulers
    data.py          Dataset, DataLoader, ImageFolder, ArrayDataset
    transforms.py    per-image and batch transforms (re-exported by data)
    training.py      fit / evaluate: progress bars, checkpoints, resume after Ctrl-C
    io.py            save / load weights as .npz (no pickle, written atomically)
    models.py        ready architectures
    backend.py       NumPy or CuPy, devices 'cpu' / 'cuda'

Tools for learning and checking:

    tn.gradcheck(fn, *inputs)          backward against central differences (float64, random
                                       upstream gradient); raises tn.GradcheckError
    with tn.trace_backward(model=net) as t: loss.backward()
                                       print(t): each op backward visited, shapes, gradient
                                       norms; parameters named by path ('0.weight')
    tn.draw_graph(loss, "graph.png", model=net)
                                       a picture of the recorded graph (matplotlib, or
                                       graphviz's dot when installed)

Demos: ``python -m demos.xor`` (the lecture's XOR example: a line fails, one hidden layer
learns it, backpropagation printed layer by layer).  Explanations of tinynet models are in
the sibling package ``explain`` (``help(explain)``).
"""
import os as _os
import sys as _sys

if "numpy" not in _sys.modules:
    # OpenBLAS reads this when NumPy loads it: its worker threads then sleep between calls
    # instead of spinning, which frees the cores for the Numba kernels' threads
    # (kernels/numba_threads.py has the measurements).  A value already set is kept.
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from .autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad, tensor
from .backend import cuda_available
from .trace import BackwardTrace, trace_backward
from .graph import draw_graph
from .random import manual_seed
from .gradcheck import GradcheckError, KinkError, gradcheck
from . import functional, nn, optim, data
from .io import save, load
from .training import fit, evaluate

__version__ = "0.1.0"
