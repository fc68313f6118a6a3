"""Every op in functional/math.py and functional/shape.py: forward against numpy, backward against finite
differences (tn.gradcheck: float64, random upstream gradient), plus property tests over
random shapes, broadcasting and non-contiguous arrays."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
import tinynet.functional as F
from strategies import array_and_axis, broadcastable_pair, maybe_noncontiguous

PROPERTY = settings(max_examples=25, deadline=None)


def randn(rng, *shape):
    return rng.standard_normal(shape)


def positive(rng, *shape):
    return rng.uniform(0.5, 2.0, size=shape)


def forward(fn, *arrays):
    return fn(*[tn.tensor(a) for a in arrays]).numpy()


# ---- elementwise: forward values and gradients -------------------------------------------

BINARY = [
    (F.add, np.add), (F.sub, np.subtract), (F.mul, np.multiply), (F.div, np.divide),
    (lambda a, b: a + b, np.add), (lambda a, b: a - b, np.subtract),
    (lambda a, b: a * b, np.multiply), (lambda a, b: a / b, np.divide),
]

BROADCAST_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)),
                    ((1,), (2, 3)), ((), (2, 3))]


@pytest.mark.parametrize("op, ref", BINARY)
@pytest.mark.parametrize("shape_a, shape_b", BROADCAST_SHAPES)
def test_binary_ops_broadcast(rng, op, ref, shape_a, shape_b):
    a, b = randn(rng, *shape_a), positive(rng, *shape_b)   # b > 0: safe divisor
    np.testing.assert_allclose(forward(op, a, b), ref(a, b), rtol=1e-12)
    assert tn.gradcheck(op, a, b)


def test_broadcast_backward_reduces_to_each_input_shape(rng):
    a = tn.tensor(randn(rng, 3, 1), requires_grad=True)
    b = tn.tensor(randn(rng, 2, 1, 4), requires_grad=True)
    upstream = randn(rng, 2, 3, 4)
    (a * b).backward(upstream)
    assert a.grad.shape == (3, 1) and b.grad.shape == (2, 1, 4)
    np.testing.assert_allclose(a.grad, (upstream * b.data).sum(axis=(0, 2))[:, None])
    np.testing.assert_allclose(b.grad, (upstream * a.data).sum(axis=1, keepdims=True))


def test_python_numbers_on_either_side(rng):
    x = randn(rng, 2, 3)
    for op, ref in [(lambda t: 2 - t, lambda a: 2 - a), (lambda t: 3 / (t * t + 1), lambda a: 3 / (a * a + 1)),
                    (lambda t: 0.5 * t + 1, lambda a: 0.5 * a + 1), (lambda t: -t, lambda a: -a)]:
        np.testing.assert_allclose(forward(op, x), ref(x))
        assert tn.gradcheck(op, x)


UNARY = [
    (F.exp, np.exp, randn), (F.log, np.log, positive), (F.sqrt, np.sqrt, positive),
    (F.neg, np.negative, randn), (lambda x: F.pow(x, 3), lambda a: a ** 3, randn),
    (lambda x: x ** 0.5, np.sqrt, positive), (lambda x: x ** -2, lambda a: a ** -2.0, positive),
]


@pytest.mark.parametrize("op, ref, make", UNARY)
def test_unary_ops(rng, op, ref, make):
    x = make(rng, 3, 4)
    np.testing.assert_allclose(forward(op, x), ref(x), rtol=1e-12)
    assert tn.gradcheck(op, x)


def test_abs_away_from_zero(rng):
    x = randn(rng, 3, 4)
    x[np.abs(x) < 0.1] = 0.5
    np.testing.assert_allclose(forward(F.abs, x), np.abs(x))
    assert tn.gradcheck(F.abs, x)


def test_pow_refuses_a_tensor_exponent():
    with pytest.raises(TypeError, match="exponent"):
        F.pow(tn.tensor([1.0]), tn.tensor(2.0))


def test_maximum_away_from_ties(rng):
    a, b = randn(rng, 3, 4), randn(rng, 4)
    b = b + np.where(np.abs(a - b) < 0.05, 0.3, 0.0).mean(axis=0)   # move near-ties apart
    a = np.where(np.abs(a - b) < 0.05, a + 0.3, a)
    np.testing.assert_allclose(forward(F.maximum, a, b), np.maximum(a, b))
    assert tn.gradcheck(F.maximum, a, b)


def test_maximum_tie_splits_the_gradient_as_pytorch():
    a = tn.tensor([1.0, 2.0, np.nan], requires_grad=True)
    b = tn.tensor([1.0, 3.0, 1.0], requires_grad=True)
    F.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad, [0.5, 0.0, 1.0])    # NaN wins, as it propagates
    np.testing.assert_array_equal(b.grad, [0.5, 1.0, 0.0])


def test_where(rng):
    cond = rng.random((3, 4)) > 0.5
    a, b = randn(rng, 3, 4), randn(rng, 4)
    np.testing.assert_allclose(forward(lambda x, y: F.where(cond, x, y), a, b), np.where(cond, a, b))
    assert tn.gradcheck(lambda x, y: F.where(cond, x, y), a, b)
    assert tn.gradcheck(lambda x, y: F.where(tn.tensor(cond), x, y), a, b)


def test_clip(rng):
    x = randn(rng, 4, 5)
    x[np.abs(np.abs(x) - 0.5) < 0.05] = 0.1       # away from the clip edges
    for low, high in [(-0.5, 0.5), (None, 0.5), (-0.5, None)]:
        np.testing.assert_allclose(forward(lambda t: F.clip(t, low, high), x), np.clip(x, low, high))
        assert tn.gradcheck(lambda t: F.clip(t, low, high), x)
    t = tn.tensor(np.array([-2.0, 0.0, 2.0]), requires_grad=True)
    F.clip(t, -1, 1).sum().backward()
    np.testing.assert_array_equal(t.grad, [0.0, 1.0, 0.0])


# ---- matmul ------------------------------------------------------------------------------

MATMUL_SHAPES = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)),
                 ((2, 1, 3, 4), (3, 4, 2)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
                 ((2, 3, 4), (4,)), ((4,), (2, 4, 3))]


@pytest.mark.parametrize("shape_a, shape_b", MATMUL_SHAPES)
def test_matmul(rng, shape_a, shape_b):
    a, b = randn(rng, *shape_a), randn(rng, *shape_b)
    np.testing.assert_allclose(forward(F.matmul, a, b), a @ b, rtol=1e-12)
    assert tn.gradcheck(F.matmul, a, b)
    assert tn.gradcheck(lambda x, y: x @ y, a, b)


@pytest.mark.parametrize("shape_a, shape_b", MATMUL_SHAPES)
@pytest.mark.parametrize("side", ["a", "b"])
def test_matmul_computes_only_the_gradients_needed(rng, shape_a, shape_b, side):
    """With one operand a constant, backward returns None for it (no product computed) and
    the other gradient equals the one computed when both sides need theirs."""
    from tinynet.functional.math import MatMul
    a, b = randn(rng, *shape_a), randn(rng, *shape_b)
    g = randn(rng, *np.shape(a @ b))
    both = MatMul()
    both(tn.tensor(a, requires_grad=True), tn.tensor(b, requires_grad=True))
    want = both.backward(g)
    one = MatMul()
    one(tn.tensor(a, requires_grad=side == "a"), tn.tensor(b, requires_grad=side == "b"))
    got = one.backward(g)
    k = "ab".index(side)
    assert got[1 - k] is None
    np.testing.assert_allclose(got[k], want[k], rtol=1e-12)
    assert got[k].shape == (a if side == "a" else b).shape


def test_matmul_hand_computed():
    a = tn.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = tn.tensor([[5.0, 6.0], [7.0, 8.0]], requires_grad=True)
    c = a @ b
    np.testing.assert_array_equal(c.numpy(), [[19.0, 22.0], [43.0, 50.0]])
    g = np.array([[1.0, 0.0], [0.0, 2.0]])
    c.backward(g)
    np.testing.assert_array_equal(a.grad, g @ b.data.T)     # dL/dA = G B^T
    np.testing.assert_array_equal(b.grad, a.data.T @ g)     # dL/dB = A^T G


def test_linear_matches_its_definition(rng):
    x, w, b = randn(rng, 5, 3), randn(rng, 4, 3), randn(rng, 4)
    np.testing.assert_allclose(forward(F.linear, x, w, b), x @ w.T + b)
    assert tn.gradcheck(F.linear, x, w, b)
    assert tn.gradcheck(lambda x, w: F.linear(x, w), randn(rng, 2, 5, 3), w)
    with pytest.raises(ValueError, match="in_features=3"):
        F.linear(tn.tensor(np.ones((2, 4))), tn.tensor(w))


# ---- reductions --------------------------------------------------------------------------

AXES = [None, 0, 1, -1, (0, 2), (0, 1, 2)]


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("op, ref", [(F.sum, np.sum), (F.mean, np.mean), (F.max, np.max)])
def test_reductions(rng, op, ref, axis, keepdims):
    x = randn(rng, 2, 3, 4)         # continuous random values: no ties for max
    fn = lambda t: op(t, axis=axis, keepdims=keepdims)
    out = forward(fn, x)
    expected = ref(x, axis=axis, keepdims=keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert tn.gradcheck(fn, x)


def test_reduction_methods(rng):
    x = randn(rng, 3, 4)
    t = tn.tensor(x)
    np.testing.assert_allclose(t.sum(axis=1).numpy(), x.sum(axis=1))
    np.testing.assert_allclose(t.mean(0, True).numpy(), x.mean(0, keepdims=True))
    np.testing.assert_allclose(t.max().numpy(), x.max())


def test_max_shares_the_gradient_of_a_tie():
    x = tn.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    F.max(x, axis=1).backward(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(x.grad, [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])


def test_reduction_axis_out_of_range():
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        F.sum(tn.tensor(np.ones((2, 3))), axis=2)


# ---- shape ops ---------------------------------------------------------------------------

def test_reshape_flatten_transpose(rng):
    x = randn(rng, 2, 3, 4)
    cases = [
        (lambda t: F.reshape(t, (4, 6)), x.reshape(4, 6)),
        (lambda t: t.reshape(-1, 2), x.reshape(-1, 2)),
        (lambda t: t.reshape(24), x.reshape(24)),
        (lambda t: F.flatten(t), x.reshape(2, 12)),
        (lambda t: F.transpose(t), x.transpose()),
        (lambda t: F.transpose(t, (1, 2, 0)), x.transpose(1, 2, 0)),
        (lambda t: t.permute(2, 0, 1), x.transpose(2, 0, 1)),
        (lambda t: t.transpose(0, 2), x.swapaxes(0, 2)),
        (lambda t: F.transpose(t, (-1, 0, 1)), x.transpose(2, 0, 1)),
        (lambda t: t.T, x.T),
    ]
    for fn, expected in cases:
        np.testing.assert_array_equal(forward(fn, x), expected)
        assert tn.gradcheck(fn, x)


@pytest.mark.parametrize("index", [
    1, -1, slice(1, 3), (slice(None), 2), (Ellipsis, slice(0, 4, 2)), (slice(None), [3, 1]),
    np.array([2, 0, 2, 2]),                         # repeats must accumulate
    (np.array([0, 1, 1]), np.array([3, 3, 3])),     # the same element three times
    np.array([True, False, True]),
], ids=str)
def test_getitem(rng, index):
    x = randn(rng, 3, 4)
    np.testing.assert_array_equal(forward(lambda t: t[index], x), x[index])
    assert tn.gradcheck(lambda t: t[index], x)


def test_getitem_repeated_index_accumulates():
    x = tn.tensor(np.arange(4.0), requires_grad=True)
    F.getitem(x, np.array([1, 1, 3, 1])).backward(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [0.0, 7.0, 0.0, 3.0])
    y = tn.tensor(np.arange(4.0), requires_grad=True)
    y[tn.tensor(np.array([0, 0]))].sum().backward()        # a Tensor index works too
    np.testing.assert_array_equal(y.grad, [2.0, 0.0, 0.0, 0.0])


@st.composite
def mixed_indices(draw):
    """An index for a (3, 4, 5, 2) array mixing integers, slices, index arrays, masks,
    None and Ellipsis: the combinations where NumPy and PyTorch place axes differently."""
    shape = (3, 4, 5, 2)
    parts, axis = [], 0
    ellipsis_used = False
    while axis < len(shape):
        kind = draw(st.sampled_from(["int", "slice", "array", "mask", "none", "ellipsis"]))
        size = shape[axis]
        if kind == "int":
            parts.append(draw(st.integers(-size, size - 1)))
        elif kind == "slice":
            parts.append(slice(draw(st.integers(0, size - 1)), None, draw(st.integers(1, 2))))
        elif kind == "array":                   # all index arrays share one shape (3,)
            parts.append(np.array(draw(st.lists(st.integers(-size, size - 1), min_size=3,
                                                max_size=3))))
        elif kind == "mask":                    # a mask with three True entries
            mask = np.zeros(size, dtype=bool)
            mask[draw(st.permutations(range(size)))[:3]] = True
            if size < 3:
                continue
            parts.append(mask)
        elif kind == "none":
            parts.append(None)
            continue
        elif not ellipsis_used:
            ellipsis_used = True
            parts.append(Ellipsis)
            axis = len(shape) - draw(st.integers(0, len(shape) - axis - 1))
            continue
        else:
            continue
        axis += 1
        if draw(st.booleans()) and axis >= 2 and not ellipsis_used:   # stop early
            break
    return tuple(parts)


@settings(max_examples=60, deadline=None)
@given(mixed_indices())
def test_getitem_places_axes_as_pytorch(index):
    # NumPy: a[0, :, [0, 1, 2]] puts the list's axis first; PyTorch keeps it in place
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 2))
    upstream_shape = torch.tensor(x)[_torch_index(torch, index)].shape
    grad = rng.standard_normal(tuple(upstream_shape))
    xt = torch.tensor(x, requires_grad=True)
    yt = xt[_torch_index(torch, index)]
    yt.backward(torch.tensor(grad))
    xn = tn.tensor(x, requires_grad=True)
    y = xn[index]
    assert y.shape == tuple(yt.shape)
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    y.backward(grad)
    np.testing.assert_allclose(xn.grad, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def _torch_index(torch, index):
    return tuple(torch.tensor(i) if isinstance(i, np.ndarray) else i for i in index)


def test_getitem_integer_slice_array_as_pytorch():
    # the example, by hand: a[0, :, [0, 1, 2]] of a (2, 3, 3) array is a[0][:, [0, 1, 2]]
    a = np.arange(18.0).reshape(2, 3, 3)
    np.testing.assert_array_equal(tn.tensor(a)[0, :, np.array([0, 1, 2])].numpy(), a[0])
    np.testing.assert_array_equal(tn.tensor(a)[0, :, [2, 0]].numpy(), a[0][:, [2, 0]])


def test_pad(rng):
    x = randn(rng, 2, 3, 4)
    width = ((0, 0), (1, 2), (2, 1))
    np.testing.assert_array_equal(forward(lambda t: F.pad(t, width), x), np.pad(x, width))
    np.testing.assert_array_equal(forward(lambda t: F.pad(t, width, value=-1.5), x),
                                  np.pad(x, width, constant_values=-1.5))
    assert tn.gradcheck(lambda t: F.pad(t, width), x)
    with pytest.raises(ValueError, match="one \\(before, after\\) pair per axis"):
        F.pad(tn.tensor(x), ((1, 1),))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_and_stack(rng, axis):
    a, b, c = randn(rng, 2, 3), randn(rng, 2, 3), randn(rng, 2, 3)
    np.testing.assert_array_equal(forward(lambda *t: F.concat(t, axis=axis), a, b, c),
                                  np.concatenate([a, b, c], axis=axis))
    np.testing.assert_array_equal(forward(lambda *t: F.stack(t, axis=axis), a, b, c),
                                  np.stack([a, b, c], axis=axis))
    assert tn.gradcheck(lambda *t: F.concat(t, axis=axis), a, b, c)
    assert tn.gradcheck(lambda *t: F.stack(t, axis=axis), a, b, c)


def test_concat_of_unequal_sizes(rng):
    a, b = randn(rng, 2, 3), randn(rng, 2, 5)
    assert tn.gradcheck(lambda x, y: F.concat([x, y], axis=1), a, b)


def test_a_small_network_end_to_end(rng):
    # Several ops composed, the same weight used twice: the whole graph is checked at once.
    x, w1, w2 = randn(rng, 4, 3), randn(rng, 3, 5), randn(rng, 5, 2)

    def net(x, w1, w2):
        h = (x @ w1).exp() / ((x @ w1).exp() + 1.0)          # sigmoid by hand
        return ((h @ w2) ** 2).mean(axis=0) + F.sum(w1 * w1)

    assert tn.gradcheck(net, x, w1, w2)


# ---- property tests (hypothesis) ---------------------------------------------------------

@PROPERTY
@given(broadcastable_pair(), st.sampled_from(["add", "sub", "mul", "div", "maximum"]))
def test_property_binary_broadcasting(pair, name):
    a, b = pair
    if name == "div":
        b = np.abs(b) + 0.5
    if name == "maximum":
        b = b + 0.0137                   # ties have measure zero; this makes them unlikely
        if np.any(np.abs(np.broadcast_to(a, np.broadcast_shapes(a.shape, b.shape))
                         - np.broadcast_to(b, np.broadcast_shapes(a.shape, b.shape))) < 1e-3):
            return
    op, ref = getattr(F, name), getattr(np, {"div": "divide", "sub": "subtract",
                                             "mul": "multiply"}.get(name, name))
    ta = tn.tensor(a, requires_grad=True)
    tb = tn.tensor(b, requires_grad=True)
    out = op(ta, tb)
    np.testing.assert_allclose(out.numpy(), ref(a, b), rtol=1e-12)
    upstream = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(upstream)
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape
    if name == "add":                    # the backward of broadcasting is a sum
        np.testing.assert_allclose(ta.grad, F.unbroadcast(upstream, a.shape))
        np.testing.assert_allclose(tb.grad, F.unbroadcast(upstream, b.shape))
    assert tn.gradcheck(op, a, b)


@PROPERTY
@given(maybe_noncontiguous(), st.sampled_from(["exp", "neg", "square", "sigmoid_by_hand"]))
def test_property_unary_on_noncontiguous_arrays(x, name):
    fns = {"exp": (F.exp, np.exp), "neg": (F.neg, np.negative),
           "square": (lambda t: t * t, np.square),
           "sigmoid_by_hand": (lambda t: 1 / (1 + F.exp(-t)), lambda a: 1 / (1 + np.exp(-a)))}
    fn, ref = fns[name]
    np.testing.assert_allclose(forward(fn, x), ref(x), rtol=1e-12)
    assert tn.gradcheck(fn, x)


@PROPERTY
@given(array_and_axis(), st.booleans(), st.sampled_from(["sum", "mean", "max"]))
def test_property_reductions(case, keepdims, name):
    x, axis = case
    if name == "max":                    # keep apart values that could tie
        x = x + np.arange(x.size).reshape(x.shape) * 1e-2
    op, ref = getattr(F, name), getattr(np, name)
    fn = lambda t: op(t, axis=axis, keepdims=keepdims)
    out = forward(fn, x)
    np.testing.assert_allclose(out, ref(x, axis=axis, keepdims=keepdims), rtol=1e-12)
    t = tn.tensor(x, requires_grad=True)
    y = fn(t)
    y.backward(np.ones(y.shape))
    assert t.grad.shape == x.shape
    if name == "sum":                    # every element contributes once
        np.testing.assert_allclose(t.grad, np.ones(x.shape))
    if name == "mean":
        np.testing.assert_allclose(t.grad.sum(), np.ones(y.shape).sum())
    assert tn.gradcheck(fn, x)


@PROPERTY
@given(maybe_noncontiguous(), st.data())
def test_property_transpose_and_reshape(x, data):
    perm = tuple(data.draw(st.permutations(range(x.ndim))))
    np.testing.assert_array_equal(forward(lambda t: F.transpose(t, perm), x), x.transpose(perm))
    assert tn.gradcheck(lambda t: F.transpose(t, perm).reshape(-1), x)


# ---- number ** tensor ---------------------------------------------------------------------

@pytest.mark.parametrize("base", [-2.0, 0.0, 0.5, 2.0, np.e, np.float64(3.0)])
def test_number_to_the_tensor_as_pytorch(base, rng):
    # once exp(x ln b): NaN for a negative base, 0 ** 0 = NaN
    torch = pytest.importorskip("torch")
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0])
    upstream = rng.standard_normal(x.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = base ** xt
    yt.backward(torch.tensor(upstream))
    xn = tn.tensor(x, requires_grad=True)
    y = base ** xn
    y.backward(upstream)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(xn.grad, xt.grad.numpy(), rtol=1e-14)
    assert (base ** tn.tensor(x.astype(np.float32))).dtype == np.float32


def test_number_to_the_tensor_by_hand():
    np.testing.assert_array_equal(((-2.0) ** tn.tensor([0.0, 1.0, 2.0, 3.0])).numpy(),
                                  [1, -2, 4, -8])
    np.testing.assert_array_equal((0.0 ** tn.tensor([0.0, 1.0])).numpy(), [1, 0])
    x = np.array([0.3, -1.2, 2.0])
    assert tn.gradcheck(lambda t: 2.5 ** t, x)
    base = np.array([[0.5], [3.0]])                       # an array base broadcasts
    assert tn.gradcheck(lambda t: base ** t, x)
