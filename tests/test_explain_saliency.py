"""Vanilla gradient, gradient x input, integrated gradients, guided backprop: gradients
against finite differences in float64, known answers, and bad input."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import nn

import explain
from explain import _common


def smooth_cnn(seed=0, classes=3):
    """A small CNN with smooth activations (no kinks for finite differences)."""
    tn.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2),
                         nn.Conv2d(4, 5, 3), nn.Tanh(), nn.Flatten(), nn.Linear(5 * 2 * 2, classes))


def class_score(model, x, target):
    with tn.no_grad():
        out = model(tn.tensor(x)).numpy()
    return out[np.arange(len(x)), target]


def finite_difference(model, x, target, direction, eps=1e-6):
    """d/dt sum_i S_c(x_i + t d_i) at t = 0, by central differences."""
    plus = class_score(model, x + eps * direction, target).sum()
    minus = class_score(model, x - eps * direction, target).sum()
    return (plus - minus) / (2 * eps)


def test_vanilla_gradient_matches_finite_differences_float64(rng):
    model = smooth_cnn().double()
    x = rng.standard_normal((3, 2, 8, 8))
    target = np.array([0, 2, 1])
    grad = explain.vanilla_gradient(model, x, target)
    assert grad.shape == x.shape and grad.dtype == np.float64
    for _ in range(4):
        d = rng.standard_normal(x.shape)
        assert np.isclose(np.sum(grad * d), finite_difference(model, x, target, d),
                          rtol=1e-6, atol=1e-8)
    # one pixel at a time too, for the first image
    for idx in [(0, 0, 0), (1, 3, 5), (0, 7, 7)]:
        d = np.zeros_like(x)
        d[(0,) + idx] = 1
        assert np.isclose(grad[(0,) + idx], finite_difference(model, x, target, d), atol=1e-7)


def test_input_gradient_of_the_model_passes_tn_gradcheck(rng):
    model = smooth_cnn().double()
    x = rng.standard_normal((2, 2, 8, 8))
    tn.gradcheck(model, x, check_params=False)


def test_other_classes_are_set_to_zero(rng):
    """The gradient of S_c alone: the sum of per-class gradients equals the gradient of sum S."""
    model = smooth_cnn().double()
    x = rng.standard_normal((2, 2, 8, 8))
    parts = sum(explain.vanilla_gradient(model, x, c) for c in range(3))
    xt = tn.tensor(x, requires_grad=True)
    model(xt).sum().backward()
    assert np.allclose(parts, xt.grad)
    assert not np.allclose(explain.vanilla_gradient(model, x, 0), xt.grad)


def test_linear_model_gradient_is_the_weight_row(rng):
    model = nn.Linear(6, 4)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    target = np.array([0, 1, 2, 3, 1])
    grad = explain.vanilla_gradient(model, x, target)
    assert np.allclose(grad, model.weight.numpy()[target], atol=1e-6)
    assert np.allclose(explain.vanilla_gradient(model, x, 2, abs=True),
                       np.abs(model.weight.numpy()[[2] * 5]))
    assert np.allclose(explain.gradient_x_input(model, x, target), x * model.weight.numpy()[target],
                       atol=1e-6)


def test_explaining_leaves_parameter_gradients_untouched(rng):
    model = smooth_cnn()
    x = rng.standard_normal((2, 2, 8, 8)).astype(np.float32)
    explain.vanilla_gradient(model, x, 1)
    explain.grad_cam(model, x, 1, layer="3")
    with pytest.warns(RuntimeWarning, match="no nn.ReLU"):   # Tanh only: plain gradient
        explain.guided_grad_cam(model, x, 1, layer="3")
    explain.integrated_gradients(model, x, 1, steps=4)
    explain.smoothgrad(model, x, 1, n_samples=3, progress=False)
    from explain.tcav import class_gradients
    class_gradients(model, "3", x, 1)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_batching_gives_the_same_gradient(rng):
    model = smooth_cnn().double()
    x = rng.standard_normal((5, 2, 8, 8))
    assert np.allclose(explain.vanilla_gradient(model, x, 1),
                       explain.vanilla_gradient(model, x, 1, batch_size=2))


def test_views_channel_max_and_signs(rng):
    a = rng.standard_normal((2, 3, 4, 4))
    assert np.allclose(explain.channel_max(a), np.abs(a).max(axis=1))
    pos, neg = explain.split_signs(a)
    assert np.all(pos >= 0) and np.all(neg >= 0) and np.allclose(pos - neg, a)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        explain.channel_max(a[0])


def test_integrated_gradients_completeness(rng):
    model = smooth_cnn().double()
    x = rng.standard_normal((2, 2, 8, 8))
    attr, delta = explain.integrated_gradients(model, x, [0, 2], steps=64, return_delta=True)
    gap = class_score(model, x, [0, 2]) - class_score(model, np.zeros_like(x), [0, 2])
    assert attr.shape == x.shape
    assert np.allclose(attr.reshape(2, -1).sum(axis=1), gap, rtol=0.02, atol=1e-4)
    assert np.all(delta <= 0.02 * np.abs(gap) + 1e-4)
    # a linear model: exact with any number of steps, and equals (x - x') * w
    lin = nn.Linear(4, 2).double()
    xl = rng.standard_normal((3, 4))
    base = rng.standard_normal((3, 4))
    ig = explain.integrated_gradients(lin, xl, 1, baseline=base, steps=1)
    assert np.allclose(ig, (xl - base) * lin.weight.numpy()[1])


def test_integrated_gradients_warns_when_steps_are_too_few(rng):
    model = smooth_cnn().double()
    x = 3 * rng.standard_normal((1, 2, 8, 8))
    with pytest.warns(RuntimeWarning, match="raise steps"):
        explain.integrated_gradients(model, x, 0, steps=1, tolerance=1e-6)


def test_guided_backprop_keeps_only_positive_gradients_through_relu():
    """For y = w2 . relu(W1 x): guided backprop zeroes the negative upstream gradients."""
    lin1, lin2 = nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False)
    lin1.weight.data[...] = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    lin2.weight.data[...] = np.array([[2.0, -3.0]], dtype=np.float32)
    model = nn.Sequential(lin1, nn.ReLU(), lin2)
    x = np.array([[1.0, 1.0]], dtype=np.float32)          # both hidden units active
    assert np.allclose(explain.vanilla_gradient(model, x, 0), [[2.0, -3.0]])
    assert np.allclose(explain.guided_backprop(model, x, 0), [[2.0, 0.0]])
    # the hooks are gone afterwards
    assert np.allclose(explain.vanilla_gradient(model, x, 0), [[2.0, -3.0]])


# ---- bad input -------------------------------------------------------------------------

def test_target_out_of_range(rng):
    model = smooth_cnn()
    x = rng.standard_normal((2, 2, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="target 3 is out of range.*3 classes"):
        explain.vanilla_gradient(model, x, 3)
    with pytest.raises(ValueError, match="target -1 is out of range"):
        explain.vanilla_gradient(model, x, [0, -1])
    with pytest.raises(ValueError, match="one entry per example"):
        explain.vanilla_gradient(model, x, [0, 1, 2])
    with pytest.raises(TypeError, match="class index"):
        explain.vanilla_gradient(model, x, 0.5)


def test_wrong_input_shape(rng):
    model = smooth_cnn()
    with pytest.raises(ValueError, match="batch axis"):
        explain.vanilla_gradient(model, np.zeros(5, dtype=np.float32), 0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        explain.grad_cam(model, np.zeros((2, 8, 8), dtype=np.float32), 0)
    with pytest.raises(ValueError, match="empty batch"):
        explain.vanilla_gradient(model, np.zeros((0, 2, 8, 8), dtype=np.float32), 0)


def test_common_helpers():
    assert list(_common.batches(5, 2)) == [(0, 2), (2, 4), (4, 5)]
    assert _common.check_targets(2, 3).tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        _common.check_positive_int(0, "batch_size")


def bn_dropout_cnn():
    """BatchNorm2d and Dropout, in training mode as every new module is."""
    tn.manual_seed(2)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def _explanations():
    from explain import sanity
    from explain.tcav import class_gradients, layer_activations
    return {
        "vanilla_gradient": lambda m, x: explain.vanilla_gradient(m, x, 1),
        "grad_cam": lambda m, x: explain.grad_cam(m, x, 1),
        "smoothgrad": lambda m, x: explain.smoothgrad(m, x, 1, n_samples=3, seed=0,
                                                      progress=False),
        "integrated_gradients": lambda m, x: explain.integrated_gradients(m, x, 1, steps=4,
                                                                          tolerance=np.inf),
        "tcav.layer_activations": lambda m, x: layer_activations(m, "3", x),
        "tcav.class_gradients": lambda m, x: class_gradients(m, "3", x, 1),
        "deletion_curve": lambda m, x: sanity.deletion_curve(
            m, x, 1, np.arange(x[0, 0].size).reshape(x[0, 0].shape)[None].repeat(len(x), 0),
            steps=4).probabilities,
        "top_examples": lambda m, x: explain.top_examples(m, "3", 0, x, k=2)[1],
        "activation_maximization": lambda m, x: explain.activation_maximization(
            m, "3", 0, steps=2, image_shape=(3, 8, 8), progress=False).image,
    }


@pytest.mark.parametrize("name", list(_explanations()))
def test_explanations_run_the_model_in_eval_mode(rng, name):
    """Dropout off and BatchNorm on its running statistics: two calls give the same result,
    which is the eval-mode model's; the running statistics are not updated; every module gets
    its own training flag back."""
    explain_fn = _explanations()[name]
    model = bn_dropout_cnn()
    model[5].eval()                                  # flags are restored module by module
    x = rng.random((3, 3, 8, 8)).astype(np.float32)
    buffers = {k: v.copy() for k, v in model.state_dict().items() if "running" in k
               or "num_batches" in k}
    first, second = explain_fn(model, x), explain_fn(model, x)
    assert np.array_equal(first, second)
    assert [m.training for m in model.modules()] == [True] * 6 + [False, True]
    after = model.state_dict()
    assert all(np.array_equal(v, after[k]) for k, v in buffers.items())
    assert np.allclose(first, explain_fn(model.eval(), x))


def test_training_flags_come_back_after_an_error(rng):
    model = bn_dropout_cnn()
    with pytest.raises(ValueError, match="out of range"):
        explain.vanilla_gradient(model, rng.random((1, 3, 8, 8)), 7)
    assert all(m.training for m in model.modules())


def test_gradient_methods_work_inside_no_grad(rng):
    """A caller's tn.no_grad() does not stop the backward pass the explanation needs."""
    from explain.tcav import class_gradients, train_cav
    model = smooth_cnn().double()
    x = rng.standard_normal((2, 2, 8, 8))
    concept, random = rng.standard_normal((6, 3)) + 2, rng.standard_normal((6, 3))
    calls = [lambda: explain.vanilla_gradient(model, x, 1),
             lambda: explain.grad_cam(model, x, 1, layer="3"),
             lambda: explain.smoothgrad(model, x, 1, n_samples=2, seed=0, progress=False),
             lambda: explain.integrated_gradients(model, x, 1, steps=4, tolerance=np.inf),
             lambda: class_gradients(model, "3", x, 1),
             lambda: train_cav(concept, random, steps=5).vector]
    for call in calls:
        outside = call()
        with tn.no_grad():
            inside = call()
        assert np.array_equal(inside, outside)
        assert tn.is_grad_enabled()


def test_integrated_gradients_batches_path_points_across_examples(rng):
    """Rows of several examples in one batch give the per-row result, for any batch_size."""
    model = smooth_cnn().double()
    x = rng.standard_normal((3, 2, 8, 8))
    one = explain.integrated_gradients(model, x, [0, 1, 2], steps=5, batch_size=1)
    for batch_size in (None, 4, 7, 15):
        ig = explain.integrated_gradients(model, x, [0, 1, 2], steps=5, batch_size=batch_size)
        assert np.allclose(ig, one, rtol=1e-10, atol=1e-14)
