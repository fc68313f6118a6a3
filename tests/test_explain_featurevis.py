"""Activation maximization: the objective's gradient through transforms and
parameterizations against finite differences, the optimization raises (or lowers) its unit,
snapshots, resuming from a checkpoint, top_examples and bad input."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import nn

import explain
from explain.featurevis import (FourierImage, PixelImage, blur_penalty, default_transforms,
                                total_variation, unit_objective)


def smooth_cnn():
    tn.manual_seed(4)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 4, 3),
                         nn.Tanh(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).double()


def relu_cnn():
    tn.manual_seed(5)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))


@pytest.mark.parametrize("make", [PixelImage, FourierImage])
@pytest.mark.parametrize("kind,unit,layer", [("channel", 1, "2"), ("neuron", (2, 3, 1), "2"),
                                             ("layer", None, "0"), ("class", 2, None)])
def test_objective_gradient_through_transforms_and_parameterization(make, kind, unit, layer):
    """d(objective)/d(parameters) with padding, jitter, scale+rotation and the colour
    decorrelation inside the graph, against tn.gradcheck's finite differences (float64)."""
    model = smooth_cnn()
    image = make((3, 8, 8), seed=0, dtype=np.float64)
    objective = unit_objective(model, layer, unit, kind)
    transforms = default_transforms(16)          # pad 2, jitter 1, affine, jitter 1

    def fn(param):
        rng = np.random.default_rng(7)            # the same random transform every call
        img = image.render(param)
        return objective(transforms(img, rng)) + 0.1 * total_variation(img) + blur_penalty(img)
    tn.gradcheck(fn, image.param, atol=1e-6, rtol=1e-5)


def test_fourier_image_is_the_real_inverse_dft():
    """The four-matmul synthesis equals numpy's irfft2 of a Hermitian-completed spectrum,
    before the colour mix and sigmoid (checked with decorrelate off, sigmoid inverted)."""
    img = FourierImage((1, 6, 8), seed=0, decorrelate=False, dtype=np.float64)
    rng = np.random.default_rng(0)
    param = rng.standard_normal(img.param.shape)
    with tn.no_grad():
        out = img.render(tn.tensor(param)).numpy()[0, 0]
    logit = np.log(out / (1 - out))
    spec = (param[0, 0] + 1j * param[1, 0]) * img.scale.numpy()
    # sum over (fy, fx) of Re(S e^{2 pi i (fy h / H + fx w / W)}) = the direct sum below
    h, w = np.arange(6)[:, None, None, None], np.arange(8)[None, :, None, None]
    fy, fx = np.arange(6)[None, None, :, None], np.arange(5)[None, None, None, :]
    phase = np.exp(2j * np.pi * (fy * h / 6 + fx * w / 8))
    direct = np.real((spec[None, None] * phase).sum(axis=(2, 3)))
    assert np.allclose(logit, direct)


def _weak_channel(model, layer):
    """The channel that the starting noise excites least, but above zero (a dead channel has
    no gradient to follow)."""
    img = FourierImage((3, 16, 16), seed=0)
    with tn.no_grad():
        values = np.array([float(unit_objective(model, layer, z)(img()).numpy()[0])
                           for z in range(6)])
    return int(np.argmin(np.where(values > 0, values, np.inf)))


def test_maximizing_raises_the_unit_tenfold_and_minimizing_lowers_it():
    model = relu_cnn()
    z = _weak_channel(model, "3")
    up = explain.activation_maximization(model, "3", z, steps=50, image_shape=(3, 16, 16),
                                         lr=0.1, snapshot_steps=(0, 4, 48, 2048), progress=False)
    assert up.start_activation > 0
    assert up.activation >= 10 * up.start_activation
    assert list(up.snapshots) == [0, 4, 48]            # 2048 > steps is skipped
    assert up.image.shape == (3, 16, 16) and 0 <= up.image.min() and up.image.max() <= 1
    assert len(up.history) == 50
    # minimizing the pre-ReLU conv channel lowers it below its starting value
    down = explain.activation_maximization(model, "2", z, maximize=False, steps=30, lr=0.1,
                                           image_shape=(3, 16, 16), parameterization="pixel",
                                           progress=False)
    assert down.activation < down.start_activation - 0.2 * abs(down.start_activation)
    assert down.history[-1] < down.history[0]


def test_class_objective_and_penalties_run():
    model = relu_cnn()
    r = explain.activation_maximization(model, None, 1, kind="class", steps=10,
                                        image_shape=(3, 16, 16), l2=0.1, tv=0.1, blur=0.1,
                                        transforms=None, progress=False)
    assert r.activation > r.start_activation


def test_checkpoint_resumes_where_it_stopped(tmp_path):
    model = relu_cnn()
    path = str(tmp_path / "actmax.npz")
    kw = dict(image_shape=(3, 16, 16), checkpoint=path, checkpoint_every=5, progress=False,
              snapshot_steps=(0, 4, 12))
    first = explain.activation_maximization(model, "3", 0, steps=8, **kw)
    assert (tmp_path / "actmax.npz").exists()
    resumed = explain.activation_maximization(model, "3", 0, steps=14, **kw)
    assert len(resumed.history) == 14
    assert np.allclose(resumed.history[:8], first.history)
    assert list(resumed.snapshots) == [0, 4, 12]
    assert np.allclose(resumed.snapshots[4], first.snapshots[4])
    # a finished run loads and returns without new steps
    again = explain.activation_maximization(model, "3", 0, steps=14, **kw)
    assert np.allclose(again.image, resumed.image)


def test_top_examples(rng):
    model = relu_cnn()
    data = rng.random((20, 3, 16, 16)).astype(np.float32)
    data[7] *= 4                                   # a much brighter image
    idx, values = explain.top_examples(model, "1", 0, data, k=5, batch_size=6)
    with tn.no_grad():
        all_values = unit_objective(model, "1", 0)(tn.tensor(data)).numpy()
    assert list(idx) == list(np.argsort(-all_values)[:5])
    assert np.allclose(values, all_values[idx])
    assert np.all(np.diff(values) <= 0)


def test_bad_units_and_kinds():
    model = relu_cnn()
    with pytest.raises(ValueError, match="kind must be one of"):
        explain.activation_maximization(model, "2", 0, kind="pixel")
    with pytest.raises(ValueError, match=r"unit 9 is out of range.*6 channels"):
        explain.activation_maximization(model, "2", 9, steps=1, image_shape=(3, 8, 8),
                                        progress=False)
    with pytest.raises(ValueError, match=r"needs unit = \(z, u, v\)"):
        explain.activation_maximization(model, "2", 1, kind="neuron", steps=1,
                                        image_shape=(3, 8, 8), progress=False)
    with pytest.raises(ValueError, match="unknown layer 'conv9'"):
        explain.activation_maximization(model, "conv9", 0)
    with pytest.raises(ValueError, match="parameterization must be"):
        explain.activation_maximization(model, "2", 0, parameterization="wavelet")


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    """Without random transforms the optimization is deterministic, so stopping after 6 steps
    and resuming to 12 (parameters and Adam's moments restored) equals 12 steps at once."""
    model = relu_cnn()
    kw = dict(image_shape=(3, 16, 16), transforms=None, progress=False, snapshot_steps=(0,))
    whole = explain.activation_maximization(model, "3", 2, steps=12, **kw)
    assert len(set(whole.history)) == 12             # channel 2 is alive (1 is dead here)
    path = str(tmp_path / "run.npz")
    explain.activation_maximization(model, "3", 2, steps=6, checkpoint=path, **kw)
    resumed = explain.activation_maximization(model, "3", 2, steps=12, checkpoint=path, **kw)
    assert np.allclose(resumed.history, whole.history, rtol=1e-5)
    assert np.allclose(resumed.image, whole.image, atol=1e-6)


def test_resumed_run_with_random_transforms_equals_an_uninterrupted_one(tmp_path):
    """The random transforms' generator is saved with the checkpoint, so a resumed run draws
    the same jitter, scales and angles as one that never stopped."""
    model = relu_cnn()
    kw = dict(image_shape=(3, 16, 16), progress=False, snapshot_steps=(0,))
    whole = explain.activation_maximization(model, "3", 2, steps=10, **kw)
    assert len(set(whole.history)) == 10             # channel 2 is alive: the image moves
    path = str(tmp_path / "run.npz")
    explain.activation_maximization(model, "3", 2, steps=4, checkpoint=path, **kw)
    resumed = explain.activation_maximization(model, "3", 2, steps=10, checkpoint=path, **kw)
    assert np.allclose(resumed.history, whole.history, rtol=1e-5)
    assert np.allclose(resumed.image, whole.image, atol=1e-6)


@pytest.mark.parametrize("change", [dict(unit=2), dict(layer="1"), dict(kind="layer"),
                                    dict(image_shape=(3, 12, 12)), dict(parameterization="pixel"),
                                    dict(lr=0.1), dict(seed=1), dict(maximize=False),
                                    dict(transforms=None), dict(tv=0.1)])
def test_a_checkpoint_of_another_run_is_refused(tmp_path, change):
    model = relu_cnn()
    path = str(tmp_path / "run.npz")
    run = dict(layer="3", unit=1, image_shape=(3, 16, 16), steps=2, checkpoint=path,
               progress=False)
    explain.activation_maximization(model, **run)
    saved = (tmp_path / "run.npz").read_bytes()
    key = next(iter(change))
    with pytest.raises(ValueError, match=rf"checkpoint '.*run.npz' belongs to another run: "
                                         rf"it has {key}=.*this call has {key}="):
        explain.activation_maximization(model, **{**run, **change})
    assert (tmp_path / "run.npz").read_bytes() == saved          # left as it was


def test_a_checkpoint_beyond_steps_is_refused(tmp_path):
    model = relu_cnn()
    kw = dict(image_shape=(3, 16, 16), checkpoint=str(tmp_path / "run.npz"), progress=False)
    explain.activation_maximization(model, "3", 1, steps=6, **kw)
    with pytest.raises(ValueError, match=r"is at step 6, beyond steps=3"):
        explain.activation_maximization(model, "3", 1, steps=3, **kw)
    # the same unit given as np.int64 and the layer as a module is the same run
    again = explain.activation_maximization(model, model[3], np.int64(1), steps=6, **kw)
    assert len(again.history) == 6
