"""SmoothGrad: the definition R_sg = 1/n sum R(x + g_i) checked directly, known answers on a
linear model, exact repeatability with a seed, batching, variants and bad input."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import nn

import explain


def small_cnn():
    tn.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).double()


@pytest.mark.parametrize("noise_level", [0.0, 0.15, 2.0])
def test_linear_model_smoothgrad_is_the_weight_row_for_any_sigma(rng, noise_level):
    model = nn.Linear(5, 3)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    sg = explain.smoothgrad(model, x, 2, n_samples=7, noise_level=noise_level, seed=0,
                            progress=False)
    assert np.allclose(sg, np.repeat(model.weight.numpy()[2:3], 4, axis=0), atol=1e-6)


def test_smoothgrad_equals_the_mean_of_gradients_at_noisy_copies(rng):
    """Recompute the definition by hand: same noise (same seed and draw order), sigma from
    (max - min) of each input."""
    model = small_cnn()
    x = rng.standard_normal((2, 3, 8, 8))
    n, level = 6, 0.2
    sg = explain.smoothgrad(model, x, [0, 1], n_samples=n, noise_level=level, seed=5,
                            progress=False)
    noise = np.random.default_rng(5).standard_normal((2 * n,) + x.shape[1:])
    expected = np.zeros_like(x)
    for r in range(2 * n):
        i = r // n
        sigma = level * (x[i].max() - x[i].min())
        noisy = x[i:i + 1] + sigma * noise[r:r + 1]
        expected[i] += explain.vanilla_gradient(model, noisy, [0, 1][i])[0] / n
    assert np.allclose(sg, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batched_smoothgrad_equals_its_plain_loop(rng, dtype):
    """smoothgrad (batched) and smoothgrad_loop (the formula, one copy at a time) agree,
    and a different seed changes the result (the comparison can fail)."""
    from explain.smoothgrad import smoothgrad_loop
    model = small_cnn() if dtype == np.float64 else small_cnn().float()
    x = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    loop = smoothgrad_loop(model, x, [2, 0], n_samples=5, noise_level=0.3, seed=11)
    batched = explain.smoothgrad(model, x, [2, 0], n_samples=5, noise_level=0.3, seed=11,
                                 batch_size=4, progress=False)
    other = smoothgrad_loop(model, x, [2, 0], n_samples=5, noise_level=0.3, seed=12)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(batched, loop, rtol=tol, atol=tol)
    assert not np.allclose(other, loop, rtol=tol, atol=tol)


def test_seeded_runs_repeat_exactly_and_batching_does_not_matter(rng):
    model = small_cnn()
    x = rng.standard_normal((3, 3, 8, 8))
    a = explain.smoothgrad(model, x, 1, n_samples=10, seed=3, batch_size=64, progress=False)
    b = explain.smoothgrad(model, x, 1, n_samples=10, seed=3, batch_size=64, progress=False)
    c = explain.smoothgrad(model, x, 1, n_samples=10, seed=3, batch_size=7, progress=False)
    d = explain.smoothgrad(model, x, 1, n_samples=10, seed=4, progress=False)
    assert np.array_equal(a, b)
    assert np.allclose(a, c)
    assert not np.allclose(a, d)


def test_sigma_zero_gives_the_vanilla_gradient(rng):
    model = small_cnn()
    x = rng.standard_normal((2, 3, 8, 8))
    sg = explain.smoothgrad(model, x, 2, n_samples=3, noise_level=0.0, progress=False)
    assert np.allclose(sg, explain.vanilla_gradient(model, x, 2))


def test_variants_and_custom_method(rng):
    model = small_cnn()
    x = rng.standard_normal((2, 3, 8, 8))
    kw = dict(n_samples=8, seed=1, progress=False)
    mean = explain.smoothgrad(model, x, 0, **kw)
    sq = explain.smoothgrad_squared(model, x, 0, **kw)
    var = explain.vargrad(model, x, 0, **kw)
    assert np.all(sq >= 0) and np.all(var >= 0)
    assert np.allclose(var, sq - mean ** 2, atol=1e-12)
    # any attribution function: gradient x input averaged
    gxi = explain.smoothgrad(model, x, 0, method=explain.gradient_x_input, noise_level=0.0,
                             n_samples=2, progress=False)
    assert np.allclose(gxi, explain.gradient_x_input(model, x, 0))


def test_smoothgrad_is_smoother_than_the_vanilla_gradient(rng):
    """Total variation of the map drops when noisy gradients are averaged (the paper's point)."""
    tn.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, 3)).double()
    x = rng.standard_normal((4, 3, 8, 8))

    def tv(m):
        m = np.abs(m).max(axis=1)
        return np.abs(np.diff(m, axis=1)).mean() + np.abs(np.diff(m, axis=2)).mean()
    vg = explain.vanilla_gradient(model, x, 0)
    sg = explain.smoothgrad(model, x, 0, n_samples=30, noise_level=0.3, seed=0, progress=False)
    assert tv(sg) / np.abs(sg).mean() < tv(vg) / np.abs(vg).mean()


def test_bad_arguments(rng):
    model = small_cnn()
    x = rng.standard_normal((1, 3, 8, 8))
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1, got 0"):
        explain.smoothgrad(model, x, 0, n_samples=0)
    with pytest.raises(ValueError, match="noise_level must be a number >= 0"):
        explain.smoothgrad(model, x, 0, noise_level=-0.1)
    with pytest.raises(ValueError, match="variant must be one of"):
        explain.smoothgrad(model, x, 0, variant="median")
    with pytest.raises(TypeError, match="method must be an attribution function"):
        explain.smoothgrad(model, x, 0, method="gradcam")
    with pytest.raises(ValueError, match="target 9 is out of range"):
        explain.smoothgrad(model, x, 9, progress=False)


def test_progress_bar_can_be_switched_off(rng, capsys):
    model = small_cnn()
    x = rng.standard_normal((1, 3, 8, 8))
    explain.smoothgrad(model, x, 0, n_samples=4)
    assert "smoothgrad" in capsys.readouterr().err
    explain.smoothgrad(model, x, 0, n_samples=4, progress=False)
    assert "smoothgrad" not in capsys.readouterr().err


def test_any_attribution_function_even_of_another_shape(rng):
    """method may return maps of another shape than x, e.g. Grad-CAM's (N, H, W) or the
    channel max (N, H, W) of a gradient; each input gets the mean of its copies' maps."""
    model = small_cnn()
    x = rng.standard_normal((2, 3, 8, 8))
    kw = dict(n_samples=3, seed=2, progress=False, batch_size=4)      # batches cut copies
    cam = explain.smoothgrad(model, x, [0, 2], method=explain.grad_cam, noise_level=0.0, **kw)
    assert cam.shape == (2, 8, 8)
    assert np.allclose(cam, explain.grad_cam(model, x, [0, 2]))
    def channel_max(m, xx, t):
        return explain.channel_max(explain.vanilla_gradient(m, xx, t))
    cm = explain.smoothgrad(model, x, 1, method=channel_max, variant="squared", **kw)
    noisy = explain.smoothgrad(model, x, 1, method=lambda m, xx, t: np.asarray(xx.numpy()),
                               **kw)
    assert cm.shape == (2, 8, 8) and noisy.shape == x.shape
    with pytest.raises(ValueError, match=r"one map per input, shape \(4, ...\)"):
        explain.smoothgrad(model, x, 1, method=lambda m, xx, t: np.zeros((1, 8, 8)), **kw)
