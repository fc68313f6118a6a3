"""Is TCAV's "significant" to be trusted?  A known-answer task measured over many trials:
``toy.striped_patch_model`` is a CNN trained to find a striped patch in noise, so a striped
concept must be significant for its class 1, and a "concept" that is just one more random
noise set (drawn like the random sets) must be significant in about alpha = 5% of trials.

60 trials tell a calibrated 5% from the classic t-test's 20%: with 60 trials at a true 5%,
more than 6 false positives happen with probability 3%; at a true 20%, 6 or fewer with 3%.
The sets are small (10 examples, 10 random sets) and the layer is the first ReLU (6 x 16 x
16 activations), and activations are computed once per run, so a trial costs only its CAVs.
"""
import numpy as np
import pytest

import explain
from explain import toy

TRIALS = 60


@pytest.fixture(scope="module")
def task():
    model = toy.striped_patch_model()
    x, y = toy.striped_patches(120, seed=7)
    rng = np.random.default_rng(3)
    return dict(model=model, class_inputs=x[y == 1][:30], pool=toy.noise(200, rng),
                striped=toy.stripes(40, rng))


def calibrate(task, test):
    return explain.tcav_calibration(task["model"], "1", 1, task["striped"], task["pool"],
                                    task["class_inputs"], trials=TRIALS, n_random_sets=10,
                                    set_size=10, test=test, cav_steps=50, progress=False)


def test_the_default_test_is_calibrated_and_finds_the_planted_concept(task):
    r = calibrate(task, "sets")
    assert r.test == "sets" and r.trials == TRIALS and r.alpha == 0.05
    assert r.false_positives <= 6, str(r)          # measured: 3/60
    assert r.power >= 0.9, str(r)                  # measured: 60/60
    lo, hi = r.false_positive_interval
    assert lo <= r.false_positive_rate <= hi and hi < 0.25
    assert np.all((r.random_p_values >= 0) & (r.random_p_values <= 1))
    assert np.all(r.concept_scores >= 0.9)         # the lecture's score of the striped concept


def test_the_classic_t_test_is_not(task):
    """The same trials with test='ttest': measured 14 false positives in 60 (23%, 95% CI
    13-36%), with the same 60/60 on the striped concept."""
    r = calibrate(task, "ttest")
    assert r.false_positives >= 9, str(r)
    assert r.power >= 0.9, str(r)


def test_bad_input(task):
    m, c, p, k = task["model"], task["striped"], task["pool"], task["class_inputs"]
    with pytest.raises(ValueError, match="random_inputs has 200 examples; a trial draws 11 "
                                         "disjoint sets of set_size=20"):
        explain.tcav_calibration(m, "1", 1, c, p, k, set_size=20)
    with pytest.raises(ValueError, match="concept_inputs has 40 examples, fewer than set_size=50"):
        explain.tcav_calibration(m, "1", 1, c, np.concatenate([p] * 4), k, set_size=50)
    with pytest.raises(ValueError, match="n_random_sets must be an integer >= 3, got 2"):
        explain.tcav_calibration(m, "1", 1, c, p, k, n_random_sets=2)
    with pytest.raises(ValueError, match="test must be one of"):
        explain.tcav_calibration(m, "1", 1, c, p, k, test="z")
