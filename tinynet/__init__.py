"""tinynet: tensors, hand-written reverse-mode autograd, layers and optimizers.

    import tinynet as tn
    from tinynet import nn, optim
    import tinynet.functional as F
"""
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
