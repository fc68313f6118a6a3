"""Is TCAV's "significant" calibrated?  False-positive rate and power of explain.tcav's two
tests, measured on tasks whose answer is known (docs/tcav_statistics.md reports the numbers).

    python benchmarks/tcav_calibration.py [--trials 40] [--tasks toy,photos] [--smoothing 3]

toy     the issue's task: a CNN (explain.toy.small_cnn((6, 8))) trained until 100% test
        accuracy to detect a striped 10x10 patch in 32x32 noise images.  Concept: striped
        images; random sets and the random "concept": noise images of the same distribution;
        sets of 40, 10 random sets; class 1 = the striped class (50 of its images).  At the
        last conv block (layer '3': every input has the same gradient, scores are 0 or 1)
        and at the first ReLU (layer '1': scores vary from input to input).
photos  real photographs: a small CNN trained on 60 DTD 'striped' photos against 60 random
        ImageNet photos (random_09), 32x32; class 1 = 20 held-out striped photos.  Random
        sets and the random "concept" of 30 photos from random_00..08 (891); the concepts:
        30 of 40 other striped photos (known answer: significant), and DTD 'dotted' and
        'zigzagged' (no known answer: how often each test calls them significant).

Each trial draws fresh sets (``explain.sanity.tcav_calibration``); both tests see the same
draws (same seed).  Needs ../shared/data for 'photos'.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinynet as tn                                    # noqa: E402
from benchmarks._common import machine, table           # noqa: E402

import explain                                          # noqa: E402
from explain import toy                                 # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def toy_task():
    """The issue's task, trained here (about a minute)."""
    tn.manual_seed(0)
    x, y = toy.striped_patches(512, seed=0, size=32, side=10)
    model = toy.train(toy.small_cnn((6, 8)), x, y, epochs=8)
    xt, yt = toy.striped_patches(200, seed=5, size=32, side=10)
    with tn.no_grad():
        accuracy = float(np.mean(model(tn.tensor(xt)).numpy().argmax(axis=1) == yt))
    rng = np.random.default_rng(1)
    return dict(model=model, accuracy=accuracy, class_inputs=xt[yt == 1][:50],
                concepts={"striped": toy.stripes(400, rng, 32)}, pool=toy.noise(880, rng, 32),
                layers=["3", "1"], set_size=40)


def _load(folder, size=32):
    from PIL import Image
    files = sorted(folder.glob("*.jpg"))
    imgs = [np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR))
            for f in files]
    return ((np.stack(imgs).astype(np.float32) / 255 - 0.5) / 0.25).transpose(0, 3, 1, 2)


def photo_task():
    """A striped-photo detector trained here on real photos (seconds)."""
    concepts = {name: _load(DATA / "concepts" / "64" / name)
                for name in ("striped", "dotted", "zigzagged")}
    pool = np.concatenate([_load(DATA / "random" / "64" / f"random_0{i}") for i in range(9)])
    other = _load(DATA / "random" / "64" / "random_09")
    striped = concepts["striped"]
    x = np.concatenate([striped[:60], other[:60]])
    y = np.array([1] * 60 + [0] * 60)
    tn.manual_seed(0)
    model = toy.photo_cnn()
    order = np.random.default_rng(0).permutation(len(x))
    toy.train(model, x[order], y[order], epochs=12, batch_size=24, lr=0.01)
    held = np.concatenate([striped[60:80], other[60:]])
    held_y = np.array([1] * 20 + [0] * (len(other) - 60))
    with tn.no_grad():
        accuracy = float(np.mean(model(tn.tensor(held)).numpy().argmax(axis=1) == held_y))
    return dict(model=model, accuracy=accuracy, class_inputs=striped[60:80],
                concepts={"striped": striped[80:], "dotted": concepts["dotted"],
                          "zigzagged": concepts["zigzagged"]},
                pool=pool, layers=["5"], set_size=30)


def fraction(k, n, interval):
    return f"{k}/{n} = {k / n:.0%} [{interval[0]:.0%}, {interval[1]:.0%}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--tasks", default="toy,photos")
    parser.add_argument("--sets", type=int, default=10, help="random sets per run (m)")
    parser.add_argument("--smoothing", type=float, default=3.0,
                        help="the 'sets' test's smoothing (0: the plain TCAV score)")
    parser.add_argument("--tests", default="ttest,sets")
    args = parser.parse_args()
    print(f"TCAV calibration, {args.trials} trials per row, m = {args.sets} random sets, "
          f"alpha = 0.05, smoothing {args.smoothing} ('sets'); [95% Clopper-Pearson interval]")
    print(machine())
    rows = []
    for name in args.tasks.split(","):
        if name == "photos" and not DATA.is_dir():
            print(f"photos: skipped, {DATA} not found")
            continue
        start = time.time()
        task = toy_task() if name == "toy" else photo_task()
        print(f"{name}: model trained in {time.time() - start:.0f} s, held-out accuracy "
              f"{task['accuracy']:.1%}", flush=True)
        for layer in task["layers"]:
            for concept, examples in task["concepts"].items():
                for test in args.tests.split(","):
                    start = time.time()
                    r = explain.tcav_calibration(
                        task["model"], layer, 1, examples, task["pool"], task["class_inputs"],
                        trials=args.trials, n_random_sets=args.sets,
                        set_size=min(task["set_size"], len(examples)), test=test,
                        smoothing=args.smoothing, seed=0)
                    rows.append([name, layer, concept, test,
                                 fraction(r.false_positives, r.trials,
                                          r.false_positive_interval),
                                 fraction(r.detections, r.trials, r.power_interval),
                                 f"{np.mean(r.concept_scores):.2f}",
                                 f"{time.time() - start:.0f}"])
                    print("  ".join(rows[-1]), flush=True)
    print()
    table(rows, ["task", "layer", "concept", "test", "random concept significant",
                 "concept significant", "mean TCAV score", "seconds"])


if __name__ == "__main__":
    main()
