"""The explanation half of ``python -m demos.imagenet_subset``: the lecture's figures for the
CNN the demo just trained (called by it; see that module's docstring).

Figures (PNG, in OUT):
  grid.png                  input / vanilla gradient / SmoothGrad / Grad-CAM / occlusion for
                            correctly and wrongly classified validation photos
  gradcam_two_classes.png   two photos of different classes side by side, Grad-CAM per class
  actmax.png                activation maximization (early and late conv channels, class
                            logits maximized and minimized) beside the 9 most activating photos
  tcav.png                  TCAV of striped / dotted / zigzagged for two classes at two layers
  sanity_randomization.png  cascading model-parameter randomization (Adebayo et al.)
  sanity_deletion_insertion.png  deletion and insertion curves of the attribution methods
"""
import os
import time
from dataclasses import dataclass, field

import numpy as np

import tinynet as tn
import tinynet.functional as F

import explain
from explain import plot
from explain.tcav import layer_activations

EARLY_CONV, LATE_CONV = "features.4", "features.12"        # 2nd and 4th conv of imagenette_cnn
TCAV_LAYERS = {"features.11": "block 3, pooled\n(features.11, 128x8x8)",
               "pool": "block 4, averaged\n(pool, 256)"}      # small D: fast CAVs
TCAV_CLASSES = ("golf ball", "parachute")
CONCEPTS = ("striped", "dotted", "zigzagged")


@dataclass
class Layers:
    """The layers of the explained model that the figures address (defaults: imagenette_cnn;
    ``demos/imagenet_pretrained.py`` names a MobileNet's)."""
    early: str = EARLY_CONV               # activation maximization: an early layer's channels
    early_label: str = "conv 2"
    late: str = LATE_CONV                 # ... a late layer's channels; Grad-CAM's A^k
    late_label: str = "conv 4"
    tcav: dict = field(default_factory=lambda: dict(TCAV_LAYERS))   # {name: plot label}
    randomize: list = None                # cascading randomization, top down; None: every
                                          # layer with parameters


def add_arguments(parser):
    g = parser.add_argument_group("explanations")
    g.add_argument("--explain-images", type=int, default=8,
                   help="validation photos in the grid (about 3 of them misclassified)")
    g.add_argument("--smoothgrad-samples", type=int, default=25, help="SmoothGrad n")
    g.add_argument("--actmax-steps", type=int, default=64,
                   help="activation-maximization steps (the lecture's figure: 2048)")
    g.add_argument("--full-actmax", action="store_true",
                   help="2048 activation-maximization steps (snapshots 0, 4, 48, 2048)")
    g.add_argument("--tcav-randoms", type=int, default=10,
                   help="random sets for TCAV (each a CAV; at least 3)")
    g.add_argument("--tcav-images", type=int, default=None,
                   help="use only the first N images of each concept and random set "
                        "(default: all, 120 and 99 in the shared sets)")
    g.add_argument("--concepts", default=None,
                   help="TCAV concept folder (default: ../shared/data/concepts/<image-size>)")
    g.add_argument("--randoms", default=None,
                   help="TCAV random-set folder (default: ../shared/data/random/<image-size>)")


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _titles(idx, val_y, probs, names):
    pred = probs.argmax(axis=1)
    out = []
    for i in idx:
        verdict = "correct" if pred[i] == val_y[i] else "WRONG"
        out.append(f"true: {names[val_y[i]]}\npred: {names[pred[i]]}\n"
                   f"p = {probs[i, pred[i]]:.0%} ({verdict})")
    return out


def pick_grid_images(val_y, probs, n):
    """About n - n//3 confidently correct photos of different classes, then the n//3 most
    confidently wrong ones (at least 2 when there are that many)."""
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    wrong = np.flatnonzero(pred != val_y)
    n_wrong = min(len(wrong), max(2, n // 3))
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")][:n_wrong]
    right, seen = [], set()
    for i in np.argsort(-conf, kind="stable"):
        if pred[i] == val_y[i] and val_y[i] not in seen:
            right.append(i)
            seen.add(val_y[i])
        if len(right) == n - n_wrong:
            break
    return np.array(right + list(wrong), dtype=int)


def _display(images_uint8):
    return images_uint8.astype(np.float32) / 255.0


def run(args, model, val_x, val_y, probs, normalize, names, figures, layers=None):
    """Make every figure into ``figures`` ({key: path}); returns the metrics to add.

    val_x    uint8 (N, 3, H, W) photos; normalize(val_x) is the model's input
    val_y    each photo's class as an index of the model's output
    probs    (N, K) the model's class probabilities; names: the K class names
    layers   ``Layers`` (default: imagenette_cnn's)"""
    layers = layers or Layers()
    out, metrics = args.out, {}
    phases, clock = {}, [time.perf_counter()]

    def done(phase):                  # one line per figure, so a long phase shows progress
        now = time.perf_counter()
        phases[phase] = now - clock[0]
        clock[0] = now
        print(f"explain: {phase} done in {phases[phase]:.0f} s", flush=True)

    metrics["explain_seconds"] = phases
    model.eval()
    pred = probs.argmax(axis=1)
    mean = normalize.mean.reshape(1, 3, 1, 1)
    std = normalize.std.reshape(1, 3, 1, 1)

    # ---- 1. the grid: gradient methods vs occlusion -----------------------------------
    idx = pick_grid_images(val_y, probs, args.explain_images)
    x, target = normalize(val_x[idx]), pred[idx]
    n = len(idx)
    # occlusion: a window of 1/8 of the photo's side, moved by half of it (8x8, stride 4 at 64 px)
    window = max(1, val_x.shape[2] // 8)
    stride = max(1, window // 2)
    occ_name = f"occlusion\n{window}x{window}, stride {stride}"
    vanilla, t_vanilla = _timed(lambda: explain.vanilla_gradient(model, x, target))
    smooth, t_smooth = _timed(lambda: explain.smoothgrad(
        model, x, target, n_samples=args.smoothgrad_samples, noise_level=0.15,
        seed=args.seed, progress=False))
    cam, t_cam = _timed(lambda: explain.grad_cam(model, x, target, layer=layers.late))
    occ, t_occ = _timed(lambda: explain.occlusion(model, x, target, (3, window, window),
                                                  strides=stride,
                                                  baselines=0.0, batch_size=128))
    occ_map = np.maximum(occ[:, 0], 0)        # the drop of S_c (the same in all channels)
    seconds = {"vanilla_gradient": t_vanilla / n, "smoothgrad": t_smooth / n,
               "grad_cam": t_cam / n, "occlusion": t_occ / n}
    metrics["method_seconds_per_image"] = seconds
    metrics["occlusion_vs_vanilla_time"] = seconds["occlusion"] / seconds["vanilla_gradient"]
    metrics["method_settings"] = {
        "smoothgrad": {"n_samples": args.smoothgrad_samples, "noise_level": 0.15},
        "grad_cam": {"layer": layers.late},
        "occlusion": {"sliding_window_shapes": [3, window, window], "strides": stride,
                      "baselines": "0 (the mean colour after normalisation)"}}
    metrics["grid_images"] = [{"index": int(i), "true": names[val_y[i]], "pred": names[pred[i]],
                               "prob": float(probs[i, pred[i]])} for i in idx]
    figures["grid"] = plot.method_grid(
        _display(val_x[idx]),
        {"vanilla\ngradient": vanilla, f"SmoothGrad\n(n={args.smoothgrad_samples})": smooth,
         "Grad-CAM": cam, occ_name: occ_map},
        os.path.join(out, "grid.png"), titles=_titles(idx, val_y, probs, names),
        overlay_rows=("Grad-CAM", occ_name))
    done("grid")

    # ---- 2. Grad-CAM for two classes on one image -----------------------------------------
    a_cls, b_cls = _two_classes(names, val_y)
    a = _most_confident(val_y, probs, a_cls)
    b = _most_confident(val_y, probs, b_cls)
    pair = np.concatenate([val_x[a], val_x[b]], axis=2)[None]   # side by side: (1, 3, H, 2W)
    pair_in = normalize(pair)
    cams = {f"Grad-CAM for '{names[c]}'": explain.grad_cam(model, pair_in, c, layer=layers.late)[0]
            for c in (a_cls, b_cls)}
    with tn.no_grad():
        p_pair = F.softmax(model(tn.tensor(pair_in)), axis=1).numpy()[0]
    figures["gradcam_two_classes"] = plot.two_class_cam(
        _display(pair[0]), cams, os.path.join(out, "gradcam_two_classes.png"),
        title=f"two validation photos side by side: P({names[a_cls]}) = {p_pair[a_cls]:.0%}, "
              f"P({names[b_cls]}) = {p_pair[b_cls]:.0%}")
    done("Grad-CAM for two classes")

    # ---- 3. activation maximization beside the most activating photos --------------------
    steps = 2048 if args.full_actmax else args.actmax_steps
    metrics["actmax_steps"] = steps
    figures["actmax"] = _actmax(model, val_x, val_y, normalize, names, steps, args.seed,
                                os.path.join(out, "actmax.png"), mean, std, layers)
    done("activation maximization")

    # ---- 4. TCAV ----------------------------------------------------------------------------
    tcav_results, tcav_path = _tcav(args, model, val_x, val_y, normalize, names, out,
                                    layers.tcav)
    if tcav_path is not None:
        figures["tcav"] = tcav_path
        metrics["tcav"] = tcav_results
    done("TCAV")

    # ---- 5. sanity checks ---------------------------------------------------------------------
    k = min(4, n)
    sg = lambda m, xx, t: explain.smoothgrad(m, xx, t, n_samples=10, seed=0, progress=False)
    methods = {"vanilla gradient": explain.vanilla_gradient, "SmoothGrad (n=10)": sg,
               "Grad-CAM": lambda m, xx, t: explain.grad_cam(m, xx, t, layer=layers.late)}
    randomization = {name: explain.model_parameter_randomization(model, x[:k], target[:k], fn,
                                                                 layers=layers.randomize)
                     for name, fn in methods.items()}
    figures["sanity_randomization"] = plot.randomization_check(
        randomization, os.path.join(out, "sanity_randomization.png"),
        title=f"randomization check on {k} validation photos")
    maps = {"vanilla gradient": explain.channel_max(vanilla),
            f"SmoothGrad (n={args.smoothgrad_samples})": explain.channel_max(smooth),
            "Grad-CAM": cam, "occlusion": occ_map,
            "random map": np.random.default_rng(0).random(cam.shape)}
    deletion = {m: explain.deletion_curve(model, x, target, v) for m, v in maps.items()}
    insertion = {m: explain.insertion_curve(model, x, target, v) for m, v in maps.items()}
    figures["sanity_deletion_insertion"] = plot.deletion_insertion(
        deletion, insertion, os.path.join(out, "sanity_deletion_insertion.png"),
        title=f"{n} validation photos (the grid's), predicted class")
    metrics["sanity"] = {
        "randomization": {m: {"layers": r.layers, "correlations": r.correlations.tolist(),
                              "passed": r.passed} for m, r in randomization.items()},
        "deletion_auc": {m: float(c.auc.mean()) for m, c in deletion.items()},
        "insertion_auc": {m: float(c.auc.mean()) for m, c in insertion.items()},
    }
    done("sanity checks")
    return metrics


def _two_classes(names, val_y):
    """Golf ball and parachute when the photos have both, else the first two classes in them."""
    present = [int(c) for c in np.unique(val_y)]
    wanted = [names.index(c) for c in TCAV_CLASSES if c in names and names.index(c) in present]
    return tuple(wanted) if len(wanted) == 2 else tuple(present[:2])


def _most_confident(val_y, probs, c):
    pool = np.flatnonzero((val_y == c) & (probs.argmax(axis=1) == c))
    if not len(pool):
        pool = np.flatnonzero(val_y == c)
    return pool[np.argmax(probs[pool, c])]


def _actmax(model, val_x, val_y, normalize, names, steps, seed, path, mean, std, layers):
    """Rows: 2 channels of an early and 2 of a late conv layer (those most active on average
    over the validation sample), then two class logits maximized and minimized."""
    sample = normalize(val_x[np.random.default_rng(seed).permutation(len(val_x))[:512]])
    mean_t, std_t = tn.tensor(mean), tn.tensor(std)
    preprocess = lambda img: (img - mean_t) / std_t           # [0, 1] image -> model input
    settings = dict(steps=steps, image_shape=(3,) + val_x.shape[2:],
                    snapshot_steps=sorted({0, 4, 48, steps} & set(range(steps + 1))),
                    seed=seed, preprocess=preprocess, progress=False)
    rows = []
    for layer, label in ((layers.early, layers.early_label), (layers.late, layers.late_label)):
        acts = layer_activations(model, layer, sample)     # (N, C * U * V)
        n_channels = [m.out_channels for m in dict(model.named_modules())[layer].modules()
                      if hasattr(m, "out_channels")][-1]   # a conv, or the last in a block
        mean_act = acts.reshape(len(sample), n_channels, -1).mean(axis=(0, 2))
        for ch in np.argsort(-mean_act)[:2]:
            r = explain.activation_maximization(model, layer, int(ch), kind="channel", **settings)
            top, _ = explain.top_examples(model, layer, int(ch), sample, k=9)
            rows.append({"label": f"{label} ({layer})\nchannel {ch}, max", "snapshots": r.snapshots,
                         "examples": _unnormalize(sample[top], mean, std)})
    with tn.no_grad():
        logits = np.concatenate([model(tn.tensor(sample[i:i + 256])).numpy()
                                 for i in range(0, len(sample), 256)])
    for c in _two_classes(names, val_y):
        for maximize in (True, False):
            r = explain.activation_maximization(model, None, c, kind="class", maximize=maximize,
                                                **settings)
            order = np.argsort(-logits[:, c] if maximize else logits[:, c], kind="stable")[:9]
            rows.append({"label": f"logit '{names[c]}'\n{'max' if maximize else 'min'}imized",
                         "snapshots": r.snapshots,
                         "examples": _unnormalize(sample[order], mean, std)})
    return plot.actmax_with_examples(
        rows, path, title=f"activation maximization: {steps} Adam steps (Fourier image, random "
                          "jitter/scale/rotation);\nright: the 9 validation photos with the "
                          "largest value (for 'minimized': the smallest)")


def _unnormalize(x, mean, std):
    return np.clip(x * std + mean, 0, 1)


def _tcav(args, model, val_x, val_y, normalize, names, out, tcav_layers):
    """TCAV of the texture concepts for two classes at two layers; (metrics, figure path)."""
    from demos.imagenet_subset import SHARED_DATA
    shared = os.path.dirname(os.path.normpath(SHARED_DATA))
    size = str(args.image_size)
    concepts_dir = args.concepts or os.path.join(shared, "concepts", size)
    randoms_dir = args.randoms or os.path.join(shared, "random", size)
    if not (os.path.isdir(concepts_dir) and os.path.isdir(randoms_dir)):
        print(f"TCAV skipped: no concept images at '{concepts_dir}' or random sets at "
              f"'{randoms_dir}' (pass --concepts and --randoms)")
        return None, None
    from demos.imagenet_subset import load_split          # decodes only the images used
    size, per_set = val_x.shape[2:], args.tcav_images
    images, labels, folders = load_split(concepts_dir, None, per_set, progress=False, size=size)
    concepts = {c: normalize(images[labels == folders.index(c)]) for c in CONCEPTS
                if c in folders}
    images, labels, folders = load_split(randoms_dir, args.tcav_randoms, per_set,
                                         progress=False, size=size)
    randoms = [normalize(images[labels == k]) for k in range(len(folders))]
    results, by_class = {}, {}
    for c in _two_classes(names, val_y):
        class_inputs = normalize(val_x[val_y == c][:150])
        # the cache lets the second class reuse the activations and CAVs of the first
        res = explain.tcav(model, list(tcav_layers), int(c), concepts, randoms, class_inputs,
                           cache_dir=os.path.join(out, "tcav_cache"), progress=False)
        for (concept, layer), r in res.items():
            results.setdefault(names[c], {}).setdefault(concept, {})[layer] = {
                "score": float(r.score), "score_std": float(np.std(r.scores)),
                "scores": np.asarray(r.scores).tolist(), "p_value": float(r.p_value),
                "significant": bool(r.significant)}
        by_class[f"class '{names[c]}'"] = res
    path = plot.tcav_bars(by_class, os.path.join(out, "tcav.png"), layer_labels=tcav_layers,
                          title=f"TCAV of texture concepts vs {len(randoms)} random sets")
    return results, path
