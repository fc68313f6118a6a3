"""Losses: values against plain definitions, gradients against finite differences
(float64, random upstream gradient), dtype kept, stability, PyTorch where installed, and
clear errors for bad labels, shapes and dtypes."""
import warnings

import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F


def gradcheck(fn, *inputs):
    """tn.gradcheck with an upstream-gradient seed other than the ``rng`` fixture's 0, so the
    random upstream gradient is never equal to the random input (for batch_norm, u = x makes
    dL/dx vanish and hides bugs)."""
    return tn.gradcheck(fn, *inputs, seed=1)


REDUCTIONS = ["mean", "sum", "none"]


def plain_log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def reduce(losses, reduction):
    return {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduction]


@pytest.fixture
def batch(rng):
    logits = rng.standard_normal((5, 4)) * 2
    labels = np.array([0, 3, 1, 3, 2])
    return logits, labels


# ---- cross_entropy and nll_loss --------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_matches_definition(batch, reduction):
    logits, labels = batch
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = reduce(-np.log(p[np.arange(5), labels]), reduction)
    got = F.cross_entropy(tn.tensor(logits), labels, reduction=reduction)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    assert got.shape == np.shape(expected)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_matches_definition_and_composes(batch, reduction):
    logits, labels = batch
    lp = plain_log_softmax(logits)
    got = F.nll_loss(tn.tensor(lp), labels, reduction=reduction)
    np.testing.assert_allclose(got.numpy(), reduce(-lp[np.arange(5), labels], reduction))
    composed = F.nll_loss(F.log_softmax(tn.tensor(logits), axis=1), labels, reduction=reduction)
    fused = F.cross_entropy(tn.tensor(logits), labels, reduction=reduction)
    np.testing.assert_allclose(fused.numpy(), composed.numpy(), rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_and_nll_gradcheck(batch, reduction):
    logits, labels = batch
    assert gradcheck(lambda x: F.cross_entropy(x, labels, reduction=reduction), logits)
    assert gradcheck(lambda x: F.nll_loss(x, labels, reduction=reduction),
                        plain_log_softmax(logits))


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n(batch):
    logits, labels = batch
    x = tn.tensor(logits, requires_grad=True)
    F.cross_entropy(x, tn.tensor(labels)).backward()
    p = np.exp(plain_log_softmax(logits))
    onehot = np.eye(4)[labels]
    np.testing.assert_allclose(x.grad, (p - onehot) / 5, rtol=1e-12, atol=1e-15)


def test_cross_entropy_backward_twice_with_retain_graph(batch):
    logits, labels = batch
    x = tn.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, labels)
    loss.backward(retain_graph=True)
    first = x.grad.copy()
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_class_losses_keep_float32(fn, reduction, batch):
    logits, labels = batch
    x = tn.tensor(logits.astype(np.float32), requires_grad=True)
    loss = fn(x, labels, reduction=reduction)
    assert loss.dtype == np.float32
    loss.backward(np.ones(loss.shape, np.float32))
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_at_large_logits(dtype):
    logits = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 0.0]], dtype=dtype)
    x = tn.tensor(logits, requires_grad=True)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        loss = F.cross_entropy(x, [2, 1], reduction="none")
        loss.sum().backward()
    np.testing.assert_allclose(loss.numpy(), [2000.0, 0.0])
    np.testing.assert_allclose(x.grad, [[1, 0, -1], [0, 0, 0]], atol=1e-7)


def test_labels_as_list_tensor_and_unsigned(batch):
    logits, labels = batch
    expected = F.cross_entropy(tn.tensor(logits), labels).item()
    for given in (labels.tolist(), tn.tensor(labels), labels.astype(np.uint8),
                  labels.astype(np.int32)):
        assert F.cross_entropy(tn.tensor(logits), given).item() == pytest.approx(expected)


# ---- mse_loss and binary_cross_entropy_with_logits ------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_value_and_gradcheck(rng, reduction):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    got = F.mse_loss(tn.tensor(a), tn.tensor(b), reduction=reduction)
    np.testing.assert_allclose(got.numpy(), reduce((a - b) ** 2, reduction), rtol=1e-12)
    assert gradcheck(lambda x, y: F.mse_loss(x, y, reduction=reduction), a, b)


def plain_bce(x, t):
    s = 1 / (1 + np.exp(-x))
    return -(t * np.log(s) + (1 - t) * np.log(1 - s))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_value_and_gradcheck(rng, reduction):
    x, t = rng.standard_normal((3, 4)) * 3, rng.uniform(0, 1, (3, 4))
    got = F.binary_cross_entropy_with_logits(tn.tensor(x), tn.tensor(t), reduction=reduction)
    np.testing.assert_allclose(got.numpy(), reduce(plain_bce(x, t), reduction), rtol=1e-10)
    assert gradcheck(
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction), x, t)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_is_stable_at_large_logits(dtype):
    x = tn.tensor(np.array([1000.0, 1000.0, -1000.0, -1000.0], dtype=dtype), requires_grad=True)
    t = np.array([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        loss.backward(np.ones(4, dtype=dtype))
    assert loss.dtype == dtype and x.grad.dtype == dtype
    np.testing.assert_allclose(loss.numpy(), [0.0, 1000.0, 0.0, 1000.0])
    np.testing.assert_allclose(x.grad, [0.0, 1.0, 0.0, -1.0])      # sigma(x) - t


@pytest.mark.parametrize("fn", [F.mse_loss, F.binary_cross_entropy_with_logits])
def test_regression_losses_keep_float32(fn, rng):
    x = tn.tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    loss = fn(x, rng.uniform(0, 1, (2, 3)))      # a float64 plain target takes x's dtype
    assert loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32


# ---- PyTorch -----------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_losses_match_torch(rng, batch, reduction):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    logits, labels = batch
    lp = plain_log_softmax(logits)
    x, t = rng.standard_normal((3, 4)), rng.uniform(0, 1, (3, 4))
    cases = [
        (lambda a: F.cross_entropy(a, labels, reduction=reduction),
         lambda a: tf.cross_entropy(a, torch.tensor(labels), reduction=reduction), logits),
        (lambda a: F.nll_loss(a, labels, reduction=reduction),
         lambda a: tf.nll_loss(a, torch.tensor(labels), reduction=reduction), lp),
        (lambda a: F.mse_loss(a, t, reduction=reduction),
         lambda a: tf.mse_loss(a, torch.tensor(t), reduction=reduction), x),
        (lambda a: F.binary_cross_entropy_with_logits(a, t, reduction=reduction),
         lambda a: tf.binary_cross_entropy_with_logits(a, torch.tensor(t), reduction=reduction),
         x),
    ]
    for ours, theirs, data in cases:
        a, b = tn.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
        ya, yb = ours(a), theirs(b)
        g = rng.standard_normal(ya.shape)
        ya.backward(g)
        yb.backward(torch.tensor(g))
        np.testing.assert_allclose(ya.numpy(), yb.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-12, atol=1e-14)


# ---- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss])
def test_label_errors(fn, batch):
    logits, labels = batch
    x = tn.tensor(logits)
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\] for 4 "
                                         r"classes, got 4"):
        fn(x, [0, 1, 4, 2, 1])
    with pytest.raises(ValueError, match="for 4 classes, got -1"):
        fn(x, [0, 1, -1, 2, 1])
    with pytest.raises(ValueError, match=r"labels must have shape \(5,\).*got shape \(4,\)"):
        fn(x, labels[:4])
    with pytest.raises(ValueError, match=r"labels must have shape \(5,\).*got shape \(5, 1\)"):
        fn(x, labels[:, None])
    with pytest.raises(TypeError, match="labels must be integer class indices.*float64"):
        fn(x, labels.astype(np.float64))
    with pytest.raises(TypeError, match="labels must be integer class indices.*bool"):
        fn(x, labels > 1)
    with pytest.raises(TypeError, match="labels must be integer class indices.*float32"):
        fn(x, tn.tensor(labels.astype(np.float32)))


@pytest.mark.parametrize("fn,name", [(F.cross_entropy, "logits"), (F.nll_loss, "log_probs")])
def test_score_errors(fn, name, batch):
    logits, labels = batch
    with pytest.raises(ValueError, match=rf"{name} must be 2-D \(N, C\).*got 1-D"):
        fn(tn.tensor(logits[0]), labels[:1])
    with pytest.raises(ValueError, match=rf"{name} must be 2-D.*got 3-D with shape \(5, 4, 1\)"):
        fn(tn.tensor(logits[..., None]), labels)
    with pytest.raises(TypeError, match=rf"{name} must have a floating dtype.*int64"):
        fn(tn.tensor(np.ones((5, 4), dtype=np.int64)), labels)
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        fn(tn.tensor(logits), labels, reduction="avg")


@pytest.mark.parametrize("fn,a,b", [(F.mse_loss, "input", "target"),
                                    (F.binary_cross_entropy_with_logits, "logits", "targets")])
def test_target_errors(fn, a, b, rng):
    x = tn.tensor(rng.standard_normal((3, 4)))
    with pytest.raises(ValueError, match=rf"{b} must have the shape of {a} \(3, 4\), got \(4, 3\)"):
        fn(x, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=rf"{b} must have the shape of {a}.*got \(4,\)"):
        fn(x, np.zeros(4))                      # no silent broadcasting
    with pytest.raises(TypeError, match=rf"{b} must have the dtype of {a} \(float64\), got float32"):
        fn(x, tn.tensor(np.zeros((3, 4), np.float32)))
    with pytest.raises(TypeError, match=rf"{a} must have a floating dtype.*int64"):
        fn(tn.tensor(np.zeros((3, 4), np.int64)), np.zeros((3, 4)))
    with pytest.raises(TypeError, match=rf"{b} must be a numeric array"):
        fn(x, np.full((3, 4), None, dtype=object))
    with pytest.raises(ValueError, match="reduction must be"):
        fn(x, np.zeros((3, 4)), reduction=None)
