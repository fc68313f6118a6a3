"""Dropout, batch_norm and tn.manual_seed: values against plain definitions, gradients
against finite differences, running statistics as in PyTorch, and bad input refused
before any state changes."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet.random import get_generator


def gradcheck(fn, *inputs):
    """tn.gradcheck with an upstream-gradient seed other than the ``rng`` fixture's 0, so the
    random upstream gradient is never equal to the random input (for batch_norm, u = x makes
    dL/dx vanish and hides bugs)."""
    return tn.gradcheck(fn, *inputs, seed=1)


# ---- manual_seed and dropout -----------------------------------------------------------------


def test_manual_seed_makes_dropout_repeatable(rng):
    x = tn.tensor(rng.standard_normal((4, 50)))
    tn.manual_seed(3)
    a = F.dropout(x, 0.5).numpy()
    tn.manual_seed(3)
    b = F.dropout(x, 0.5).numpy()
    c = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_get_generator_is_the_seeded_numpy_generator():
    tn.manual_seed(7)
    first = get_generator().random(3)
    tn.manual_seed(7)
    np.testing.assert_array_equal(get_generator().random(3), first)
    assert isinstance(get_generator(), np.random.Generator)


def test_manual_seed_errors():
    with pytest.raises(TypeError, match="seed must be an int, got 1.5"):
        tn.manual_seed(1.5)
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        tn.manual_seed(-1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_zeros_or_scales_each_unit(p, dtype, rng):
    x = rng.uniform(1, 2, (64, 64)).astype(dtype)           # no zeros: dropped = exactly 0
    tn.manual_seed(0)
    y = F.dropout(tn.tensor(x), p).numpy()
    assert y.dtype == dtype
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / dtype(1 - p), rtol=1e-6)
    # 4096 Bernoulli(1 - p) draws: the kept fraction is within 5 standard deviations
    sd = np.sqrt(p * (1 - p) / x.size)
    assert abs(kept.mean() - (1 - p)) < 5 * sd


def test_dropout_backward_uses_the_same_mask(rng):
    x = tn.tensor(rng.uniform(1, 2, (5, 6)), requires_grad=True)
    tn.manual_seed(1)
    y = F.dropout(x, 0.4)
    g = rng.standard_normal((5, 6))
    y.backward(g)
    mask = y.numpy() != 0
    np.testing.assert_allclose(x.grad, g * mask / 0.6)


def test_dropout_backward_keeps_float32(rng):
    x = tn.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    F.dropout(x, 0.5).sum().backward()
    assert x.grad.dtype == np.float32


def test_dropout_gradcheck(rng):
    def fn(x):
        tn.manual_seed(5)                # the same mask at every evaluation
        return F.dropout(x, 0.3)
    assert gradcheck(fn, rng.standard_normal((4, 5)))


def test_dropout_identity_when_not_training_or_p_zero(rng):
    x = tn.tensor(rng.standard_normal((3, 3)))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x


def test_dropout_p_one_zeros_everything(rng):
    x = tn.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    y = F.dropout(x, 1.0)
    y.backward(np.ones((3, 3)))
    assert np.all(y.numpy() == 0) and np.all(x.grad == 0)


def test_dropout_errors():
    x = tn.tensor(np.ones((2, 2)))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"p must be in \[0.0, 1.0\]"):
            F.dropout(x, bad)
    with pytest.raises(TypeError, match="p must be a real number, got '0.5'"):
        F.dropout(x, "0.5")
    with pytest.raises(TypeError, match="training must be True or False, got 'yes'"):
        F.dropout(x, 0.5, training="yes")
    with pytest.raises(TypeError, match="x must have a floating dtype.*int64"):
        F.dropout(tn.tensor(np.ones(3, dtype=np.int64)))


# ---- batch_norm --------------------------------------------------------------------------------

def plain_batch_norm(x, mean, var, weight, bias, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return y * weight.reshape(shape) + bias.reshape(shape)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_training_forward_and_running_stats(shape, dtype, rng):
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    w, b = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
    rm, rv = rng.standard_normal(3).astype(dtype), rng.uniform(1, 2, 3).astype(dtype)
    rm0, rv0 = rm.copy(), rv.copy()
    y = F.batch_norm(tn.tensor(x), rm, rv, w, b, training=True, momentum=0.3)
    assert y.dtype == dtype and rm.dtype == dtype
    axes = (0,) + tuple(range(2, len(shape)))
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=axes), x64.var(axis=axes)             # biased for normalizing
    m = x.size // 3
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y.numpy(), plain_batch_norm(x64, mean, var, w, b),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(rm, 0.7 * rm0 + 0.3 * mean, rtol=tol)
    np.testing.assert_allclose(rv, 0.7 * rv0 + 0.3 * var * m / (m - 1), rtol=tol)  # unbiased


def test_batch_norm_eval_uses_running_stats_and_changes_nothing(rng):
    x = rng.standard_normal((4, 3, 2, 2))
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    rm0, rv0 = rm.copy(), rv.copy()
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    y = F.batch_norm(tn.tensor(x), rm, rv, w, b, training=False)
    np.testing.assert_allclose(y.numpy(), plain_batch_norm(x, rm, rv, w, b), rtol=1e-12)
    np.testing.assert_array_equal(rm, rm0)
    np.testing.assert_array_equal(rv, rv0)


def test_batch_norm_updates_tensor_running_stats_in_place(rng):
    x = tn.tensor(rng.standard_normal((5, 2)))
    rm, rv = tn.tensor(np.zeros(2)), tn.tensor(np.ones(2))
    data = rm.data
    F.batch_norm(x, rm, rv, training=True)
    assert rm.data is data
    np.testing.assert_allclose(rm.numpy(), 0.1 * x.numpy().mean(axis=0))


def test_batch_norm_without_running_stats_in_training(rng):
    x = rng.standard_normal((6, 2))
    y = F.batch_norm(tn.tensor(x), None, None, training=True).numpy()
    np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-12)


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 3, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(shape, training, rng):
    x = rng.standard_normal(shape)
    w, b = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)

    def fn(x, w, b):
        return F.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training)
    assert gradcheck(fn, x, w, b)
    assert gradcheck(lambda x: F.batch_norm(x, rm.copy(), rv.copy(), training=training), x)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_backward_keeps_float32(training, rng):
    x, w, b = (tn.tensor(a.astype(np.float32), requires_grad=True)
               for a in (rng.standard_normal((4, 3, 2, 2)), np.ones(3), np.zeros(3)))
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    y = F.batch_norm(x, rm, rv, w, b, training=training)
    y.backward(rng.standard_normal(y.shape).astype(np.float32))
    assert y.dtype == rm.dtype == rv.dtype == np.float32
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32


def test_batch_norm_weight_only_and_bias_only(rng):
    x = rng.standard_normal((5, 3))
    rm, rv = np.zeros(3), np.ones(3)
    assert gradcheck(lambda x, w: F.batch_norm(x, rm, rv, weight=w, training=True),
                        x, rng.standard_normal(3))
    assert gradcheck(lambda x, b: F.batch_norm(x, rm, rv, bias=b, training=True),
                        x, rng.standard_normal(3))


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(shape, training, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape) * 2 + 0.5
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    g = rng.standard_normal(shape)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training=training, momentum=0.2)
    ty.backward(torch.tensor(g))
    ax, aw, ab = (tn.tensor(a, requires_grad=True) for a in (x, w, b))
    ay = F.batch_norm(ax, rm, rv, aw, ab, training=training, momentum=0.2)
    ay.backward(g)
    for ours, theirs in [(ay.numpy(), ty), (rm, trm), (rv, trv), (ax.grad, tx.grad),
                         (aw.grad, tw.grad), (ab.grad, tb.grad)]:
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_batch_norm_errors_change_no_state(rng):
    x = tn.tensor(rng.standard_normal((4, 3)))
    rm, rv = np.zeros(3), np.ones(3)
    bad_calls = [
        (ValueError, r"running_mean must have shape \(3,\).*got \(4,\)",
         lambda: F.batch_norm(x, np.zeros(4), rv, training=True)),
        (TypeError, "running_var must have the input's dtype float64, got float32",
         lambda: F.batch_norm(x, rm, np.ones(3, np.float32), training=True)),
        (ValueError, r"weight must have shape \(3,\)",
         lambda: F.batch_norm(x, rm, rv, weight=np.ones(2), training=True)),
        (ValueError, r"bias must have shape \(3,\)",
         lambda: F.batch_norm(x, rm, rv, bias=np.ones((3, 1)), training=True)),
        (TypeError, "weight must be an array or Tensor",
         lambda: F.batch_norm(x, rm, rv, weight=[1.0, 1.0, 1.0], training=True)),
        (ValueError, "more than 1 value per channel",
         lambda: F.batch_norm(x[:1], rm, rv, training=True)),
        (ValueError, r"input must be 2-D or 3-D or 4-D.*got 1-D",
         lambda: F.batch_norm(tn.tensor(np.zeros(3)), rm, rv, training=True)),
        (TypeError, "input must have a floating dtype.*int64",
         lambda: F.batch_norm(tn.tensor(np.zeros((4, 3), np.int64)), rm, rv, training=True)),
        (ValueError, r"momentum must be in \[0.0, 1.0\], got 1.5",
         lambda: F.batch_norm(x, rm, rv, training=True, momentum=1.5)),
        (ValueError, "eps must be >= 0.0, got -1.0",
         lambda: F.batch_norm(x, rm, rv, training=True, eps=-1)),
        (TypeError, "training must be True or False",
         lambda: F.batch_norm(x, rm, rv, training=1)),
        (ValueError, "training=False normalizes with running_mean and running_var",
         lambda: F.batch_norm(x, None, None, training=False)),
        (ValueError, "both be given or both be None",
         lambda: F.batch_norm(x, rm, None, training=True)),
    ]
    for error, message, call in bad_calls:
        with pytest.raises(error, match=message):
            call()
    np.testing.assert_array_equal(rm, 0.0)
    np.testing.assert_array_equal(rv, 1.0)
