"""The checks that grade explanations: model-parameter randomization (maps of the trained
bright-square CNN must change; a map that ignores the weights must fail), deletion and
insertion curves, fragility, and the rank statistics behind them."""
import numpy as np
import pytest

from tinynet import nn

import explain
from explain import sanity, toy


@pytest.fixture(scope="module")
def squares():
    model = toy.bright_square_model()
    x, y, masks = toy.bright_squares(40, seed=3)
    keep = y == 1
    return model, x[keep][:8], masks[keep][:8]


def test_spearman_and_topk_against_definitions(rng):
    a = rng.standard_normal((2, 3, 5, 5))
    b = rng.standard_normal((2, 3, 5, 5))
    from scipy import stats
    expected = stats.spearmanr(np.abs(a[1]).sum(0).ravel(), np.abs(b[1]).sum(0).ravel()).statistic
    assert np.isclose(explain.spearman(a, b)[1], expected)
    assert np.allclose(explain.spearman(a, 3 * a), 1)
    assert np.allclose(explain.spearman(a[:, 0], -a[:, 0], absolute=False), -1)
    assert np.allclose(sanity.topk_intersection(a, a, 5), 1)
    m = np.arange(16, dtype=float).reshape(1, 4, 4)
    assert sanity.topk_intersection(m, m[:, ::-1, ::-1], 4)[0] == 0    # reversed ranking
    assert sanity.topk_intersection(m, m[:, ::-1, :], 8)[0] == 0
    with pytest.raises(ValueError, match="same shape"):
        explain.spearman(a, b[:, :, :4])


def test_randomization_changes_vanilla_gradient_and_grad_cam(squares):
    model, x, _ = squares
    before = {k: v.copy() for k, v in model.state_dict().items()}
    vg = explain.model_parameter_randomization(model, x, 1, explain.vanilla_gradient)
    gc = explain.model_parameter_randomization(
        model, x, 1, lambda m, xx, t: explain.grad_cam(m, xx, t, layer="2"))
    assert vg.layers == ["6", "2", "0"]                # top down
    assert vg.correlations[-1] < 0.5 and vg.passed
    assert gc.correlations[-1] < 0.5 and gc.passed
    assert vg.per_example.shape == (3, len(x))
    # the weights are restored
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_a_map_that_ignores_the_model_fails_randomization(squares):
    """An 'explanation' that is an edge detector on the input (no model involved) keeps its
    map when the weights are randomized: rank correlation 1, the check fails."""
    model, x, _ = squares

    def edges(m, xx, t):
        xx = np.asarray(xx)
        return np.abs(np.diff(xx, axis=3, append=xx[..., -1:]))
    result = explain.model_parameter_randomization(model, x, 1, edges)
    assert np.allclose(result.correlations, 1) and not result.passed


def test_independent_randomization_restores_other_layers(squares):
    model, x, _ = squares
    r = explain.model_parameter_randomization(model, x[:3], 1, explain.vanilla_gradient,
                                              layers=["0"], cascading=False)
    assert r.layers == ["0"] and r.correlations.shape == (1,)


def test_deletion_and_insertion_rank_a_good_map_above_a_bad_one(squares):
    """The square's mask as a map (the true explanation) must beat its inverse."""
    model, x, masks = squares
    good = masks.astype(float) + 0.01 * np.random.default_rng(0).random(masks.shape)
    bad = 1.0 - good
    d_good = explain.deletion_curve(model, x, 1, good, steps=16)
    d_bad = explain.deletion_curve(model, x, 1, bad, steps=16)
    assert d_good.probabilities.shape == (len(x), 17)
    assert np.allclose(d_good.probabilities[:, 0], d_bad.probabilities[:, 0])   # the image itself
    assert d_good.auc.mean() < d_bad.auc.mean()
    i_good = explain.insertion_curve(model, x, 1, good, steps=16)
    i_bad = explain.insertion_curve(model, x, 1, bad, steps=16)
    assert i_good.auc.mean() > i_bad.auc.mean()
    # deletion of everything leaves the baseline, insertion of everything the image
    assert np.allclose(i_good.probabilities[:, -1], d_good.probabilities[:, 0], atol=1e-5)
    table = explain.compare_methods(model, x, 1, {"mask": good, "inverse": bad}, steps=8)
    assert table["mask"]["deletion_auc"] < table["inverse"]["deletion_auc"]
    assert table["mask"]["insertion_auc"] > table["inverse"]["insertion_auc"]


def test_saliency_beats_a_random_map_on_deletion(squares):
    model, x, _ = squares
    sal = explain.channel_max(explain.vanilla_gradient(model, x, 1))
    rand = np.random.default_rng(1).random(sal.shape)
    assert (explain.deletion_curve(model, x, 1, sal).auc.mean()
            < explain.deletion_curve(model, x, 1, rand).auc.mean())


def test_fragility_keeps_the_prediction_and_reports_topk_change(squares):
    model, x, _ = squares
    r = explain.fragility(model, x[:3], 1, explain.vanilla_gradient, epsilon=0.05, k=16,
                          n_candidates=8, n_iter=2, clip=(0, 1), progress=False)
    assert r.perturbed.shape == x[:3].shape
    assert np.all(r.prediction_kept)
    assert np.all(r.perturbation_linf <= 0.05 + 1e-6)
    assert np.all((0 <= r.topk_intersection) & (r.topk_intersection <= 1))
    # the reported intersection is the one of the returned maps
    assert np.allclose(r.topk_intersection, sanity.topk_intersection(r.original_maps,
                                                                     r.perturbed_maps, 16))
    # a map that ignores the input perturbation cannot be moved
    const = lambda m, xx, t: np.broadcast_to(np.arange(256.0).reshape(1, 1, 16, 16),
                                             np.shape(xx)).copy()
    robust = explain.fragility(model, x[:2], 1, const, epsilon=0.05, k=16, n_candidates=4,
                               n_iter=1, progress=False)
    assert np.allclose(robust.topk_intersection, 1)


def test_bad_arguments(squares):
    model, x, _ = squares
    with pytest.raises(TypeError, match="method must be a function"):
        explain.model_parameter_randomization(model, x, 1, "vanilla")
    with pytest.raises(ValueError, match=r"attribution must be \(N, H, W\)"):
        explain.deletion_curve(model, x, 1, np.zeros((len(x), 8, 8)))
    with pytest.raises(ValueError, match="baseline must be"):
        explain.insertion_curve(model, x, 1, np.zeros((len(x), 16, 16)), baseline="gray")
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        explain.fragility(model, x, 1, explain.vanilla_gradient, epsilon=0)
    with pytest.raises(ValueError, match="no parameters"):
        explain.model_parameter_randomization(nn.Sequential(nn.Flatten()), x, 1,
                                              explain.vanilla_gradient)


def test_a_constant_map_fails_randomization(squares):
    """A method that always returns zeros never changes: identical constant maps count as
    perfectly correlated (1), not as 'no ranking' (0)."""
    model, x, _ = squares
    result = explain.model_parameter_randomization(
        model, x[:3], 1, lambda m, xx, t: np.zeros(np.shape(xx)))
    assert np.allclose(result.correlations, 1) and not result.passed
    const, ramp = np.ones((1, 4, 4)), np.arange(16.0).reshape(1, 4, 4)
    assert explain.spearman(const, const)[0] == 1
    assert explain.spearman(const, 2 * const)[0] == 0       # a different constant
    assert explain.spearman(const, ramp)[0] == 0
    assert explain.spearman(ramp, const)[0] == 0


def test_a_nan_map_fails_randomization(squares):
    model, x, _ = squares
    result = explain.model_parameter_randomization(
        model, x[:2], 1, lambda m, xx, t: np.full(np.shape(xx), np.nan))
    assert not result.passed
