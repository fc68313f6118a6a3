"""TCAV: directional derivatives against finite differences, the CAV classifier (its span
trick against the full problem, batched against one at a time), the two significance tests
against hand-computed values, a model trained here whose class depends on a planted striped
patch (the striped concept must be significant with a score near 1, a concept of random
noise must not), caching, bad input, and the full pipeline on real DTD / ImageNet photos
(shared data).  The calibration of the tests is measured in test_tcav_calibration.py."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import nn

import explain
from explain import toy
from explain._common import class_score_gradients
from explain.tcav import (class_gradients, layer_activations, layer_head, sensitivities,
                          set_test_p, smoothed_score, train_cav, train_cavs, ttest_p)


def smooth_cnn():
    tn.manual_seed(6)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.Conv2d(3, 4, 3),
                         nn.Tanh(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2)).double()


def test_directional_derivative_matches_finite_differences(rng):
    """S_{C,k,l}(x) = grad h_{l,k}(f_l(x)) . v against (h(f + eps v) - h(f - eps v)) / 2 eps."""
    model = smooth_cnn()
    x = rng.standard_normal((3, 1, 6, 6))
    acts = layer_activations(model, "2", x)
    grads = class_gradients(model, "2", x, 1)
    v = rng.standard_normal(acts.shape[1])
    v /= np.linalg.norm(v)
    s = sensitivities(grads, v)
    head = layer_head(model, "2")
    eps = 1e-6
    shape = (3, 4, 4, 4)
    with tn.no_grad():
        up = head(x, tn.tensor((acts + eps * v).reshape(shape))).numpy()[:, 1]
        down = head(x, tn.tensor((acts - eps * v).reshape(shape))).numpy()[:, 1]
    assert np.allclose(s, (up - down) / (2 * eps), rtol=1e-6, atol=1e-9)
    # the head itself is differentiable in the activations: tn.gradcheck
    tn.gradcheck(lambda a: head(x, a), acts.reshape(shape))


def test_class_gradients_is_the_shared_class_score_gradient(rng):
    model = smooth_cnn()
    x = rng.standard_normal((5, 1, 6, 6))
    _, grad, _ = class_score_gradients(model, tn.tensor(x), [0, 1, 1, 0, 1], wrt="layer",
                                       layer_module=model[2])
    batched = class_gradients(model, "2", x, [0, 1, 1, 0, 1], batch_size=2)
    assert np.allclose(batched, grad.reshape(5, -1), rtol=1e-12, atol=1e-15)


def test_train_cav_in_the_span_reaches_the_full_problems_optimum(rng):
    """train_cav trains only the n-dimensional span of its training rows; the optimum of the
    full D-dimensional objective (found here by scipy's L-BFGS on the same split, centring and
    scaling) must be the same hyperplane."""
    from scipy import optimize
    from explain.cav import _prepare
    concept = rng.standard_normal((12, 50)) + 0.8
    random = rng.standard_normal((12, 50))
    cav = train_cav(concept, random, steps=1500, lr=0.05, weight_decay=1e-2, seed=3)
    p = _prepare(concept, random, 0.33, seed=3)
    x = p["z"] @ p["basis"].T                          # the centred, scaled rows, all D dims
    y = p["y"]

    def objective(wb):
        logits = x @ wb[:-1] + wb[-1]
        return (np.mean(np.logaddexp(0, logits) - y * logits)
                + 1e-2 * wb[:-1] @ wb[:-1])
    best = optimize.minimize(objective, np.zeros(51), method="L-BFGS-B",
                             options=dict(maxiter=5000, gtol=1e-12, ftol=1e-15)).x
    assert cav.vector @ (best[:-1] / np.linalg.norm(best[:-1])) > 0.999


def test_batched_cavs_equal_one_at_a_time(rng):
    pairs = [(rng.standard_normal((n, 30)) + 1, rng.standard_normal((n + 3, 30)))
             for n in (6, 9, 14)]                      # different sizes: padded in the batch
    together = train_cavs(pairs, steps=60, seeds=[4, 5, 6])
    for pair, seed, c in zip(pairs, [4, 5, 6], together):
        alone = train_cav(*pair, steps=60, seed=seed)
        assert np.allclose(c.vector, alone.vector, rtol=1e-9, atol=1e-12)
        assert np.isclose(c.bias, alone.bias) and c.accuracy == alone.accuracy


def test_the_tests_against_hand_computed_values():
    # prediction t-test: t = (0.9 - 0.5) / (0.1 sqrt(1 + 1/3)); with 2 degrees of freedom
    # P(|T| > t) = 1 - t / sqrt(t^2 + 2) in closed form
    t = 0.4 / (0.1 * np.sqrt(4 / 3))
    assert np.isclose(set_test_p(0.9, [0.4, 0.5, 0.6]), 1 - t / np.sqrt(t * t + 2))
    assert set_test_p(0.5, [0.5, 0.5, 0.5]) == 1 and set_test_p(0.6, [0.5, 0.5]) == 0
    # classic t-test, pooled variance: two samples of sd 0.5, 3 each, means d apart give
    # t = d / (0.5 sqrt(2/3)) = 3 with 4 degrees of freedom, whose CDF in closed form is
    # F(t) = 1/2 + 3/8 t / sqrt(1 + t^2/4) (1 - t^2 / (12 (1 + t^2/4)))
    a = np.array([0.5, 1.0, 1.5])
    b = a - 3 * 0.5 * np.sqrt(2 / 3)
    cdf = 0.5 + 3 / 8 * 3 / np.sqrt(1 + 9 / 4) * (1 - 9 / (12 * (1 + 9 / 4)))
    assert np.isclose(ttest_p(a, b), 2 * (1 - cdf), rtol=1e-9)
    assert ttest_p([1, 1], [1, 1]) == 1 and ttest_p([1, 1], [0, 0]) == 0


def test_set_test_on_an_additive_model():
    """If S(A vs B) = a - b for every input (each set a number, a very wide smoothing so the
    smoothed score is linear in S), the round robin gives T(R_j) - 1/2 proportional to
    m/(m-1) (r_j - mean r) and T(C) - 1/2 to c - mean r; the test must then be the
    prediction t-test of c among the r_j: t = (c - mean r) / (sd r sqrt(1 + 1/m))."""
    from scipy import stats
    from explain.tcav import _set_test
    r = np.array([0.1, -0.3, 0.5, 0.0, 0.2])
    c, m = 1.0, 5
    null = {(i, j): np.full(3, r[i] - r[j]) for i in range(m) for j in range(i + 1, m)}
    concept = {"c": np.repeat((c - r)[:, None], 3, axis=1)}
    _, out, null_t, _ = _set_test(concept, null, m, smoothing=1e6)
    tau = 1e6 * np.median(np.abs(r[:, None] - r[None, :])[np.triu_indices(m, 1)])
    assert np.allclose(null_t - 0.5, m / (m - 1) * (r - r.mean()) / (4 * tau))
    t = (c - r.mean()) / (r.std(ddof=1) * np.sqrt(1 + 1 / m))
    assert np.isclose(out["c"][1], 2 * stats.t.sf(t, m - 1), rtol=1e-6)


def test_smoothed_score_spans_the_plain_score_and_the_mean_sensitivity():
    s = np.array([-2.0, -0.1, 0.3, 5.0])
    assert smoothed_score(s, 0) == 0.5                # the lecture's fraction with S > 0
    assert np.isclose(smoothed_score(s, 1e-6), 0.5)
    tau = 1e4                                          # sigmoid(z) ~ 1/2 + z/4 for small z
    assert np.isclose(smoothed_score(s, tau), 0.5 + s.mean() / (4 * tau), rtol=1e-9)
    assert np.isclose(smoothed_score(np.array([np.log(3.0)]), 1.0), 0.75)   # 3 / (1 + 3)


def test_train_cav_separates_and_reports_held_out_accuracy(rng):
    direction = rng.standard_normal(10)
    direction /= np.linalg.norm(direction)
    concept = rng.standard_normal((40, 10)) + 3 * direction
    random = rng.standard_normal((40, 10))
    cav = train_cav(concept, random, seed=0)
    assert cav.accuracy >= 0.8                        # the Bayes rate here is about 0.93
    assert np.isclose(np.linalg.norm(cav.vector), 1)
    assert cav.vector @ direction > 0.8               # points towards the concept
    # two sets from the same distribution: no better than chance on held-out data
    same = train_cav(rng.standard_normal((40, 10)), rng.standard_normal((40, 10)), seed=0)
    assert same.accuracy < 0.8


# ---- a model that looks for a striped patch ---------------------------------------------------

@pytest.fixture(scope="module")
def striped_setup():
    model = toy.striped_patch_model()
    x, y = toy.striped_patches(64, seed=1)
    with tn.no_grad():
        accuracy = np.mean(model(tn.tensor(x)).numpy().argmax(axis=1) == y)
    rng = np.random.default_rng(2)
    return dict(model=model, accuracy=accuracy, class_inputs=x[y == 1],
                striped=toy.stripes(20, rng), noise=toy.noise(20, rng),
                randoms=[toy.noise(20, rng) for _ in range(10)])


def test_striped_concept_is_significant_and_noise_is_not(striped_setup, tmp_path):
    s = striped_setup
    assert s["accuracy"] >= 0.9                       # the model learned its task
    # layer '2' (conv, pre-ReLU): a non-linearity above it, so grad h_{l,k} varies by input
    results = explain.tcav(s["model"], "2", 1, {"striped": s["striped"], "noise": s["noise"]},
                           s["randoms"], s["class_inputs"], cache_dir=str(tmp_path),
                           progress=False)
    striped, noisy = results[("striped", "2")], results[("noise", "2")]
    assert striped.test == "sets" and striped.statistic > max(striped.random_statistics)
    assert striped.n_tests == 2                       # Bonferroni over two concepts
    assert striped.score >= 0.9 and striped.significant and striped.p_value < 0.025
    assert np.all(striped.cav_accuracies >= 0.9)      # the layer separates stripes from noise
    assert not noisy.significant
    assert np.mean(noisy.cav_accuracies) < 0.8        # noise vs noise: near chance
    assert len(striped.scores) == 10 and len(striped.random_scores) == 10
    # the cache holds activations, class gradients and CAVs; a rerun reads them back
    files = sorted(p.name.split("_")[0] for p in tmp_path.iterdir())
    assert {"acts", "cav", "grads"} <= set(files)
    again = explain.tcav(s["model"], "2", 1, s["striped"], s["randoms"], s["class_inputs"],
                         cache_dir=str(tmp_path), progress=False)
    assert np.array_equal(again.scores, striped.scores)
    assert again.n_tests == 1 and again.concept == "concept"


def test_several_layers_are_corrected_together(striped_setup):
    s = striped_setup
    results = explain.tcav(s["model"], ["1", "3"], 1, s["striped"], s["randoms"][:3],
                           s["class_inputs"], progress=False, cav_steps=100)
    assert set(results) == {("concept", "1"), ("concept", "3")}
    assert all(r.n_tests == 2 and r.alpha == 0.05 for r in results.values())


def test_bad_input(striped_setup):
    s = striped_setup
    m, c, r, k = s["model"], s["striped"], s["randoms"], s["class_inputs"]
    with pytest.raises(ValueError, match="at least 3"):
        explain.tcav(m, "3", 1, c, r[:2], k)
    with pytest.raises(ValueError, match="concept 'concept' has 3 examples; at least 4"):
        explain.tcav(m, "3", 1, c[:3], r, k)
    with pytest.raises(ValueError, match="random set 1 has 2 examples"):
        explain.tcav(m, "3", 1, c, [r[0], r[1][:2], r[2]], k)
    with pytest.raises(ValueError, match="unknown layer 'fc'.*'0', '1', '2'"):
        explain.tcav(m, "fc", 1, c, r, k)
    with pytest.raises(ValueError, match="target 5 is out of range"):
        explain.tcav(m, "3", 5, c, r, k, progress=False)
    with pytest.raises(TypeError, match="list of random sets"):
        explain.tcav(m, "3", 1, c, r[0], k)
    with pytest.raises(ValueError, match="at least 4 concept examples"):
        train_cav(np.zeros((3, 5)), np.ones((10, 5)))
    with pytest.raises(ValueError, match=r"test must be one of \('sets', 'ttest'\), got 't'"):
        explain.tcav(m, "3", 1, c, r, k, test="t")
    with pytest.raises(ValueError, match="random_counterpart belongs to test='ttest'"):
        explain.tcav(m, "3", 1, c, r, k, random_counterpart=r[0])
    with pytest.raises(ValueError, match="smoothing must be >= 0, got -1"):
        explain.tcav(m, "3", 1, c, r, k, smoothing=-1)


# ---- real photographs (shared data) -------------------------------------------------------

def _load_folder(folder, n, size=32):
    from PIL import Image
    files = sorted(folder.glob("*.jpg"))[:n]
    imgs = [np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR))
            for f in files]
    return ((np.stack(imgs).astype(np.float32) / 255 - 0.5) / 0.25).transpose(0, 3, 1, 2)


LAYER = "5"        # the second max-pool: 16 x 8 x 8 activations, a conv and a ReLU above it


def test_tcav_on_real_concept_images(shared_data):
    """A tiny CNN trained here to tell DTD 'striped' photos from random ImageNet photos; TCAV
    with held-out striped photos against random sets must find the concept (high CAV
    accuracy, significant, score above the random-vs-random mean), and 'dotted' photos
    must separate from random photos too (CAV accuracy) but score lower than 'striped'.

    The layer has a non-linearity above it: right below a linear head the gradient
    grad h_{l,k} is the same for every input, and every score is 0 or 1."""
    concepts = shared_data / "concepts" / "64"
    randoms = shared_data / "random" / "64"
    striped = _load_folder(concepts / "striped", 100)
    dotted = _load_folder(concepts / "dotted", 30)
    # 10 random sets of 49 (two from each of five folders): the 'sets' test needs about 10,
    # and small sets of photos differ so much from each other that a random set's score
    # can come close to the concept's
    random_sets = [half for i in range(5)
                   for half in np.split(_load_folder(randoms / f"random_0{i}", 98), 2)]
    train_random = _load_folder(randoms / "random_09", 70)
    x = np.concatenate([striped[:70], train_random])
    y = np.array([1] * 70 + [0] * 70)
    tn.manual_seed(0)
    model = toy.photo_cnn()
    order = np.random.default_rng(0).permutation(len(x))
    toy.train(model, x[order], y[order], epochs=12, batch_size=28, lr=0.01)
    results = explain.tcav(model, LAYER, 1, {"striped": striped[70:], "dotted": dotted},
                           random_sets, striped[70:], progress=False)
    s, d = results[("striped", LAYER)], results[("dotted", LAYER)]
    assert s.n_tests == 2
    assert np.mean(s.cav_accuracies) >= 0.7
    assert s.score > np.mean(s.random_scores)
    assert s.significant, (s.statistic, s.random_statistics, s.p_value)
    assert np.mean(d.cav_accuracies) >= 0.6
    assert 0 <= d.score <= 1 and 0 <= d.p_value <= 1
    assert d.score < s.score


def test_explicit_random_counterpart_and_progress_bar(striped_setup, capsys):
    s = striped_setup
    r = explain.tcav(s["model"], "2", 1, s["striped"], s["randoms"][:2], s["class_inputs"],
                     test="ttest", random_counterpart=s["randoms"][2], cav_steps=50)
    assert len(r.scores) == 2 and len(r.random_scores) == 2 and r.test == "ttest"
    assert "tcav" in capsys.readouterr().err          # tqdm bar on stderr
    explain.tcav(s["model"], "2", 1, s["striped"], s["randoms"][:3], s["class_inputs"],
                 cav_steps=20, progress=False)
    assert "tcav" not in capsys.readouterr().err
