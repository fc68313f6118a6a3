"""The learner's view of backward: what each node did, in the order backward visited it.

    with tn.trace_backward() as trace:
        loss.backward()
    print(trace)

For every Function that backward applied: the op, its output's name and shape, the norm of
the upstream gradient dL/d(out), and the shape and norm of each gradient it passed on to its
inputs.  Reading it top to bottom is reading the chain rule from the loss back to the leaves.
"""
import contextlib

from . import backend
from .autograd import _tracer


class BackwardTrace:
    """What backward did, node by node: filled inside ``with trace_backward() as t:``.

    Each step records the op, the output's shape, the norm of the upstream gradient
    dL/d(out), and the shape and norm of every gradient it passed to its inputs."""

    def __init__(self):
        self.steps = []

    def record(self, fn, output, grad, input_grads):
        xp = backend.get_array_module(grad)
        norm = lambda g: float(xp.linalg.norm(g.ravel())) if g is not None else None
        self.steps.append({
            "op": type(fn).__name__,
            "output": output.name,
            "output_shape": tuple(output.shape),
            "upstream_norm": norm(grad),
            "inputs": [(parent.name, tuple(parent.shape), None if g is None else norm(g))
                       for parent, g in zip(fn.inputs, input_grads)],
        })

    def __str__(self):
        lines = ["step  op               output shape     |dL/dout|   -> gradients to inputs"]
        for i, step in enumerate(self.steps, 1):
            ins = ", ".join(
                f"{name or '?'}{list(shape)}: {'-' if n is None else f'{n:.4g}'}"
                for name, shape, n in step["inputs"])
            out = f"{step['output'] or ''}{list(step['output_shape'])}"
            lines.append(f"{i:>4}  {step['op']:<16} {out:<16} {step['upstream_norm']:>9.4g}"
                         f"   -> {ins}")
        return "\n".join(lines)


@contextlib.contextmanager
def trace_backward():
    """Record every backward step taken inside the block; print the result to read it."""
    trace, previous = BackwardTrace(), _tracer.current
    _tracer.current = trace
    try:
        yield trace
    finally:
        _tracer.current = previous
