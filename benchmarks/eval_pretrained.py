"""Top-1 of the imported TFLite MobileNets on the 3,925 Imagenette val photos.

    python -m benchmarks.eval_pretrained [--models mobilenet_v1_0.25_128 ...] [--limit N]

Each 128-px photo of ../shared/data/imagenette10/128/val is resized to the model's input
with Pillow's BILINEAR filter (the same filter the reference numbers used), fed as
(x - 128) / 128, and scored 1000-way: the background logit (index 0) is left out, and the
prediction is right when argmax over the 1000 ImageNet classes is the photo's ImageNet
index from imagenette10/classes.tsv (logit index = ImageNet index + 1).

Reference (a plain float computation with the dequantized weights, ../shared/data/README.md):
41.2%, 49.5%, 57.1%, 62.7%.  Predictions are saved after every batch to --cache, so an
interrupted run resumes where it stopped.
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from benchmarks._common import ROOT, machine

import tinynet as tn                                     # noqa: E402
from tinynet import models                               # noqa: E402

DATA = ROOT.parent / "shared" / "data"
REFERENCE = {"mobilenet_v1_0.25_128": 41.2, "mobilenet_v1_0.5_160": 49.5,
             "mobilenet_v1_0.75_192": 57.1, "mobilenet_v2_1.0_224": 62.7}


def val_photos(data=DATA):
    """[(path, imagenet index)] of the Imagenette val photos, sorted."""
    rows = (data / "imagenette10" / "classes.tsv").read_text().splitlines()[1:]
    index = {wnid: int(i) for wnid, i, _ in (r.split("\t") for r in rows)}
    return [(p, index[p.parent.name])
            for p in sorted((data / "imagenette10" / "128" / "val").glob("*/*.jpg"))]


def load_image(path, size):
    """uint8 (size, size, 3), bilinear-resized with Pillow."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        return np.asarray(img)


def evaluate(name, photos, batch_size, cache):
    """Predicted ImageNet indices for ``photos``, resuming from ``cache`` (.npz)."""
    path = DATA / "models" / models.PRETRAINED[name]["file"]
    model = models.load_tflite(path)
    size = model.input_size[0]
    preds = np.full(len(photos), -1, dtype=np.int64)
    if cache.exists():
        saved = tn.load(cache)["predictions"]
        if len(saved) == len(photos):
            preds = saved
    labels = np.array([label for _, label in photos])
    # a random order: the photos done so far are a fair sample if the run is cut short
    todo = np.random.default_rng(0).permutation(np.flatnonzero(preds < 0))
    with tqdm(total=len(photos), initial=len(photos) - len(todo), desc=name, unit="img") as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            images = np.stack([load_image(photos[i][0], size) for i in batch])
            with tn.no_grad():
                logits = model(models.mobilenet_input(images)).data
            preds[batch] = logits[:, 1:].argmax(axis=1)        # 1000-way: no background
            tn.save({"predictions": preds}, cache)
            done = preds >= 0
            bar.set_postfix(top1=f"{100 * np.mean(preds[done] == labels[done]):.1f}%")
            bar.update(len(batch))
    return preds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(REFERENCE))
    parser.add_argument("--limit", type=int, default=None, help="only every k-th photo, "
                        "k chosen so that about LIMIT photos are scored")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cache", type=Path,
                        default=Path.home() / ".cache" / "tinynet" / "eval_pretrained")
    args = parser.parse_args(argv)
    photos = val_photos()
    if args.limit:
        photos = photos[::max(1, len(photos) // args.limit)]
    labels = np.array([label for _, label in photos])
    args.cache.mkdir(parents=True, exist_ok=True)
    print(f"== 1000-way top-1 on {len(photos)} Imagenette val photos (Pillow bilinear from "
          f"128 px)\n{machine()}\n")
    rows = []
    for name in args.models:
        cache = args.cache / f"{name}_{len(photos)}.npz"
        preds = evaluate(name, photos, args.batch_size, cache)
        top1 = 100 * np.mean(preds == labels)
        rows.append((name, top1, REFERENCE.get(name)))
    print(f"\n{'model':<24}{'top-1 %':>9}{'reference %':>13}{'diff':>7}")
    for name, top1, ref in rows:
        print(f"{name:<24}{top1:9.1f}{ref:13.1f}{top1 - ref:+7.1f}")


if __name__ == "__main__":
    main()
