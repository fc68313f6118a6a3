"""Check hand-written gradients against finite differences: ``tn.gradcheck``.

For a function y = f(x1, ..., xn) and a random upstream gradient u (same shape as y) we
check the scalar L = sum(u * y).  Backward gives the analytic dL/dx_i.  The numeric one
is the central difference

    dL/dx[j]  ~  (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)

element by element for small inputs; for large inputs along random unit directions d
(dL/dx . d against the difference along d), which checks every element at once at the
cost of a few evaluations.  A random u, not ones, is what catches transposition bugs: with
u = 1 many wrong backward formulas still sum to the right number.

Everything runs in float64 (inputs, and a Module's parameters), where eps = 1e-6 leaves
about 1e-10 of rounding error.  Where the function has a kink (ReLU at 0, a tie in a max),
a perturbation can cross it and the numeric slope becomes meaningless: gradcheck notices
that the left and right slopes differ and says so instead of reporting a wrong gradient.
"""
import numpy as np

from . import backend
from .autograd import Tensor


class GradcheckError(AssertionError):
    """The analytic and numeric gradients disagree (the message says where and by how much)."""


class KinkError(GradcheckError):
    """A finite-difference step crossed a point where the function is not differentiable."""


def _to_float64_leaf(x):
    if isinstance(x, Tensor):
        if x.dtype.kind != "f":
            return x, False                  # integer labels etc.: passed unchanged
        return Tensor(x.data.astype(np.float64), requires_grad=True), True
    array = np.asarray(x) if not backend.is_cupy_array(x) else x
    if array.dtype.kind != "f":
        return Tensor(array), False
    return Tensor(array.astype(np.float64), requires_grad=True), True


def _outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0, max_elements=64,
              n_directions=6, check_params=True):
    """Raise ``GradcheckError`` unless backward of ``fn`` matches finite differences.

    fn            a callable on Tensors (a function or a Module) returning a Tensor or a
                  tuple of Tensors
    inputs        Tensors or arrays; floating ones are checked, others (labels) are passed
    eps           the finite-difference step
    atol, rtol    |analytic - numeric| <= atol + rtol * |numeric| must hold everywhere
    max_elements  inputs with more elements are checked along ``n_directions`` random
                  directions instead of element by element
    check_params  for a Module: cast it to float64 (in place) and check its parameters too

    Returns True when every check passes.
    """
    rng = np.random.default_rng(seed)
    leaves, names = [], []
    call_inputs = []
    for i, x in enumerate(inputs):
        leaf, checked = _to_float64_leaf(x)
        call_inputs.append(leaf)
        if checked:
            leaves.append(leaf)
            names.append(f"input {i}")
    if check_params and hasattr(fn, "named_parameters"):
        if hasattr(fn, "double"):
            fn.double()
        for name, p in fn.named_parameters():
            if p.requires_grad:
                leaves.append(p)
                names.append(f"parameter '{name}'")
    if not leaves:
        raise ValueError("gradcheck: no floating-point input or parameter to check")

    # Analytic: backward with random upstream gradients on every output.
    for leaf in leaves:
        leaf.grad = None
    outputs = _outputs(fn(*call_inputs))
    upstream = [rng.standard_normal(out.shape) for out in outputs]
    if len(outputs) == 1:
        outputs[0].backward(backend.move(upstream[0], outputs[0].device))
    else:   # one backward through sum(u_k * y_k) covers every output
        total = sum((out * backend.move(u, out.device)).sum() for out, u in zip(outputs, upstream))
        total.backward()
    analytic = [backend.to_cpu(leaf.grad) if leaf.grad is not None
                else np.zeros(leaf.shape) for leaf in leaves]

    def objective():
        from .autograd import no_grad
        with no_grad():
            outs = _outputs(fn(*call_inputs))
        return float(sum(np.sum(backend.to_cpu(o.data) * u) for o, u in zip(outs, upstream)))

    for leaf, name, grad in zip(leaves, names, analytic):
        data = leaf.data
        original = data.copy()
        if data.size <= max_elements:
            probes = [(idx, None) for idx in np.ndindex(data.shape)]
        else:
            probes = []
            for _ in range(n_directions):
                d = rng.standard_normal(data.shape)
                probes.append((None, d / np.linalg.norm(d)))
        for idx, direction in probes:
            if direction is None:
                step = np.zeros(data.shape)
                step[idx] = 1.0
            else:
                step = direction
            step_dev = backend.move(step, leaf.device)

            def at(scale):
                leaf.data[...] = original + scale * eps * step_dev
                return objective()
            plus, minus, center = at(1.0), at(-1.0), at(0.0)
            leaf.data[...] = original
            numeric = (plus - minus) / (2 * eps)
            expected = float(grad[idx]) if direction is None else float(np.sum(grad * step))
            error = abs(expected - numeric)
            tolerance = atol + rtol * abs(numeric)
            if error <= tolerance:
                continue
            where = f"index {idx}" if direction is None else "a random direction"
            right, left = (plus - center) / eps, (center - minus) / eps
            if abs(right - left) > 10 * (tolerance + 1e-7 * (abs(right) + abs(left))):
                raise KinkError(
                    f"gradcheck: {name} at {where}: the step eps={eps} crosses a kink "
                    f"(left slope {left:.6g}, right slope {right:.6g}); the function is not "
                    "differentiable there. Choose inputs away from ReLU zeros and max ties.")
            raise GradcheckError(
                f"gradcheck: {name} (shape {tuple(data.shape)}) at {where}: analytic "
                f"{expected:.10g} vs numeric {numeric:.10g}, |difference| {error:.3g} > "
                f"tolerance {tolerance:.3g} (atol={atol}, rtol={rtol}, eps={eps})")
    return True
