"""The learner's view of backward: what each node did, in the order backward visited it.

    with tn.trace_backward(model=net) as trace:
        loss.backward()
    print(trace)

For every Function that backward applied: the op, its output's name and shape, the norm of
the upstream gradient dL/d(out), and the shape and norm of each gradient it passed on to its
inputs.  Reading it top to bottom is reading the chain rule from the loss back to the leaves.

Tensors are shown by their ``.name`` (set it yourself: ``x.name = "x"``); with ``model=``
each parameter of that Module is shown by its path in ``model.named_parameters()``, e.g.
``0.weight``.  A tensor with neither shows as ``?``; an input that received no gradient (a
constant such as the data or the labels) shows ``-`` in place of a norm.
"""
import contextlib

from . import backend
from .autograd import _tracer

LEGEND = "(? = unnamed tensor, - = input that gets no gradient)"


def tensor_names(model=None):
    """{id(tensor): name} for the parameters of ``model`` ('0.weight', 'fc1.bias', ...)."""
    if model is None:
        return {}
    if not hasattr(model, "named_parameters"):
        raise TypeError(f"model must be a Module (with named_parameters()), "
                        f"got {type(model).__name__}")
    return {id(p): name for name, p in model.named_parameters()}


def name_of(tensor, names):
    """The tensor's own name, else its parameter path in ``names``, else None."""
    return tensor.name or names.get(id(tensor))


class BackwardTrace:
    """What backward did, node by node: filled inside ``with trace_backward() as t:``.

    Each step records the op, the output's shape, the norm of the upstream gradient
    dL/d(out), and the shape and norm of every gradient it passed to its inputs."""

    def __init__(self, names=None):
        self.steps = []
        self.names = names or {}

    def record(self, fn, output, grad, input_grads):
        xp = backend.get_array_module(grad)
        norm = lambda g: float(xp.linalg.norm(g.ravel())) if g is not None else None
        self.steps.append({
            "op": type(fn).__name__,
            "output": name_of(output, self.names),
            "output_shape": tuple(output.shape),
            "upstream_norm": norm(grad),
            "inputs": [(name_of(parent, self.names), tuple(parent.shape),
                        None if g is None or not parent.requires_grad else norm(g))
                       for parent, g in zip(fn.inputs, input_grads)],
        })

    def __str__(self):
        lines = ["step  op               output shape     |dL/dout|   -> gradients to inputs   "
                 + LEGEND]
        for i, step in enumerate(self.steps, 1):
            ins = ", ".join(
                f"{name or '?'}{list(shape)}: {'-' if n is None else f'{n:.4g}'}"
                for name, shape, n in step["inputs"])
            out = f"{step['output'] or ''}{list(step['output_shape'])}"
            lines.append(f"{i:>4}  {step['op']:<16} {out:<16} {step['upstream_norm']:>9.4g}"
                         f"   -> {ins}")
        return "\n".join(lines)


@contextlib.contextmanager
def trace_backward(model=None):
    """Record every backward step taken inside the block; print the result to read it.

    model  a Module whose parameters are then shown by name ('0.weight') instead of '?'
    """
    trace, previous = BackwardTrace(tensor_names(model)), _tracer.current
    _tracer.current = trace
    try:
        yield trace
    finally:
        _tracer.current = previous
