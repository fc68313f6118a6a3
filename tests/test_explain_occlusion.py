"""explain.occlusion: a hand-computed case, a brute-force loop, Captum where installed."""
import itertools

import numpy as np
import pytest

import tinynet as tn
from tinynet import nn

import explain


def sum_model(x):
    """Class 0 scores the sum of the pixels, class 1 minus it."""
    s = x.reshape(x.shape[0], -1).sum(axis=1, keepdims=True)
    return tn.tensor(np.concatenate([s.numpy(), -s.numpy()], axis=1))


def test_hand_computed_2x2_window_on_3x3():
    x = np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3)
    # windows: top-left {1,2,4,5} drops the sum by 12, top-right 16, bottom-left 24,
    # bottom-right 28; each pixel averages the windows covering it
    expected = np.array([[12, 14, 16], [18, 20, 22], [24, 26, 28]], dtype=np.float64)
    r = explain.occlusion(sum_model, x, 0, sliding_window_shapes=(1, 2, 2), strides=1)
    np.testing.assert_allclose(r[0, 0], expected)
    np.testing.assert_allclose(explain.occlusion(sum_model, x, 1, (1, 2, 2))[0, 0], -expected)
    # stride 2: only the top-left window fits; pixels no window covers get 0
    r = explain.occlusion(sum_model, x, 0, (1, 2, 2), strides=2)
    np.testing.assert_allclose(r[0, 0], [[12, 12, 0], [12, 12, 0], [0, 0, 0]])
    # a baseline of 1: each drop is the window's sum minus 4
    r = explain.occlusion(sum_model, x, 0, (1, 2, 2), baselines=1.0)
    np.testing.assert_allclose(r[0, 0], expected - 4)


def brute_force(model, x, target, window, strides, baseline):
    """The definition, one occluded image at a time."""
    out = np.zeros_like(x, dtype=np.float64)
    counts = np.zeros(x.shape[1:])
    with tn.no_grad():
        model.eval()
        for i in range(len(x)):
            full = model(tn.tensor(x[i:i + 1])).numpy()[0, target[i]]
            ranges = [range(0, d - w + 1, s) for d, w, s in zip(x.shape[1:], window, strides)]
            for start in itertools.product(*ranges):
                box = tuple(slice(a, a + w) for a, w in zip(start, window))
                occluded = x[i].copy()
                occluded[box] = baseline[box]
                drop = full - model(tn.tensor(occluded[None])).numpy()[0, target[i]]
                out[(i,) + box] += drop
                if i == 0:
                    counts[box] += 1
    return out / np.where(counts > 0, counts, 1)


def test_equals_brute_force_on_a_cnn():
    tn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    model.train()
    model(tn.tensor(np.random.default_rng(1).standard_normal((8, 3, 8, 8)).astype(np.float32)))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    baseline = rng.standard_normal((3, 8, 8)).astype(np.float32)
    target = np.array([2, 0])
    got = explain.occlusion(model, x, target, (1, 3, 3), strides=(1, 2, 2), baselines=baseline,
                            batch_size=7)                    # batches cut across images
    assert model.training                                     # its mode handed back
    expected = brute_force(model, x.astype(got.dtype), target, (1, 3, 3), (1, 2, 2), baseline)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_bad_arguments_are_named():
    x = np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match="sliding_window_shapes"):
        explain.occlusion(sum_model, x, 0, (1, 4, 4))
    with pytest.raises(ValueError, match="sliding_window_shapes"):
        explain.occlusion(sum_model, x, 0, (2, 2))
    with pytest.raises(ValueError, match="strides"):
        explain.occlusion(sum_model, x, 0, (1, 2, 2), strides=0)
    with pytest.raises(ValueError, match="baselines"):
        explain.occlusion(sum_model, x, 0, (1, 2, 2), baselines=np.zeros(2))


def test_equals_captum():
    torch = pytest.importorskip("torch")
    captum = pytest.importorskip("captum.attr")
    from tinynet import models
    tn.manual_seed(0)
    ours = models.imagenette_cnn(num_classes=3, channels=(4, 4, 8, 8))
    theirs = models.imagenette_cnn(num_classes=3, channels=(4, 4, 8, 8), layers=torch.nn)
    theirs.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in ours.state_dict().items()})
    theirs.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    got = explain.occlusion(ours, x, 1, (3, 4, 4), strides=(3, 2, 2))
    want = captum.Occlusion(theirs).attribute(torch.from_numpy(x), target=1,
                                              sliding_window_shapes=(3, 4, 4),
                                              strides=(3, 2, 2)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
