"""``python -m demos.imagenet_subset --pretrained NAME_OR_PATH``: explain a MobileNet pretrained
on all of ImageNet instead of training a CNN (called by that module's ``main``).

    python -m demos.imagenet_subset --pretrained mobilenet_v2            # = mobilenet_v2_1.0_224
    python -m demos.imagenet_subset --pretrained mobilenet_v1_0.25_128   # the smallest, fastest
    python -m demos.imagenet_subset --pretrained path/to/model.tflite

1. Weights.  A path is read as it is.  A name of ``tinynet.models.PRETRAINED`` (or the alias
   ``mobilenet_v2``) is read from ../shared/data/models when that folder is there, else
   downloaded once from its public location into the cache ($TINYNET_CACHE or
   ~/.cache/tinynet, subfolder models/) with a progress bar and its sha256 checked
   (``tinynet.download``).  The class names come from imagenet_labels.txt (1001 lines,
   index 0 = background), found next to the weights, in ../shared/data/models, or downloaded.
2. Photos.  The Imagenette validation photos (128 px by default, ``--image-size``), each
   resized with Pillow's bilinear filter to the model's input (e.g. 224 x 224) and fed as
   (x - 128) / 128, as in docs/pretrained.md and benchmarks/eval_pretrained.py.  The model
   has 1001 outputs; a photo is right when the argmax over the 1000 ImageNet classes
   (background left out) is its class's ImageNet index (imagenette10/classes.tsv).
3. The explanation figures of ``demos/imagenet_explain.py`` for the model's 1000-class
   predictions: targets are ImageNet classes, titles their ImageNet names.  Grad-CAM uses the
   last feature layer, activation maximization the channels of block 3 and of that last
   layer and the logits of two Imagenette classes' ImageNet indices, TCAV the last block and
   the average pool (small enough for the CAVs to train quickly), the randomization check
   randomizes one block at a time from the classifier down.

metrics.json holds the 1000-way top-1 on the photos used instead of training metrics.
"""
import json
import os
import sys
import time

import numpy as np

import tinynet as tn
from tinynet import data, download, models
from tinynet.mobilenet import LABELS, Block

from demos import imagenet_explain
from demos.imagenet_subset import (SHARED_DATA, _cpu_name, _json_default, class_names,
                                   load_split, predict_probabilities, resolve_data_dir)

SHARED_MODELS = os.path.normpath(os.path.join(SHARED_DATA, "..", "models"))
ALIASES = {"mobilenet_v2": "mobilenet_v2_1.0_224"}        # the only v2; v1 comes in 3 widths
# ImageNet-1k index of each Imagenette class, for copies whose classes.tsv lacks the column
IMAGENET_INDEX = {"n01440764": 0, "n02102040": 217, "n02979186": 482, "n03000684": 491,
                  "n03028079": 497, "n03394916": 566, "n03417042": 569, "n03425413": 571,
                  "n03445777": 574, "n03888257": 701}


def known_names():
    """'name, name, ...' of the models --pretrained accepts, aliases included."""
    return ", ".join(list(models.PRETRAINED) + [f"{a} (= {n})" for a, n in ALIASES.items()])


def resolve_weights(name_or_path, models_dir=None, progress=True):
    """The path of the .tflite file for --pretrained: a path as it is (it must exist); a name
    in ``models_dir`` (default: SHARED_MODELS) if it is there, else downloaded into the cache
    and checked.

    Raises FileNotFoundError (no such file), ValueError (unknown name, listing the known
    ones) or ConnectionError (no network: the message says how to pass a local file)."""
    looks_like_path = (name_or_path.lower().endswith(".tflite") or os.sep in name_or_path
                       or os.path.exists(name_or_path))
    if looks_like_path:
        if not os.path.isfile(name_or_path):
            raise FileNotFoundError(f"--pretrained: no file at '{name_or_path}'")
        return name_or_path
    name = ALIASES.get(name_or_path, name_or_path)
    if name not in models.PRETRAINED:
        raise ValueError(f"--pretrained: unknown model '{name_or_path}'; known names: "
                         f"{known_names()}; or the path of a .tflite file")
    entry = models.PRETRAINED[name]
    local = os.path.join(models_dir or SHARED_MODELS, entry["file"])
    if os.path.isfile(local):
        return local
    return _fetch(entry, progress, f"download {entry['file']} elsewhere ({entry['url']}) and "
                                   f"pass its path: --pretrained PATH/{entry['file']}")


def resolve_labels(weights_path, models_dir=None, progress=True):
    """imagenet_labels.txt next to the weights, in ``models_dir`` (default: SHARED_MODELS), or
    downloaded (checked)."""
    for folder in (os.path.dirname(os.path.abspath(weights_path)), models_dir or SHARED_MODELS):
        path = os.path.join(folder, LABELS["file"])
        if os.path.isfile(path):
            return path
    return _fetch(LABELS, progress, f"put {LABELS['file']} (1001 lines, line 0 'background'; "
                                    f"{LABELS['url']}) next to the .tflite file")


def _fetch(entry, progress, hint):
    """A PRETRAINED (or LABELS) entry's file, downloaded once into the cache's models/."""
    return download.fetch(entry["url"], sha256=entry["sha256"], progress=progress, hint=hint,
                          cache_dir=os.path.join(download.cache_dir(), "models"))


def imagenet_indices(data_dir, wnids):
    """The ImageNet-1k index of each class (WordNet ID), from the imagenet1k_index column of
    classes.tsv (next to or above the data folder) when there is one, else IMAGENET_INDEX."""
    table = dict(IMAGENET_INDEX)
    for folder in (data_dir, os.path.dirname(os.path.normpath(data_dir))):
        path = os.path.join(folder, "classes.tsv")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                header, *rows = [line.rstrip("\n").split("\t") for line in f]
            if "imagenet1k_index" in header:
                col = header.index("imagenet1k_index")
                table.update({r[0]: int(r[col]) for r in rows if len(r) > col})
            break
    missing = [w for w in wnids if w not in table]
    if missing:
        raise ValueError(f"--pretrained: no ImageNet index for the classes {missing} (add an "
                         "imagenet1k_index column to classes.tsv)")
    return [table[w] for w in wnids]


class TFLiteInput(data.BatchNormalize):
    """uint8 (N, 3, H, W) -> the file's input quantization scale * (x - zero_point), e.g.
    (x - 128) / 128, computed as ``models.mobilenet_input`` does.  It is a BatchNormalize with
    mean = zero_point / 255 and std = 1 / (255 scale) in [0, 1] units, which is how the
    activation maximization maps its [0, 1] images into the model."""

    def __init__(self, scale=1 / 128, zero_point=128):
        super().__init__([zero_point / 255] * 3, [1 / (255 * scale)] * 3)
        self.scale, self.zero_point = np.float32(scale), np.float32(zero_point)

    def __call__(self, images):
        images = np.asarray(images)
        if images.dtype != np.uint8:
            return super().__call__(images)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"TFLiteInput: expected (N, 3, H, W) uint8 images, got shape "
                             f"{images.shape}")
        return (images.astype(np.float32) - self.zero_point) * self.scale


def mobilenet_layers(model, photo):
    """imagenet_explain.Layers for a MobileNet from ``load_tflite`` (layer names in
    tinynet/mobilenet.py); ``photo`` (1, 3, H, W), one model input, gives the plot labels
    the layers' output shapes."""
    names = [f"features.{k}" for k in range(len(model.features))]
    blocks = [n for n, m in zip(names, model.features) if isinstance(m, Block)]
    shapes, handles = {}, []
    modules = dict(model.named_modules())
    for name in names + ["pool"]:
        def hook(module, inputs, output, name=name):
            shapes[name] = "x".join(str(d) for d in output.shape[1:])
        handles.append(modules[name].register_forward_hook(hook))
    try:
        with tn.no_grad():
            model(tn.tensor(photo))
    finally:
        for h in handles:
            h.remove()
    last, last_block = names[-1], blocks[-1]
    late_label = (f"block {last.split('.')[1]}" if isinstance(modules[last], Block)
                  else "last 1x1 conv")
    return imagenet_explain.Layers(
        early="features.3", early_label="block 3", late=last, late_label=late_label,
        tcav={last_block: f"last block\n({last_block}, {shapes[last_block]})",
              "pool": f"averaged\n(pool, {shapes['pool'].split('x')[0]})"},
        randomize=["classifier"] + names[::-1])


def run(args, started):
    """The --pretrained path of ``demos.imagenet_subset.main``; returns the metrics."""
    args.image_size = args.image_size or 128
    try:
        weights = resolve_weights(args.pretrained)
        labels_path = resolve_labels(weights)
        model = models.load_tflite(weights)
    except (ValueError, OSError, ConnectionError) as exc:     # TFLiteError is a ValueError
        sys.exit(f"imagenet_subset: {exc}")
    if args.device != "cpu":
        model.to(args.device)
    labels = models.read_labels(labels_path)
    if len(labels) != 1001:
        sys.exit(f"imagenet_subset: '{labels_path}' has {len(labels)} lines, expected 1001 "
                 "(background, then the 1000 ImageNet classes)")
    names = [label.split(",")[0] for label in labels]      # 'tench, Tinca tinca' -> 'tench'
    data_dir = resolve_data_dir(args, splits=("val",))

    t0 = time.time()
    val_x, val_labels, wnids = load_split(os.path.join(data_dir, "val"), args.classes,
                                          args.val_per_class, size=model.input_size)
    decode_seconds = time.time() - t0
    indices = imagenet_indices(data_dir, wnids)
    val_y = np.asarray(indices)[val_labels] + 1            # logit index: 0 is background
    normalize = TFLiteInput(model.input_scale or 1 / 128, model.input_zero_point or 128)
    print(f"model: {args.pretrained} ({weights}), input {model.input_size}; "
          f"data: {len(val_x)} validation photos of {len(wnids)} classes from {data_dir}, "
          f"resized to the input (decoded in {decode_seconds:.1f} s)", flush=True)

    t0 = time.time()
    p = predict_probabilities(model, val_x, normalize, batch_size=32, flip=False,
                              device=args.device, progress=True)
    probs = np.zeros_like(p)            # 1000-way: the softmax over the ImageNet classes only
    probs[:, 1:] = p[:, 1:] / p[:, 1:].sum(axis=1, keepdims=True)
    eval_seconds = time.time() - t0
    pred = probs.argmax(axis=1)
    correct = pred == val_y
    readable = class_names(data_dir, wnids)
    metrics = {
        "model": args.pretrained, "weights": os.path.abspath(weights),
        "input_size": list(model.input_size),
        "val_top1": float(correct.mean()), "val_correct": int(correct.sum()),
        "top1_definition": "argmax over the 1000 ImageNet classes (background left out) equals "
                           "the photo's ImageNet index; no test-time flip",
        "per_class_top1": {readable[k]: float(correct[val_labels == k].mean())
                           for k in range(len(wnids))},
        "imagenet_indices": dict(zip(readable, indices)),
        "eval_seconds": eval_seconds, "decode_seconds": decode_seconds,
        "device": args.device, "cpu": _cpu_name(), "data": os.path.abspath(data_dir),
        "val_images": int(len(val_x)), "classes": readable,
    }
    figures = {}
    if not args.no_explain:
        layers = mobilenet_layers(model, normalize(val_x[:1]))
        metrics["layers"] = {"grad_cam": layers.late, "actmax": [layers.early, layers.late],
                             "tcav": list(layers.tcav)}
        metrics.update(imagenet_explain.run(args, model, val_x, val_y, probs, normalize,
                                            names, figures, layers=layers))
    metrics["figures"] = {k: os.path.basename(v) for k, v in figures.items()}
    metrics["total_seconds"] = time.time() - started
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1, default=_json_default)
    print(f"\n{args.pretrained}: 1000-way top-1 {metrics['val_top1']:.1%} on {len(val_x)} "
          f"validation photos on {args.device}; total {metrics['total_seconds'] / 60:.1f} min")
    print(f"figures and metrics.json in {os.path.abspath(args.out)}")
    return metrics
