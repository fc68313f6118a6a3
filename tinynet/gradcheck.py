"""Check hand-written gradients against finite differences: ``tn.gradcheck``.

For a function y = f(x1, ..., xn) and a random upstream gradient u (same shape as y) we
check the scalar L = sum(u * y).  Backward gives the analytic dL/dx_i.  The numeric one
is the central difference

    dL/dx[j]  ~  (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)

for every element j of inputs up to ``max_elements`` elements (as PyTorch's gradcheck, which
builds the whole Jacobian); for larger inputs for ``n_random_elements`` elements drawn at
random plus ``n_directions`` random unit directions d (dL/dx . d against the difference
along d: every element at once, but a small error in one element of many hides in the
sum).  A random u, not ones, is what catches transposition bugs: with u = 1 many wrong
backward formulas still sum to the right number.

The tolerance is atol + rtol |numeric| + the rounding floor of the difference: L is a sum of
outputs each rounded to float64, so two evaluations can differ by about
2^-52 sum|u y| even when x did not move; divided by 2 eps that is the floor below which no
finite difference can tell gradients apart (it matters for large outputs: x * 2 + 1e7).

Everything runs in float64 (inputs, and a Module's parameters), where eps = 1e-6 leaves
about 1e-10 of rounding error.  Where the function has a kink (ReLU at 0, a tie in a max),
a perturbation can cross it and the numeric slope becomes meaningless.  On a mismatch
gradcheck tries again with a 16 times smaller step (a kink near x is no longer crossed);
if that still disagrees it compares the left and right slopes at both steps: a kink's
slopes differ by the same amount however small the step, a smooth function's by an amount
that shrinks with the step (eps f'').  Only the first is reported as a ``KinkError``; a
steep smooth function with a wrong gradient is a ``GradcheckError``.
"""

import numpy as np

from . import backend
from .autograd import Tensor, no_grad


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


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=20251125,
              max_elements=512, n_random_elements=64, n_directions=6, check_params=True):
    """Raise ``GradcheckError`` unless backward of ``fn`` matches finite differences.

    fn            a callable on Tensors (a function or a Module) returning a Tensor or a
                  tuple of Tensors
    inputs        Tensors or arrays; floating ones are checked, others (labels) are passed
    eps           the finite-difference step
    atol, rtol    |analytic - numeric| <= atol + rtol * |numeric| + rounding floor (see the
                  module docstring) must hold for every check
    max_elements  inputs up to this size are checked element by element, every element
    n_random_elements, n_directions
                  larger inputs: this many elements drawn at random, and this many random
                  directions
    check_params  for a Module: cast it to float64 (in place) and check its parameters too;
                  its buffers (BatchNorm's running statistics) are restored afterwards
    seed          seeds the upstream gradient and the directions; the default is an odd
                  number on purpose: with seed 0, a test whose inputs also came from seed 0
                  would get an upstream gradient equal to its input, which can hide bugs

    Returns True when every check passes.  On a mismatch the error names the input, the
    index with the largest error (or "a random direction"), the analytic and numeric values
    and the tolerance; a ``KinkError`` when the only mismatches are steps across a kink.
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
    saved_buffers = []
    if check_params and hasattr(fn, "named_parameters"):
        if hasattr(fn, "double"):
            fn.double()
        # Training-mode BatchNorm updates its running statistics on every one of the many
        # forward passes below; they are put back afterwards so the check changes nothing
        # but the dtype (documented above).
        if hasattr(fn, "named_buffers"):
            saved_buffers = [(b, b.copy()) for _, b in fn.named_buffers() if b is not None]
        for name, p in fn.named_parameters():
            if p.requires_grad:
                leaves.append(p)
                names.append(f"parameter '{name}'")
    if not leaves:
        raise ValueError("gradcheck: no floating-point input or parameter to check")

    try:
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
            with no_grad():
                outs = _outputs(fn(*call_inputs))
            return float(sum(np.sum(backend.to_cpu(o.data) * u) for o, u in zip(outs, upstream)))

        center = objective()
        with no_grad():
            outs = _outputs(fn(*call_inputs))
        magnitude = float(sum(np.sum(np.abs(backend.to_cpu(o.data) * u))
                              for o, u in zip(outs, upstream)))
        rounding = 4 * np.finfo(np.float64).eps * magnitude / (2 * eps)
        for leaf, name, grad in zip(leaves, names, analytic):
            _check_leaf(leaf, name, grad, objective, center, eps, atol, rtol, rounding, rng,
                        max_elements, n_random_elements, n_directions)
        return True
    finally:
        for buffer, value in saved_buffers:
            buffer[...] = value


def _check_leaf(leaf, name, grad, objective, center, eps, atol, rtol, rounding, rng,
                max_elements, n_random_elements, n_directions):
    """Compare one input's analytic gradient with central differences; raise on the worst
    mismatch.  A mismatch where the left and right slopes differ is a kink, not a bug;
    a KinkError is raised only when every mismatch of this input is one."""
    data = leaf.data
    original = data.copy()
    if data.size <= max_elements:
        probes = [(idx, None) for idx in np.ndindex(data.shape)]
    else:
        chosen = rng.choice(data.size, size=min(n_random_elements, data.size), replace=False)
        probes = [(np.unravel_index(k, data.shape), None) for k in np.sort(chosen)]
        for _ in range(n_directions):
            d = rng.standard_normal(data.shape)
            probes.append((None, d / np.linalg.norm(d)))
    failures, kinks = [], []
    try:
        for idx, direction in probes:
            if direction is None:
                step = np.zeros(data.shape)
                step[idx] = 1.0
            else:
                step = direction
            step_dev = backend.move(step, leaf.device)

            def differences(h):
                """L(x + h step) - L(x), L(x) - L(x - h step)."""
                leaf.data[...] = original + h * step_dev
                plus = objective()
                leaf.data[...] = original - h * step_dev
                minus = objective()
                leaf.data[...] = original
                return plus - center, center - minus

            expected = float(grad[idx]) if direction is None else float(np.sum(grad * step))
            h = eps
            right, left = differences(h)
            numeric = (right + left) / (2 * h)
            tolerance = atol + rtol * abs(numeric) + rounding
            if abs(expected - numeric) <= tolerance:
                continue
            # Mismatch: a 16 times smaller step no longer crosses a kink that lies near x.
            slopes_big = abs(right - left) / h
            h = eps / 16
            right, left = differences(h)
            numeric = (right + left) / (2 * h)
            tolerance = atol + rtol * abs(numeric) + 16 * rounding
            error = abs(expected - numeric)
            if error <= tolerance:                      # also False for NaN
                continue
            slopes_small = abs(right - left) / h
            # a kink: one-sided slopes disagree, and no less so with the smaller step
            kink = (slopes_small > 10 * (tolerance + 1e-7 * abs(numeric))
                    and slopes_small > 0.5 * slopes_big)
            where = f"index {idx}" if direction is None else "a random direction"
            record = (error, where, expected, numeric, tolerance, left / h, right / h, h)
            (kinks if kink else failures).append(record)
    finally:
        leaf.data[...] = original
    shape = tuple(data.shape)
    if failures:
        error, where, expected, numeric, tolerance, _, _, h = max(
            failures, key=lambda r: (np.nan_to_num(r[0], nan=np.inf), -r[4]))
        extra = (f"; {len(failures)} of {len(probes)} checks failed" if len(failures) > 1 else "")
        if kinks:
            extra += f" (and {len(kinks)} more crossed a kink)"
        raise GradcheckError(
            f"gradcheck: {name} (shape {shape}) at {where}: analytic {expected:.10g} vs "
            f"numeric {numeric:.10g}, |difference| {error:.3g} > tolerance {tolerance:.3g} "
            f"(atol={atol}, rtol={rtol}, step {h:.3g}){extra}")
    if kinks:
        error, where, expected, numeric, tolerance, left, right, h = max(
            kinks, key=lambda r: r[0])
        raise KinkError(
            f"gradcheck: {name} (shape {shape}) at {where}: the step eps={eps} crosses a kink "
            f"(left slope {left:.6g}, right slope {right:.6g}; analytic {expected:.6g}, "
            f"numeric {numeric:.6g}); the function is not differentiable there. Choose "
            "inputs away from ReLU zeros and max ties.")
