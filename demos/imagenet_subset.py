"""The project's headline: train a CNN on real ImageNet photos, then explain it with every method.

    python -m demos.imagenet_subset [--data DIR] [--out OUT] [--epochs E] [--image-size 64]
                                    [--batch-size B] [--device cpu|cuda] [--seed S] [--resume]
                                    [--download]

1. Data.  Imagenette: 10 ImageNet classes (tench, English springer, ..., parachute), 9,469
   training and 3,925 validation photos.  Every JPEG is decoded once into a uint8 array in
   memory (``ImageFolder(cache=True)``); each batch is then cut from it with vectorised
   augmentation (``ArrayDataset`` + ``BatchRandomCrop``/``BatchRandomFlip``) and normalised
   with the training set's per-channel mean and std (stored with the weights).
2. Training.  ``models.imagenette_cnn()``: four conv3x3-BatchNorm-ReLU blocks (32-64-128-256
   channels), max-pooling, global average pooling, a linear head.  Trained for 14 epochs on
   random 56x56 crops of the photos padded by 4 pixels (mirrored) on each side (cheaper
   steps; the model is fully convolutional, so it is evaluated on the whole 64x64 photo),
   random horizontal flips, cross-entropy with label smoothing, SGD with Nesterov momentum
   and weight decay, one-cycle learning rate.
   ``tn.fit`` shows a progress bar per epoch and checkpoints after each one, so Ctrl-C and
   ``--resume`` continue from the last finished epoch.  The final accuracy averages the
   softmax of each photo and its mirror image (test-time flip).
3. Explanations of the trained model, the lecture's figures: see ``demos/imagenet_explain.py``.

With ``--pretrained NAME_OR_PATH`` it skips 1 and 2 and explains a MobileNet pretrained on all
of ImageNet (1000 classes) instead: see ``demos/imagenet_pretrained.py``.

Everything goes to OUT (default ./out/imagenet_subset): metrics.json, the PNG figures it
lists, checkpoint.npz (training state) and model.npz (weights, normalisation, class names).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

import tinynet as tn
import tinynet.functional as F
from tinynet import data, models, optim

SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "..", "shared", "data", "imagenette10")


def default_data_dir(image_size=64):
    """The shared Imagenette beside the project if it is there, else the download cache."""
    shared = os.path.normpath(os.path.join(SHARED_DATA, str(image_size)))
    if os.path.isdir(shared):
        return shared
    from tinynet import download
    return os.path.join(download.cache_dir(), f"imagenette2-{image_size}")


IMAGENETTE_URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"
IMAGENETTE_MD5 = "e793b78cc4c9e9a4ccc0c1155377a412"    # as torchvision's Imagenette publishes it
IMAGENETTE_CLASSES = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
    "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
    "n03888257": "parachute"}


def fetch_imagenette(image_size):
    """Download imagenette2-160.tgz into the cache (once; checked), then squash every photo
    to image_size x image_size once, into cache/imagenette2-<size>/ (written to a temporary
    folder and renamed into place, so an interrupted resize leaves nothing half done)."""
    import tempfile
    from PIL import Image
    from tinynet import download
    from tqdm.auto import tqdm
    target = os.path.join(download.cache_dir(), f"imagenette2-{image_size}")
    if os.path.isdir(target):
        return target
    source = download.fetch(IMAGENETTE_URL, md5=IMAGENETTE_MD5, hint=(
        "pass --data DIR with a local copy of Imagenette (DIR/train/WNID/*.JPEG and "
        "DIR/val/WNID/*.JPEG, e.g. imagenette2-160.tgz unpacked elsewhere)"))
    tmp = tempfile.mkdtemp(prefix=f".imagenette2-{image_size}.", dir=download.cache_dir())
    try:
        files = [(split, wnid, name) for split in ("train", "val")
                 for wnid in sorted(os.listdir(os.path.join(source, split)))
                 for name in sorted(os.listdir(os.path.join(source, split, wnid)))]
        for split, wnid, name in tqdm(files, desc=f"resizing to {image_size} px", unit="image"):
            os.makedirs(os.path.join(tmp, split, wnid), exist_ok=True)
            image = Image.fromarray(data.load_image(os.path.join(source, split, wnid, name)))
            image.resize((image_size, image_size), Image.LANCZOS).save(
                os.path.join(tmp, split, wnid, os.path.splitext(name)[0] + ".jpg"), quality=90)
        with open(os.path.join(tmp, "classes.tsv"), "w", encoding="utf-8") as f:
            f.write("wnid\tname\n" + "".join(f"{w}\t{n}\n" for w, n in IMAGENETTE_CLASSES.items()))
        os.replace(tmp, target)
    finally:
        if os.path.isdir(tmp):
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def class_names(data_dir, wnids):
    """WordNet IDs -> readable names from classes.tsv (next to or above the data folder)."""
    for folder in (data_dir, os.path.dirname(os.path.normpath(data_dir))):
        path = os.path.join(folder, "classes.tsv")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                rows = [line.rstrip("\n").split("\t") for line in f][1:]
            names = {r[0]: r[-1] for r in rows if len(r) >= 2}
            return [names.get(w, w) for w in wnids]
    return [IMAGENETTE_CLASSES.get(w, w) for w in wnids]


def load_split(folder, classes=None, per_class=None, progress=True, size=None):
    """ImageFolder(cache=True) of ``folder``, optionally the first ``classes`` classes and
    the first ``per_class`` photos of each (for quick runs and the tests)."""
    ds = data.ImageFolder(folder, size=size)
    labels = np.asarray(ds.targets)
    keep = np.ones(len(labels), dtype=bool)
    if classes is not None:
        keep &= labels < classes
    if per_class is not None:
        rank = np.zeros(len(labels), dtype=int)
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            rank[idx] = np.arange(len(idx))
        keep &= rank < per_class
    ds.samples = [s for s, k in zip(ds.samples, keep) if k]      # decode only these
    ds.cache_images(progress)
    labels = np.asarray(ds.targets)
    images = ds.images.transpose(0, 3, 1, 2)             # NHWC -> NCHW, uint8
    wnids = ds.classes[:classes] if classes is not None else ds.classes
    return images, labels, wnids


def smoothed_cross_entropy(smoothing):
    """Cross-entropy against (1 - eps) one_hot(y) + eps / K (label smoothing, Szegedy et
    al.): L = (1 - eps) (-log p_y) + eps mean_k(-log p_k)."""
    def loss(logits, labels):
        if smoothing == 0:
            return F.cross_entropy(logits, labels)
        log_p = F.log_softmax(logits, axis=1)
        return (1 - smoothing) * F.nll_loss(log_p, labels) - smoothing * log_p.mean(axis=1).mean()
    return loss


def predict_probabilities(model, images, transform, batch_size=256, flip=True, device=None,
                          progress=False):
    """softmax(model(x)) for every image, in eval mode; with ``flip`` the mean of the photo's
    and its mirror image's probabilities (test-time augmentation); ``progress``: a tqdm bar
    per batch."""
    from tqdm.auto import tqdm
    model.eval()
    out = []
    with tn.no_grad():
        for start in tqdm(range(0, len(images), batch_size), desc="predicting", unit="batch",
                          disable=not progress, leave=False):
            x = transform(images[start:start + batch_size])
            views = [x, x[..., ::-1]] if flip else [x]
            p = 0
            for v in views:
                t = tn.tensor(np.ascontiguousarray(v))
                if device is not None:
                    t = t.to(device)
                p = p + F.softmax(model(t), axis=1).numpy()
            out.append(np.asarray(p) / len(views))
    return np.concatenate(out)


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m demos.imagenet_subset", description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None,
                   help="folder with train/WNID/*.jpg and val/WNID/*.jpg (default: "
                        "../shared/data/imagenette10/<image-size> if present, else the "
                        "download cache, $TINYNET_CACHE or ~/.cache/tinynet)")
    p.add_argument("--out", default=os.path.join("out", "imagenet_subset"),
                   help="folder for metrics.json, the figures and the checkpoints")
    p.add_argument("--epochs", type=int, default=14, help="training epochs")
    p.add_argument("--image-size", type=int, default=None,
                   help="photo size (pixels; default 64, with --pretrained 128: the photos "
                        "are then resized to the model's input)")
    p.add_argument("--crop", type=int, default=56,
                   help="training crop size (random crops of the photos; eval uses the full photo)")
    p.add_argument("--padding", type=int, default=4,
                   help="reflect padding before the random crop (with --min-scale 1)")
    p.add_argument("--min-scale", type=float, default=1.0,
                   help="below 1: random-resized crops (scale augmentation) of at least this "
                        "fraction of the photo's area, resized to --crop; 1: plain random crops")
    p.add_argument("--batch-size", type=int, default=64, help="training batch size")
    p.add_argument("--lr", type=float, default=0.2, help="one-cycle peak learning rate")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing eps")
    p.add_argument("--channels", default="32,64,128,256", help="conv channels of the CNN")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to train")
    p.add_argument("--seed", type=int, default=0, help="seeds weights, data order, augmentation")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.npz (after Ctrl-C) instead of starting over")
    p.add_argument("--download", action="store_true",
                   help="download Imagenette (imagenette2-160.tgz, fast.ai) into the cache if "
                        "--data is not given and the shared copy is absent")
    p.add_argument("--classes", type=int, default=None,
                   help="use only the first N classes (quick runs, tests)")
    p.add_argument("--train-per-class", type=int, default=None,
                   help="use only the first N training photos of each class")
    p.add_argument("--val-per-class", type=int, default=None,
                   help="use only the first N validation photos of each class")
    p.add_argument("--no-explain", action="store_true", help="train only")
    p.add_argument("--pretrained", default=None, metavar="NAME_OR_PATH",
                   help="skip training and explain a pretrained ImageNet MobileNet instead: "
                        "a name of tinynet.models.PRETRAINED (e.g. mobilenet_v1_0.25_128, "
                        "mobilenet_v2_1.0_224 or mobilenet_v2) or a .tflite file "
                        "(see demos/imagenet_pretrained.py)")
    from demos import imagenet_explain
    imagenet_explain.add_arguments(p)
    return p


def resolve_data_dir(args, splits=("train", "val")):
    """--data, else the shared copy, else the cache (downloaded with --download); exits with
    a message saying what to pass when there is none or a split is missing."""
    data_dir = args.data or default_data_dir(args.image_size)
    if args.data is None and not os.path.isdir(data_dir):
        if not args.download:
            sys.exit(f"imagenet_subset: no data at '{data_dir}'. Pass --download to fetch "
                     "Imagenette (about 100 MB) or --data DIR to point at a local copy with "
                     "train/WNID/*.jpg and val/WNID/*.jpg.")
        data_dir = fetch_imagenette(args.image_size)
    for split in splits:
        if not os.path.isdir(os.path.join(data_dir, split)):
            sys.exit(f"imagenet_subset: '{data_dir}' has no '{split}' folder "
                     "(expected DIR/train/WNID/*.jpg and DIR/val/WNID/*.jpg)")
    return data_dir


def main(argv=None):
    args = build_parser().parse_args(argv)
    started = time.time()
    os.makedirs(args.out, exist_ok=True)
    tn.manual_seed(args.seed)
    if args.pretrained:                  # no training: explain an ImageNet MobileNet
        from demos import imagenet_pretrained
        return imagenet_pretrained.run(args, started)
    args.image_size = args.image_size or 64
    data_dir = resolve_data_dir(args)

    # ---- 1. data: decode once, augment per batch ----------------------------------------
    t0 = time.time()
    size = (args.image_size, args.image_size)
    train_x, train_y, wnids = load_split(os.path.join(data_dir, "train"), args.classes,
                                         args.train_per_class, size=size)
    val_x, val_y, val_wnids = load_split(os.path.join(data_dir, "val"), args.classes,
                                         args.val_per_class, size=size)
    if list(val_wnids) != list(wnids):
        sys.exit(f"imagenet_subset: train and val have different classes: {wnids} vs {val_wnids}")
    names = class_names(data_dir, wnids)
    mean, std = data.channel_mean_std(train_x)
    normalize = data.BatchNormalize(mean, std)
    crop = (data.BatchRandomResizedCrop(args.crop, scale=(args.min_scale, 1.0))
            if args.min_scale < 1 else data.BatchRandomCrop(args.crop, padding=args.padding))
    augment = data.Compose([crop, data.BatchRandomFlip(), normalize])
    train_loader = data.DataLoader(data.ArrayDataset(train_x, train_y, transform=augment),
                                   batch_size=args.batch_size, shuffle=True, seed=args.seed)
    val_loader = data.DataLoader(data.ArrayDataset(val_x, val_y, transform=normalize),
                                 batch_size=256)
    decode_seconds = time.time() - t0
    print(f"data: {len(train_x)} training and {len(val_x)} validation photos of "
          f"{len(names)} classes from {data_dir} (decoded in {decode_seconds:.1f} s); "
          f"mean {[round(float(m), 3) for m in mean]}, "
          f"std {[round(float(d), 3) for d in std]}", flush=True)

    # ---- 2. training -----------------------------------------------------------------------
    channels = tuple(int(c) for c in args.channels.split(","))
    model = models.imagenette_cnn(num_classes=len(names), channels=channels)
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                    weight_decay=args.weight_decay)
    sched = optim.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                             steps_per_epoch=len(train_loader), pct_start=0.25)
    checkpoint = os.path.join(args.out, "checkpoint.npz")
    times_path = os.path.join(args.out, "epoch_seconds.json")
    if not args.resume:
        for path in (checkpoint, times_path):
            if os.path.exists(path):
                os.remove(path)
    epoch_seconds = json.load(open(times_path)) if os.path.exists(times_path) else []
    clock = [time.time()]

    def on_epoch_end(epoch, history):            # epoch times survive Ctrl-C and --resume
        epoch_seconds.append(time.time() - clock[0])
        with open(times_path + ".tmp", "w") as f:
            json.dump(epoch_seconds, f)
        os.replace(times_path + ".tmp", times_path)
        clock[0] = time.time()

    history = tn.fit(model, train_loader, smoothed_cross_entropy(args.label_smoothing), opt,
                     args.epochs, scheduler=sched, val_loader=val_loader, checkpoint=checkpoint,
                     device=args.device, on_epoch_end=on_epoch_end)
    train_seconds = float(sum(epoch_seconds))
    tn.save({"model": model.state_dict(), "mean": mean, "std": std, "classes": list(wnids),
             "class_names": names, "channels": list(channels), "image_size": args.image_size},
            os.path.join(args.out, "model.npz"))

    t0 = time.time()
    probs = predict_probabilities(model, val_x, normalize, device=args.device)
    eval_seconds = time.time() - t0
    pred = probs.argmax(axis=1)
    accuracy = float((pred == val_y).mean())
    per_class = {names[c]: float((pred[val_y == c] == c).mean()) for c in range(len(names))}
    confusion = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(confusion, (val_y, pred), 1)

    from explain import plot
    figures = {
        "training_curves": plot.training_curves(
            history, os.path.join(args.out, "training_curves.png"),
            title=f"imagenette_cnn on {len(names)} Imagenette classes"),
        "confusion_matrix": plot.confusion_matrix(
            confusion, names, os.path.join(args.out, "confusion_matrix.png"),
            title=f"validation, {accuracy:.1%} top-1 (test-time flip)"),
    }
    metrics = {
        "val_accuracy": accuracy,
        "val_accuracy_no_flip": history["val_accuracy"][-1],
        "per_class_accuracy": per_class,
        "epochs": args.epochs,
        "history": history,
        "epoch_seconds": epoch_seconds,
        "train_seconds": train_seconds,
        "images_per_second": len(train_x) * len(epoch_seconds) / train_seconds if train_seconds else None,
        "decode_seconds": decode_seconds,
        "eval_seconds": eval_seconds,
        "device": args.device,
        "cpu": _cpu_name(),
        "data": os.path.abspath(data_dir),
        "train_images": int(len(train_x)), "val_images": int(len(val_x)),
        "classes": names,
        "recipe": {k: getattr(args, k) for k in ("epochs", "crop", "padding", "min_scale",
                                                 "batch_size", "lr", "weight_decay",
                                                 "label_smoothing", "channels", "seed")},
    }
    if not args.no_explain:
        from demos import imagenet_explain
        metrics.update(imagenet_explain.run(args, model, val_x, val_y, probs, normalize,
                                            names, figures))
    metrics["figures"] = {k: os.path.basename(v) for k, v in figures.items()}
    metrics["total_seconds"] = time.time() - started
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1, default=_json_default)
    print(f"\nvalidation top-1 {accuracy:.1%} (test-time flip; {history['val_accuracy'][-1]:.1%} "
          f"without) after {args.epochs} epochs; training {train_seconds / 60:.1f} min "
          f"({train_seconds / max(1, len(epoch_seconds)):.0f} s per epoch) on {args.device}; "
          f"total {metrics['total_seconds'] / 60:.1f} min")
    print(f"figures and metrics.json in {os.path.abspath(args.out)}")
    return metrics


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    main(sys.argv[1:])
