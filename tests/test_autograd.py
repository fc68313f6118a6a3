"""Tensor and the backward pass: dtype rules, accumulation, graph freeing, no_grad,
retain_grad, detach, hooks, error paths and the learner's trace."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import backend


def leaf(array):
    return tn.tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


# ---- dtype rules -------------------------------------------------------------------------

def test_python_floats_become_float32():
    assert tn.tensor(1.5).dtype == np.float32
    assert tn.tensor([1.0, 2.0]).dtype == np.float32
    assert tn.tensor([[0.5], [1.5]]).dtype == np.float32


def test_float_arrays_keep_their_dtype():
    assert tn.tensor(np.zeros(3, dtype=np.float64)).dtype == np.float64
    assert tn.tensor(np.zeros(3, dtype=np.float32)).dtype == np.float32
    assert tn.tensor(np.zeros(3), dtype=np.float32).dtype == np.float32


def test_integer_data_stays_integer_and_cannot_require_grad():
    labels = tn.tensor(np.array([0, 2, 1]))
    assert labels.dtype.kind == "i"
    with pytest.raises(TypeError, match="floating"):
        tn.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="floating"):
        tn.tensor(np.arange(3)).requires_grad_()


def test_object_and_string_data_are_refused():
    with pytest.raises(TypeError, match="numeric"):
        tn.tensor(np.array([object(), object()], dtype=object))
    with pytest.raises(TypeError, match="numeric"):
        tn.tensor(["a", "b"])


def test_ops_keep_float32_and_float64():
    for dtype in (np.float32, np.float64):
        x = tn.tensor(np.ones((2, 3), dtype=dtype), requires_grad=True)
        y = ((x * 0.5 + 1.0) / 2.0 - 3).exp().sum()
        assert y.dtype == dtype
        y.backward()
        assert x.grad.dtype == dtype and x.grad.shape == x.shape


def test_tensor_facts_and_numpy():
    x = tn.tensor(np.arange(6.0).reshape(2, 3))
    assert x.shape == (2, 3) and x.ndim == 2 and x.numel() == 6 and len(x) == 2
    assert x.size() == (2, 3) and x.size(1) == 3 and x.size(-2) == 2
    assert x.device == "cpu" and x.is_leaf and not x.requires_grad
    np.testing.assert_array_equal(x.numpy(), np.arange(6.0).reshape(2, 3))
    assert tn.tensor(2.5).item() == 2.5
    assert "requires_grad=True" in repr(leaf([1.0]))


# ---- the backward pass -------------------------------------------------------------------

def test_scalar_backward_defaults_to_one():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)


def test_a_tensor_used_twice_accumulates():
    # y = x*x + 3x  ->  dy/dx = 2x + 3; x feeds two ops and each contributes.
    x = leaf([1.0, -2.0, 0.5])
    y = x * x + 3 * x
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 3)


def test_diamond_graph_accumulates_before_passing_on():
    # a = 2x; b = a*a; c = a + b; dc/dx = 2 + 2*a*2 = 2 + 8x.  `a` must get both contributions
    # (from c and from b) before its own backward runs once.
    x = leaf([0.3, -1.2])
    a = x * 2
    c = a + a * a
    c.sum().backward()
    np.testing.assert_allclose(x.grad, 2 + 8 * x.data)


def test_leaf_grads_accumulate_over_two_backward_calls():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [6.0, 6.0])
    x.zero_grad()
    assert x.grad is None


def test_chain_of_5000_ops_has_no_recursion_limit():
    x = leaf([1.0])
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001 ** 5000], rtol=1e-10)


def test_graph_is_freed_after_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * x.data)


def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with tn.no_grad():
        assert not tn.is_grad_enabled()
        y = x * 2 + 1
        with tn.enable_grad():
            z = x * 2
    assert tn.is_grad_enabled()
    assert not y.requires_grad and y.creator is None
    assert z.requires_grad and z.creator is not None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_retain_grad_keeps_an_intermediate_gradient():
    x = leaf([1.0, 2.0, 3.0])
    h = x * 2
    h.retain_grad()
    other = x * 3       # not retained
    (h * h + other).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    assert other.grad is None


def test_detach_cuts_the_graph():
    x = leaf([1.0, 2.0])
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    y = (x * d).sum()      # d acts as a constant
    y.backward()
    np.testing.assert_allclose(x.grad, d.data)


def test_hook_reads_the_gradient():
    x = leaf([1.0, 2.0])
    h = x * 3
    seen = []
    h.register_hook(lambda g: seen.append(g.copy()))
    (h * h).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * h.data)


def test_hook_can_replace_the_gradient_and_be_removed():
    x = leaf([1.0, 2.0])
    h = x * 3
    handle = h.register_hook(lambda g: np.zeros_like(g) + 1.0)   # replace dL/dh by ones
    (h * h).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])               # 1 * dh/dx
    handle.remove()
    x.zero_grad()
    h = x * 3
    (h * h).sum().backward()
    np.testing.assert_allclose(x.grad, 18 * x.data)
    # A removed handle also stops a hook registered on the leaf itself.
    calls = []
    handle = x.register_hook(lambda g: calls.append(1))
    handle.remove()
    handle.remove()          # removing twice is harmless
    (x * 1).sum().backward()
    assert calls == []


def test_hook_on_a_leaf_changes_what_is_stored():
    x = leaf([1.0, 2.0])
    x.register_hook(lambda g: 2 * g)
    (x * 5).sum().backward()
    np.testing.assert_allclose(x.grad, [10.0, 10.0])


def test_hook_needs_requires_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tn.tensor([1.0]).register_hook(lambda g: g)


def test_non_scalar_backward_needs_a_gradient():
    x = leaf([1.0, 2.0])
    y = x * 2
    with pytest.raises(ValueError, match="scalar"):
        y.backward()
    y.backward(np.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad, [2.0, 20.0])


def test_gradient_of_the_wrong_shape_is_refused():
    x = leaf([1.0, 2.0])
    y = x * 2
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        y.backward(np.ones(3))
    assert x.grad is None


def test_backward_reports_an_op_that_returns_a_wrong_shape():
    class Broken(tn.Function):
        def forward(self, x):
            return x * 2

        def backward(self, grad):
            return grad.sum(keepdims=True)     # wrong: shape (1,) for a (3,) input

    x = leaf([1.0, 2.0, 3.0])
    with pytest.raises(RuntimeError, match="Broken.backward returned a gradient of shape"):
        Broken()(x).sum().backward()


def test_inputs_on_different_devices_are_refused(monkeypatch):
    # No GPU needed: pretend one input lives on 'cuda' by patching how devices are read
    # (and that CuPy is loaded: without it the check knows every array is NumPy's).
    a = leaf([1.0, 2.0])
    b = leaf([3.0, 4.0])
    real = backend.device_of
    monkeypatch.setattr(backend, "device_of",
                        lambda array: "cuda" if array is b.data else real(array))
    monkeypatch.setattr(backend, "cupy_loaded", lambda: True)
    with pytest.raises(ValueError, match="different devices"):
        a + b


@pytest.mark.skipif(not tn.cuda_available(), reason="needs CuPy and an NVIDIA GPU")
def test_real_cuda_and_cpu_tensors_are_refused():
    a = tn.tensor(np.ones(2), device="cpu")
    b = tn.tensor(np.ones(2), device="cuda")
    with pytest.raises(ValueError, match="different devices"):
        a + b


def test_asking_for_cuda_without_a_gpu_says_what_to_install():
    if tn.cuda_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="cupy-cuda12x"):
        tn.tensor([1.0], device="cuda")


def test_astype_passes_the_gradient_back_in_the_source_dtype():
    x = tn.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = x.double() * 2
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, 2.0)


# ---- the learner's trace -----------------------------------------------------------------

def test_trace_backward_lists_ops_in_order_with_shapes_and_norms():
    x = tn.tensor(np.ones((2, 3)), requires_grad=True, dtype=np.float64)
    w = tn.tensor(np.full((3, 4), 0.5), requires_grad=True)
    x.name, w.name = "x", "W"
    h = x @ w
    h.name = "h"
    with tn.trace_backward() as trace:
        (h * 2).sum().backward()
    ops = [step["op"] for step in trace.steps]
    assert ops == ["Sum", "Mul", "MatMul"]           # outputs before the inputs they came from
    matmul = trace.steps[2]
    assert matmul["output_shape"] == (2, 4) and matmul["output"] == "h"
    np.testing.assert_allclose(matmul["upstream_norm"], np.linalg.norm(np.full((2, 4), 2.0)))
    (x_name, x_shape, x_norm), (w_name, w_shape, w_norm) = matmul["inputs"]
    assert (x_name, x_shape, w_name, w_shape) == ("x", (2, 3), "W", (3, 4))
    np.testing.assert_allclose(x_norm, np.linalg.norm(x.grad))
    np.testing.assert_allclose(w_norm, np.linalg.norm(w.grad))
    text = str(trace)
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[1].split()[1] == "Sum" and lines[3].split()[1] == "MatMul"
    assert "x[2, 3]" in lines[3] and "W[3, 4]" in lines[3]


def test_trace_records_nothing_outside_the_block():
    x = leaf([1.0])
    with tn.trace_backward() as trace:
        pass
    (x * 2).sum().backward()
    assert trace.steps == []


# ---- review fixes: each of these failed before its fix ----------------------------------------

def test_float32_input_gets_float32_grad_even_from_float64_constants(rng):
    x = tn.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    (x * np.ones(3)).sum().backward()                 # a float64 array constant
    assert x.grad.dtype == np.float32
    y = tn.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    out = y ** np.float64(2)                          # a numpy float64 exponent
    assert out.dtype == np.float32
    out.sum().backward()
    assert y.grad.dtype == np.float32


def test_linear_refuses_mixed_dtypes(rng):
    x = tn.tensor(rng.standard_normal((2, 3)))        # float64
    w = tn.tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="weight has float32"):
        F.linear(x, w)


def test_leaf_grads_are_not_shared_arrays():
    a = tn.tensor(np.ones(3), requires_grad=True)
    b = tn.tensor(np.ones(3), requires_grad=True)
    upstream = np.ones(3)
    (a + b).backward(upstream)
    assert a.grad is not b.grad and a.grad is not upstream
    a.grad *= 10                                      # clipping a.grad in place
    np.testing.assert_array_equal(b.grad, np.ones(3))
    np.testing.assert_array_equal(upstream, np.ones(3))


SIZE = tn.autograd._KEEP_MIN_SIZE        # below it a gradient is copied anyway (cheaper)


class _Doubled(tn.autograd.Function):
    """y = 2 x; its backward returns a fresh array (its id recorded), or with ``keep`` a
    view of an array the class keeps (as a kernel's reusable buffer would be)."""
    made, kept = [], np.zeros(SIZE + 8)

    def __init__(self, keep=False):
        self.keep = keep

    def forward(self, x):
        return 2 * x

    def backward(self, grad):
        if self.keep:
            _Doubled.kept[:SIZE] = 2 * grad
            return _Doubled.kept[:SIZE]
        out = 2 * grad
        _Doubled.made.append(id(out))
        return out


def test_a_fresh_gradient_nothing_else_holds_becomes_grad_without_a_copy():
    """As PyTorch's AccumulateGrad: the op's own new array is kept as .grad."""
    a = leaf(np.ones(SIZE))
    _Doubled()(a).backward(np.ones(SIZE))
    assert id(a.grad) == _Doubled.made[-1]
    np.testing.assert_array_equal(a.grad, 2 * np.ones(SIZE))


def test_gradients_something_else_holds_are_copied():
    """A view of a kept buffer, an array a hook kept, and (above) arrays shared between
    leaves or with the caller: .grad is a copy, safe to edit in place."""
    a = leaf(np.ones(SIZE))
    _Doubled(keep=True)(a).backward(np.ones(SIZE))
    assert not np.shares_memory(a.grad, _Doubled.kept)
    a.grad *= 10
    np.testing.assert_array_equal(_Doubled.kept[:SIZE], 2 * np.ones(SIZE))
    seen = []
    b = leaf(np.ones(SIZE))
    b.register_hook(lambda grad: seen.append(grad))
    _Doubled()(b).backward(np.ones(SIZE))
    assert b.grad is not seen[0] and not np.shares_memory(b.grad, seen[0])


def test_leaf_grads_of_any_size_are_not_shared_arrays():
    """The same as test_leaf_grads_are_not_shared_arrays, large enough to be checked."""
    a, b = leaf(np.ones(SIZE)), leaf(np.ones(SIZE))
    upstream = np.ones(SIZE)
    (a + b).backward(upstream)
    a.grad *= 10
    np.testing.assert_array_equal(b.grad, np.ones(SIZE))
    np.testing.assert_array_equal(upstream, np.ones(SIZE))


def test_tensor_copies_its_data():
    array = np.ones(3)
    t = tn.tensor(array, requires_grad=True)
    t.data -= 1
    np.testing.assert_array_equal(array, np.ones(3))


def test_pow_zero_has_zero_gradient_at_zero():
    x = tn.tensor(np.array([0.0, 2.0]), requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


def test_hook_returning_wrong_shape_is_named():
    x = tn.tensor(np.ones(3), requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match="hook .* returned a gradient of shape"):
        y.sum().backward()


def test_retain_grad_needs_requires_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tn.tensor(np.ones(3)).retain_grad()


def test_pytorch_style_transpose_permute_flatten_abs_rpow(rng):
    x = rng.standard_normal((2, 3, 4))
    t = tn.tensor(x)
    assert t.transpose(0, 2).shape == (4, 3, 2)
    assert tn.tensor(np.ones((2, 3))).transpose(0, 1).shape == (3, 2)
    assert t.permute(1, 2, 0).shape == (3, 4, 2)
    assert t.flatten().shape == (24,) and t.flatten(1).shape == (2, 12)
    np.testing.assert_allclose(abs(t).numpy(), np.abs(x))
    np.testing.assert_allclose((2 ** t).numpy(), 2 ** x)
    assert tn.gradcheck(lambda a: 3 ** a, rng.standard_normal(5))


# ---- the tape links a large computed tensor through its _Output node, not its array ----

BIG = 5000          # elements: above autograd._OUTPUT_NODE_MIN_SIZE


def test_an_intermediate_nobody_reads_is_freed_before_backward(rng):
    import weakref
    from tinynet import autograd
    assert BIG >= autograd._OUTPUT_NODE_MIN_SIZE
    x = tn.tensor(rng.standard_normal(BIG), requires_grad=True)
    h = F.tanh(x * 2.0)               # Tanh keeps its output (h's array) for its backward
    y = h + 1.0                       # Add and Sum keep nothing of their inputs
    array_h, array_y = weakref.ref(h.data), weakref.ref(y.data)
    loss = (y + 0.5).sum()
    del h, y
    assert array_h() is not None      # still needed: Tanh's backward reads it
    assert array_y() is None          # only the tape knew y: its array is gone
    loss.backward()
    t = np.tanh(2.0 * x.data)
    np.testing.assert_allclose(x.grad, (1 - t ** 2) * 2.0, rtol=1e-12)


def test_hooks_and_retain_grad_on_big_intermediates(rng):
    x = tn.tensor(rng.standard_normal(BIG), requires_grad=True)
    seen = []
    h = x * 2.0
    h.register_hook(lambda g: seen.append(g.copy()) or g * 10.0)
    kept = h * 1.0
    kept.retain_grad()
    loss = (kept * kept).sum()
    del h                             # its hook lives on in the tape
    loss.backward()
    np.testing.assert_allclose(kept.grad, 2.0 * kept.data, rtol=1e-12)
    np.testing.assert_allclose(seen[0], 2.0 * kept.data, rtol=1e-12)
    np.testing.assert_allclose(x.grad, 10.0 * 2.0 * kept.data * 2.0, rtol=1e-12)


def test_a_big_intermediate_changed_in_place_after_use_is_an_error(rng):
    x = tn.tensor(rng.standard_normal(BIG), requires_grad=True)
    h = x * 2.0
    loss = (h * h).sum()              # Mul reads h in its backward
    with tn.no_grad():
        h[0] = 5.0                    # changed after that forward
    del h                             # the stamp is on the tape's node too
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
