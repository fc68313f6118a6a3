"""Activations: values against their plain definitions, gradients against finite
differences (float64, random upstream gradient), dtype kept, stability, bad input."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinynet as tn
import tinynet.functional as F


def gradcheck(fn, *inputs):
    """tn.gradcheck with an upstream-gradient seed other than the ``rng`` fixture's 0, so the
    random upstream gradient is never equal to the random input (for batch_norm, u = x makes
    dL/dx vanish and hides bugs)."""
    return tn.gradcheck(fn, *inputs, seed=1)


def away_from(rng, shape, kinks, margin=0.1, scale=3.0):
    """Random float64 values at least ``margin`` from every kink (gradcheck needs that)."""
    x = rng.uniform(-scale, scale, size=shape)
    for k in kinks:
        near = np.abs(x - k) < margin
        x[near] = k + np.where(x[near] >= k, margin, -margin) * 2
    return x


# plain definitions, written the obvious way (float64)
DEFINITIONS = {
    "relu": (F.relu, lambda x: np.where(x > 0, x, 0.0), [0.0]),
    "leaky_relu": (F.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), [0.0]),
    "relu6": (F.relu6, lambda x: np.minimum(np.maximum(x, 0.0), 6.0), [0.0, 6.0]),
    "sigmoid": (F.sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x)), []),
    "tanh": (F.tanh, np.tanh, []),
}


@pytest.mark.parametrize("name", DEFINITIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_forward_matches_definition_and_keeps_dtype(name, dtype, rng):
    fn, definition, kinks = DEFINITIONS[name]
    x = away_from(rng, (4, 5), kinks, scale=8.0)
    y = fn(tn.tensor(x.astype(dtype)))
    assert y.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y.numpy(), definition(x.astype(dtype).astype(np.float64)),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("name", DEFINITIONS)
def test_elementwise_gradcheck(name, rng):
    fn, _, kinks = DEFINITIONS[name]
    x = away_from(rng, (3, 4), kinks, scale=8.0)
    assert gradcheck(fn, x)


@pytest.mark.parametrize("name", DEFINITIONS)
def test_backward_keeps_dtype(name, rng):
    fn, _, kinks = DEFINITIONS[name]
    x = tn.tensor(away_from(rng, (2, 3), kinks).astype(np.float32), requires_grad=True)
    fn(x).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.shape == x.shape


def test_leaky_relu_slope_and_gradcheck(rng):
    x = away_from(rng, (3, 4), [0.0])
    y = F.leaky_relu(tn.tensor(x), negative_slope=0.2).numpy()
    np.testing.assert_allclose(y, np.where(x > 0, x, 0.2 * x))
    assert gradcheck(lambda t: F.leaky_relu(t, 0.2), x)


def test_relu_family_slopes_at_known_points():
    x = tn.tensor(np.array([-2.0, 0.5, 3.0, 7.0]), requires_grad=True)
    F.relu6(x).backward(np.ones(4))
    np.testing.assert_array_equal(x.grad, [0, 1, 1, 0])
    x.grad = None
    F.relu(x).backward(np.ones(4))
    np.testing.assert_array_equal(x.grad, [0, 1, 1, 1])


def test_sigmoid_is_the_logistic_with_the_right_sign():
    # the lecture writes 1/(1+exp(eta)); the logistic is 1/(1+exp(-eta)): increasing
    y = F.sigmoid(tn.tensor(np.array([-2.0, 0.0, 2.0]))).numpy()
    np.testing.assert_allclose(y, [1 / (1 + np.exp(2)), 0.5, 1 / (1 + np.exp(-2))])
    assert y[2] > 0.5 > y[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_at_large_inputs(dtype):
    x = tn.tensor(np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0], dtype=dtype),
                  requires_grad=True)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        y = F.sigmoid(x)
        y.backward(np.ones(5, dtype=dtype))
    assert y.dtype == dtype
    values = y.numpy()
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(x.grad))
    assert values[0] == 0.0 and values[-1] == 1.0 and values[2] == 0.5
    assert 0 < values[1] < 1e-40 if dtype == np.float64 else values[1] >= 0
    np.testing.assert_array_equal(x.grad[[0, -1]], [0.0, 0.0])


def test_tanh_values_and_gradient_formula(rng):
    x = rng.standard_normal(6)
    t = tn.tensor(x, requires_grad=True)
    F.tanh(t).backward(np.ones(6))
    np.testing.assert_allclose(t.grad, 1 - np.tanh(x) ** 2)


# ---- softmax / log_softmax ---------------------------------------------------------------

def plain_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_and_log_softmax_forward(axis, dtype, rng):
    x = rng.standard_normal((3, 4, 2)) * 3
    s = F.softmax(tn.tensor(x.astype(dtype)), axis=axis)
    ls = F.log_softmax(tn.tensor(x.astype(dtype)), axis=axis)
    assert s.dtype == dtype and ls.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(s.numpy(), plain_softmax(x, axis), rtol=tol, atol=tol)
    np.testing.assert_allclose(ls.numpy(), np.log(plain_softmax(x, axis)), rtol=tol, atol=tol)
    np.testing.assert_allclose(s.numpy().sum(axis=axis), 1.0, rtol=tol)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_gradcheck(axis, rng):
    x = rng.standard_normal((3, 4, 2))
    assert gradcheck(lambda t: F.softmax(t, axis=axis), x)
    assert gradcheck(lambda t: F.log_softmax(t, axis=axis), x)


def test_softmax_gradcheck_large_input_uses_directions(rng):
    x = rng.standard_normal((8, 12))          # > 64 elements: random-direction check
    assert gradcheck(F.softmax, x)
    assert gradcheck(F.log_softmax, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_is_stable_at_large_logits(dtype):
    x = tn.tensor(np.array([[1000.0, 0.0, -1000.0], [5000.0, 5000.0, 0.0]], dtype=dtype),
                  requires_grad=True)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        ls = F.log_softmax(x, axis=1)
        s = F.softmax(x, axis=1)
        ls.backward(np.ones((2, 3), dtype=dtype))
    np.testing.assert_allclose(ls.numpy(), [[0.0, -1000.0, -2000.0],
                                            [-np.log(2), -np.log(2), -5000 - np.log(2)]],
                               rtol=1e-6)
    np.testing.assert_allclose(s.numpy(), [[1, 0, 0], [0.5, 0.5, 0]], atol=1e-7)
    assert np.all(np.isfinite(x.grad))


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                  elements=st.floats(-50, 50)),
       st.floats(-100, 100))
def test_softmax_properties(x, shift):
    """Rows sum to 1, entries in [0, 1], and adding a constant to a row changes nothing."""
    s = F.softmax(tn.tensor(x)).numpy()
    assert np.all((s >= 0) & (s <= 1))
    np.testing.assert_allclose(s.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(F.softmax(tn.tensor(x + shift)).numpy(), s, atol=1e-12)
    np.testing.assert_allclose(np.exp(F.log_softmax(tn.tensor(x)).numpy()), s, atol=1e-12)


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = away_from(rng, (4, 5), [0.0, 6.0], scale=8.0)
    g = rng.standard_normal((4, 5))
    pairs = [(F.relu, torch.relu), (F.relu6, torch.nn.functional.relu6),
             (lambda t: F.leaky_relu(t, 0.1), lambda t: torch.nn.functional.leaky_relu(t, 0.1)),
             (F.sigmoid, torch.sigmoid), (F.tanh, torch.tanh),
             (lambda t: F.softmax(t, 0), lambda t: torch.softmax(t, 0)),
             (F.log_softmax, lambda t: torch.log_softmax(t, -1))]
    for ours, theirs in pairs:
        a = tn.tensor(x, requires_grad=True)
        b = torch.tensor(x, requires_grad=True)
        ya, yb = ours(a), theirs(b)
        ya.backward(g)
        yb.backward(torch.tensor(g))
        np.testing.assert_allclose(ya.numpy(), yb.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [F.relu, F.leaky_relu, F.relu6, F.sigmoid, F.tanh, F.softmax,
                                F.log_softmax])
def test_integer_and_object_input_is_refused(fn):
    with pytest.raises(TypeError, match="x must have a floating dtype.*int64"):
        fn(tn.tensor(np.arange(4)))
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        fn(np.arange(4))
    with pytest.raises(TypeError, match="x must be a floating tensor"):
        fn(np.array([object(), 1.0], dtype=object))


def test_plain_arrays_are_accepted_and_keep_dtype():
    y = F.sigmoid(np.zeros(3, dtype=np.float64))
    assert y.dtype == np.float64 and not y.requires_grad


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_bad_axis(fn):
    x = tn.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"axis must be in \[-2, 1\].*got 2"):
        fn(x, axis=2)
    with pytest.raises(TypeError, match="axis must be an int, got 1.5"):
        fn(x, axis=1.5)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        fn(tn.tensor(np.float64(1.0)))


def test_bad_negative_slope():
    with pytest.raises(TypeError, match="negative_slope must be a real number, got 'a'"):
        F.leaky_relu(tn.tensor(np.zeros(2)), negative_slope="a")
