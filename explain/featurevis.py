"""Feature visualization by optimization (Olah et al. 2017): what input excites a unit?

The lecture's objectives, with h the activation of layer n at position (u, v), channel z:

    neuron    x* = argmax_x h_{n,u,v,z}(x)
    channel   x* = argmax_x sum_{u,v} h_{n,u,v,z}(x)
    layer     x* = argmax_x mean of h_n(x)^2           (DeepDream)
    class     x* = argmax_x S_c(x)                      (the pre-softmax logit, as recommended)

minimized instead with maximize=False (the lecture's "negative example").  Starting from
random noise, each step applies small changes (Adam on the image parameters).  Without care
the optimum is high-frequency noise; the regularizers that make it readable are

  * transformations applied inside the differentiable graph each step: padding, jitter
    (random shifts), random scaling and rotation, so the image must work under all of them
  * the parameterization: pixels, or a Fourier spectrum scaled by 1/frequency (which makes
    low frequencies cheap), with the colours decorrelated (a fixed 3x3 colour mixing)
  * optional penalties: L2, total variation and a blur penalty.

The lecture's other approach, "select training images", is ``top_examples``.
"""
import os
from dataclasses import dataclass, field

import numpy as np

import tinynet as tn
import tinynet.functional as F
from tinynet import optim

from ._common import (as_input, batches, capture, check_positive_int, frozen, model_dtype_device,
                      progress_bar, resolve_layer, to_numpy)

KINDS = ("neuron", "channel", "layer", "class")

# Square root of the colour correlation of ImageNet photos (Lucid's colour decorrelation):
# the optimizer works on decorrelated colour channels, which this mixes back into RGB.
COLOR_CORRELATION_SQRT = np.array([[0.26, 0.09, 0.02],
                                   [0.27, 0.00, -0.05],
                                   [0.27, -0.09, 0.03]])
COLOR_CORRELATION_SQRT = COLOR_CORRELATION_SQRT / np.max(
    np.linalg.norm(COLOR_CORRELATION_SQRT, axis=0))


# ---- parameterizations: parameter Tensor -> image in [0, 1] -----------------------------------

class _Parameterization:
    def __init__(self, shape, decorrelate, dtype, device):
        if len(shape) != 3:
            raise ValueError(f"shape must be (C, H, W), got {shape!r}")
        self.shape = tuple(int(s) for s in shape)
        self.decorrelate = decorrelate and self.shape[0] == 3
        self.dtype, self.device = np.dtype(dtype), device

    def _to_rgb(self, img):
        """(1, C, H, W) unbounded -> colours mixed (optional) -> sigmoid -> [0, 1]."""
        c, h, w = self.shape
        if self.decorrelate:
            mix = tn.tensor(COLOR_CORRELATION_SQRT.astype(self.dtype), device=self.device)
            img = (mix @ img.reshape(c, h * w)).reshape(1, c, h, w)
        return F.sigmoid(img)

    def __call__(self):
        return self.render(self.param)


class PixelImage(_Parameterization):
    """One parameter per pixel and channel: image = sigmoid(colour_mix(p))."""

    def __init__(self, shape, seed=None, init_std=1.0, decorrelate=True, dtype=np.float32,
                 device="cpu"):
        super().__init__(shape, decorrelate, dtype, device)
        rng = np.random.default_rng(seed)
        self.param = tn.tensor((init_std * rng.standard_normal((1,) + self.shape)).astype(dtype),
                               requires_grad=True, device=device)

    def render(self, param):
        return self._to_rgb(param)


class FourierImage(_Parameterization):
    """The image as a real Fourier series: p holds the real (A) and imaginary (B) parts of
    the spectrum over frequencies (f_y, f_x), 0 <= f_y < H, 0 <= f_x <= W/2, scaled by
    1 / max(|f|, 1/max(H, W))^decay_power.  With c/s the cosine/sine bases,

        image = C_h A C_w^T - S_h A S_w^T - C_h B S_w^T - S_h B C_w^T

    (the real part of the 2-D inverse DFT) as four matmuls, so the autograd is plain
    matmul backward."""

    def __init__(self, shape, seed=None, init_std=0.01, decay_power=1.0, decorrelate=True,
                 dtype=np.float32, device="cpu"):
        super().__init__(shape, decorrelate, dtype, device)
        c, h, w = self.shape
        wf = w // 2 + 1
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None, :]
        freq = np.sqrt(fy ** 2 + fx ** 2)
        scale = 1.0 / np.maximum(freq, 1.0 / max(h, w)) ** decay_power
        scale *= np.sqrt(h * w) / scale.sum() * 4           # keep pixel values O(1)
        ty = 2 * np.pi * np.arange(h)[:, None] * np.arange(h)[None, :] / h
        tx = 2 * np.pi * np.arange(w)[:, None] * np.arange(wf)[None, :] / w
        as_t = lambda a: tn.tensor(a.astype(dtype), device=device)
        self.ch, self.sh = as_t(np.cos(ty)), as_t(np.sin(ty))          # (H, H)
        self.cwt, self.swt = as_t(np.cos(tx).T), as_t(np.sin(tx).T)    # (Wf, W)
        self.scale = as_t(scale)
        rng = np.random.default_rng(seed)
        self.param = tn.tensor((init_std * rng.standard_normal((2, c, h, wf))).astype(dtype),
                               requires_grad=True, device=device)

    def render(self, param):
        a = param[0] * self.scale                           # (C, H, Wf)
        b = param[1] * self.scale
        img = (self.ch @ a @ self.cwt - self.sh @ a @ self.swt
               - self.ch @ b @ self.swt - self.sh @ b @ self.cwt)
        return self._to_rgb(img.reshape((1,) + self.shape))


# ---- transforms inside the graph ---------------------------------------------------------------

class Pad:
    """Constant padding by ``pixels`` on each side (grey 0.5), so jitter can shift the image."""

    def __init__(self, pixels, value=0.5):
        self.pixels, self.value = int(pixels), value

    def __call__(self, img, rng):
        p = self.pixels
        return F.pad(img, ((0, 0), (0, 0), (p, p), (p, p)), value=self.value) if p else img


class Jitter:
    """Random crop that shifts the image by up to ``pixels`` (the output is ``pixels`` smaller)."""

    def __init__(self, pixels):
        self.pixels = int(pixels)

    def __call__(self, img, rng):
        d = self.pixels
        if d <= 0:
            return img
        h, w = img.shape[2] - d, img.shape[3] - d
        oy, ox = (int(v) for v in rng.integers(0, d + 1, size=2))
        return img[:, :, oy:oy + h, ox:ox + w]


class RandomAffine:
    """Random scaling (a factor from ``scales``) and rotation (degrees from ``angles``) as
    one bilinear affine warp (F.affine_warp); differentiable in the image."""

    def __init__(self, scales=(0.95, 1.0, 1.05), angles=tuple(range(-10, 11))):
        self.scales, self.angles = tuple(scales), tuple(angles)

    def __call__(self, img, rng):
        s = float(rng.choice(self.scales))
        a = np.deg2rad(float(rng.choice(self.angles)))
        # theta maps output to input coordinates: rotate by a, zoom by s (inverse of both)
        theta = np.array([[[np.cos(a) / s, -np.sin(a) / s, 0.0],
                           [np.sin(a) / s, np.cos(a) / s, 0.0]]], dtype=img.dtype)
        theta = np.repeat(theta, img.shape[0], axis=0)
        return F.affine_warp(img, tn.tensor(theta, device=img.device))


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img, rng):
        for t in self.transforms:
            img = t(img, rng)
        return img


def default_transforms(size):
    """Lucid's standard robustness transforms, scaled to an image of side ``size``: pad by
    u, jitter by u, random scale and rotation, jitter by u again (u = size // 16, at least 1).
    The two jitters remove what the padding added, so the model sees the image's size."""
    unit = max(1, size // 16)
    return Compose([Pad(unit), Jitter(unit), RandomAffine(), Jitter(unit)])


# ---- penalties ---------------------------------------------------------------------------

def total_variation(img):
    """Mean absolute difference of neighbouring pixels (smaller = smoother)."""
    dy = img[:, :, 1:, :] - img[:, :, :-1, :]
    dx = img[:, :, :, 1:] - img[:, :, :, :-1]
    return F.abs(dy).mean() + F.abs(dx).mean()


def blur_penalty(img):
    """Mean squared difference to a 3x3 box-blurred copy (penalizes high frequencies)."""
    blurred = F.avg_pool2d(F.pad(img, ((0, 0), (0, 0), (1, 1), (1, 1)), value=0.5), 3, stride=1)
    return ((img - blurred) ** 2).mean()


# ---- the unit's value -------------------------------------------------------------------------

def unit_objective(model, layer, unit, kind="channel"):
    """A function images -> (N,) Tensor with the unit's value, h for the chosen kind:

    neuron   unit = (z, u, v): h[n, z, u, v] (or unit = j for a flat layer: h[n, j])
    channel  unit = z: sum over u, v of h[n, z, u, v]
    layer    unit ignored: mean over (z, u, v) of h^2
    class    unit = c: the logit S_c (layer ignored)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "class":
        if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or unit < 0:
            raise ValueError(f"kind='class' needs unit = a class index >= 0, got {unit!r}")

        def class_value(x):
            out = model(x)
            if unit >= out.shape[1]:
                raise ValueError(f"unit {unit} is out of range: the model has "
                                 f"{out.shape[1]} classes")
            return out[:, int(unit)]
        return class_value
    _, module = resolve_layer(model, layer, default=None)

    def value(x):
        with capture(module) as seen:
            model(x)
        if not seen:
            raise ValueError("the chosen layer was not called during the forward pass")
        h = seen[-1]
        return _select(h, unit, kind)
    return value


def _select(h, unit, kind):
    n = h.shape[0]
    if kind == "layer":
        return (h * h).reshape(n, -1).mean(axis=1)
    if kind == "neuron" and h.ndim == 4:
        if not (isinstance(unit, (tuple, list)) and len(unit) == 3):
            raise ValueError(f"kind='neuron' on a conv layer needs unit = (z, u, v), got {unit!r}")
        z, u, v = (int(i) for i in unit)
        if not (0 <= z < h.shape[1] and 0 <= u < h.shape[2] and 0 <= v < h.shape[3]):
            raise ValueError(f"unit {unit!r} is outside the layer's (channels, U, V) = "
                             f"{tuple(h.shape[1:])}")
        return h[:, z, u, v]
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)):
        raise ValueError(f"kind={kind!r} needs unit = a channel index (int), got {unit!r}")
    if not 0 <= unit < h.shape[1]:
        raise ValueError(f"unit {unit} is out of range: the layer has {h.shape[1]} channels")
    if h.ndim == 2:
        return h[:, int(unit)]
    return h[:, int(unit)].reshape(n, -1).sum(axis=1)


# ---- the optimization -------------------------------------------------------------------------

@dataclass
class ActMaxResult:
    image: np.ndarray                  # (C, H, W) in [0, 1], the final x*
    snapshots: dict                    # {step: image} at the requested steps
    activation: float                  # the unit's value on the final image (untransformed)
    start_activation: float            # ... on the starting noise
    history: list = field(default_factory=list)   # the objective at each step


def activation_maximization(model, layer, unit, kind="channel", maximize=True, steps=2048,
                            image_shape=(3, 64, 64), parameterization="fourier", lr=0.05,
                            transforms="default", l2=0.0, tv=0.0, blur=0.0,
                            snapshot_steps=(0, 4, 48, 2048), seed=0, preprocess=None,
                            checkpoint=None, checkpoint_every=100, progress=True):
    """Optimize an image so that the unit's value h is as large (or small) as possible:

        x* = argmax_x  h(t(x)) - l2 mean((x - 0.5)^2) - tv TV(x) - blur B(x)

    by Adam on the image's parameters (x = render(param), Fourier or pixel), with a random
    transform t (jitter, scale, rotate) drawn anew at every step; argmin for maximize=False.

    layer, unit, kind  what to excite (see ``unit_objective``); kind='class' ignores layer
    maximize           False: minimize h (the lecture's negative example)
    steps              Adam steps
    image_shape        (C, H, W) of the image
    parameterization   'fourier' or 'pixel' (both with colour decorrelation for 3 channels)
    transforms         'default' (pad, jitter, scale, rotate, jitter), None, or a callable
                       (image Tensor, numpy Generator) -> image Tensor
    l2, tv, blur       weights of the penalties (mean (x - 0.5)^2, total variation, blur)
    snapshot_steps     keep the image after these numbers of steps (the lecture's figure)
    preprocess         optional function image in [0, 1] -> model input (e.g. normalization)
    checkpoint         a path: the state is saved there every ``checkpoint_every`` steps
                       (tn.save, .npz) and a run with the same path resumes from it (with
                       the random transforms' generator where it stopped, so the result
                       equals an uninterrupted run).  The checkpoint records the settings
                       that define the run (layer, unit, kind, maximize, image_shape,
                       parameterization, lr, transforms, l2, tv, blur, seed, dtype); resuming
                       with other settings, or with fewer ``steps`` than it holds, raises
                       ValueError.  Not recorded: the model's weights, ``preprocess`` and
                       which callable ``transforms`` is.
    """
    steps = check_positive_int(steps, "steps", minimum=0)
    if parameterization not in ("fourier", "pixel"):
        raise ValueError(f"parameterization must be 'fourier' or 'pixel', got {parameterization!r}")
    objective = unit_objective(model, layer, unit, kind)
    dtype, device = model_dtype_device(model)
    dtype = dtype or np.float32
    config = _run_settings(model, layer, unit, kind, maximize, image_shape, parameterization,
                           lr, transforms, l2, tv, blur, seed, dtype)
    make = FourierImage if parameterization == "fourier" else PixelImage
    image = make(image_shape, seed=seed, dtype=dtype, device=device)
    if transforms == "default":
        transforms = default_transforms(min(image_shape[1:]))
    sign = 1.0 if maximize else -1.0
    rng = np.random.default_rng(seed + 1)
    prep = preprocess or (lambda x: x)

    def value_now():
        with tn.no_grad(), frozen(model):
            return float(to_numpy(objective(prep(image())))[0])

    opt = optim.Adam([image.param], lr=lr)
    store = _Checkpoint(checkpoint, config, checkpoint_every)
    run = store.restore(image, opt, rng, steps) or _RunState(start_activation=value_now(),
                                                             rng_state=rng.bit_generator.state)
    wanted = {int(s) for s in snapshot_steps if 0 <= int(s) <= steps}
    bar = progress_bar(steps - len(run.history), "actmax", progress)
    try:
        with tn.enable_grad(), frozen(model):     # also inside a caller's no_grad()
            for step in range(len(run.history), steps + 1):
                if step in wanted and step not in run.snapshots:
                    with tn.no_grad():
                        run.snapshots[step] = to_numpy(image())[0]
                if step == steps:
                    break
                opt.zero_grad()
                img = image()
                seen = transforms(img, rng) if transforms is not None else img
                h = objective(prep(seen)).mean()
                loss = -sign * h
                if l2:
                    loss = loss + l2 * ((img - 0.5) ** 2).mean()
                if tv:
                    loss = loss + tv * total_variation(img)
                if blur:
                    loss = loss + blur * blur_penalty(img)
                loss.backward()
                opt.step()
                run.history.append(float(to_numpy(h)))
                run.rng_state = rng.bit_generator.state
                bar.update(1)
                store.maybe_save(run, image, opt)
    except KeyboardInterrupt:          # keep what was done; the same call resumes from it
        store.save(run, image, opt)
        raise
    finally:
        bar.close()
    store.save(run, image, opt)
    with tn.no_grad():
        final = to_numpy(image())[0]
    return ActMaxResult(image=final, snapshots=dict(sorted(run.snapshots.items())),
                        activation=value_now(), start_activation=run.start_activation,
                        history=run.history)


# ---- checkpoints of a run ------------------------------------------------------------------

@dataclass
class _RunState:
    """What a run has done so far: the objective per finished step, the snapshots, the
    starting value and the transforms' generator state after the last finished step."""
    start_activation: float
    history: list = field(default_factory=list)
    snapshots: dict = field(default_factory=dict)
    rng_state: dict = None


class _Checkpoint:
    """A run's state in one .npz file (tn.save, atomic), or nothing when ``path`` is None.

    ``restore`` loads it into the image, optimizer and generator (after checking that it
    is a checkpoint of the same run); ``maybe_save`` writes it every ``every`` steps;
    ``save`` writes it now (on Ctrl-C and at the end)."""

    def __init__(self, path, config, every):
        self.path, self.config, self.every = path, config, every

    def restore(self, image, opt, rng, steps):
        """The saved _RunState (image, optimizer and rng set to it), or None to start anew."""
        if self.path is None or not os.path.exists(self.path):
            return None
        state = tn.load(self.path)
        _check_resumable(state, self.path, self.config, steps)
        image.param.data[...] = tn.tensor(state["param"], device=image.param.device).data
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        history = [float(h) for h in np.asarray(state["history"]).ravel()]
        return _RunState(start_activation=float(state["start_activation"]),
                         history=history[:int(state["step"])],
                         snapshots={int(k): np.asarray(v)
                                    for k, v in state["snapshots"].items()},
                         rng_state=state["rng"])

    def maybe_save(self, run, image, opt):
        if len(run.history) % self.every == 0:
            self.save(run, image, opt)

    def save(self, run, image, opt):
        if self.path is None:
            return
        tn.save({"param": image.param.numpy(), "step": len(run.history),
                 "history": np.array(run.history, dtype=np.float64),
                 "start_activation": float(run.start_activation),
                 "snapshots": {str(k): v for k, v in run.snapshots.items()},
                 "optimizer": opt.state_dict(), "rng": run.rng_state, "config": self.config},
                self.path)


def _run_settings(model, layer, unit, kind, maximize, image_shape, parameterization, lr,
                  transforms, l2, tv, blur, seed, dtype):
    """The settings that define an optimization run, as plain strings for the checkpoint."""
    layer_name = None if kind == "class" else resolve_layer(model, layer, default=None)[0]
    if isinstance(transforms, str) or transforms is None:
        transforms_kind = transforms
    else:
        transforms_kind = "custom"
    settings = dict(layer=layer_name, unit=unit, kind=kind, maximize=bool(maximize),
                    image_shape=image_shape, parameterization=parameterization, lr=lr,
                    transforms=transforms_kind, l2=l2, tv=tv, blur=blur, seed=seed,
                    dtype=str(np.dtype(dtype)))
    # tolist(): (2, 3, 1) and [2, 3, 1], 3 and np.int64(3) are the same setting
    return {k: repr(np.asarray(v).tolist()) for k, v in settings.items()}


def _check_resumable(state, path, config, steps):
    """Raise before anything is loaded when the checkpoint at ``path`` is of another run."""
    saved = state.get("config")
    if not isinstance(saved, dict) or "rng" not in state:
        raise ValueError(f"checkpoint '{path}' does not record the settings of its run (not "
                         f"written by activation_maximization?); use another path or delete it")
    for key, value in config.items():
        if saved.get(key) != value:
            raise ValueError(f"checkpoint '{path}' belongs to another run: it has {key}="
                             f"{saved.get(key)}, this call has {key}={value}; use another "
                             f"checkpoint path or delete the file")
    if int(state["step"]) > steps:
        raise ValueError(f"checkpoint '{path}' is at step {int(state['step'])}, beyond "
                         f"steps={steps}; ask for steps >= {int(state['step'])} or use "
                         f"another checkpoint path")


def top_examples(model, layer, unit, dataset, k=9, kind="channel", batch_size=64):
    """The lecture's "select training images": the k inputs of ``dataset`` with the largest
    unit value.  dataset: an (N, C, H, W) array/Tensor.  Returns (indices, values), best first."""
    k = check_positive_int(k, "k")
    objective = unit_objective(model, layer, unit, kind)
    xt = as_input(dataset, model, image=True)
    values = []
    with tn.no_grad(), frozen(model):
        for a, b in batches(xt.shape[0], batch_size):
            values.append(to_numpy(objective(tn.Tensor(xt.data[a:b]))))
    values = np.concatenate(values)
    order = np.argsort(-values, kind="stable")[:k]
    return order, values[order]
