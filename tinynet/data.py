"""Datasets and batching; the image transforms are in tinynet/transforms.py (re-exported here).

    train = data.ImageFolder("imagenette10/64/train", transform=data.Compose([
        data.RandomCrop(64, padding=4), data.RandomHorizontalFlip(),
        data.ToArray(), data.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]))
    for images, labels in data.DataLoader(train, batch_size=64, shuffle=True, seed=0):
        ...            # images (64, 3, 64, 64) float32, labels (64,) int64: NumPy arrays

Images travel as NumPy arrays: HWC uint8 until ``ToArray`` makes them CHW float32 in
[0, 1], as the layers expect.  Random transforms and shuffling draw from
``tinynet.random.get_generator()`` (or the loader's own ``seed``), so runs repeat.
"""
import math
import os
import warnings

import numpy as np

from .autograd import Tensor
# The transforms live in tinynet/transforms.py; data.Compose, data.RandomCrop, ... stay here.
from .transforms import (  # noqa: F401
    BatchNormalize, BatchRandomCrop, BatchRandomFlip, BatchRandomResizedCrop, CenterCrop,
    Compose, Normalize, RandomCrop, RandomHorizontalFlip, Resize, ToArray, _size_pair)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".gif", ".tif", ".tiff", ".webp")


def _generator():
    from . import random as tn_random
    return tn_random.get_generator()


class Dataset:
    """Anything with ``__len__`` and ``__getitem__(i) -> example``."""

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Example i is ``(a[i], b[i], ...)`` for arrays a, b, ... of the same length."""

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        self.arrays = [a.numpy() if isinstance(a, Tensor) else np.asarray(a) for a in arrays]
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: arrays must have the same length, got {lengths}")

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)

    def __len__(self):
        return len(self.arrays[0])


def default_collate(examples):
    """Stack a list of examples into a batch: tuples field by field, dicts key by key."""
    first = examples[0]
    if isinstance(first, (tuple, list)):
        return tuple(default_collate(list(field)) for field in zip(*examples))
    if isinstance(first, dict):
        return {k: default_collate([e[k] for e in examples]) for k in first}
    if isinstance(first, Tensor):
        return np.stack([e.numpy() for e in examples])
    if isinstance(first, (str, bytes)):
        return list(examples)
    return np.stack([np.asarray(e) for e in examples])


class DataLoader:
    """Iterate over a dataset in batches of NumPy arrays; each ``for`` loop is one epoch.

    shuffle    a new random order every epoch; with ``seed`` the sequence of orders
               repeats from run to run, otherwise it follows ``tn.manual_seed``
    drop_last  drop the final batch when it is smaller than batch_size
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 collate_fn=None):
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.collate_fn = collate_fn or default_collate
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None
        self._epochs_drawn = 0          # shuffled orders drawn from _rng so far

    def set_epoch(self, epoch):
        """Make the next pass use the order that epoch ``epoch`` (0-based) of an
        uninterrupted run would use: with ``seed``, the generator is remade and the orders
        of the epochs before it are drawn again.  ``tn.fit`` calls this, so a resumed run
        repeats exactly.  (Without ``seed`` the order follows tn's generator, which a
        ``fit`` checkpoint restores.)"""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be an int >= 0, got {epoch!r}")
        if self.shuffle and self._rng is not None and epoch != self._epochs_drawn:
            self._rng = np.random.default_rng(self.seed)
            for _ in range(epoch):
                self._rng.permutation(len(self.dataset))
        self._epochs_drawn = int(epoch)

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            order = (self._rng or _generator()).permutation(n)
            self._epochs_drawn += 1
        else:
            order = np.arange(n)
        whole_batches = hasattr(self.dataset, "get_batch")      # e.g. ArrayDataset
        for b in range(len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            if whole_batches:                   # one fancy-index + vectorised transforms
                yield self.dataset.get_batch(indices)
            else:
                yield self.collate_fn([self.dataset[int(i)] for i in indices])


class ImageFolder(Dataset):
    """Images in one sub-folder per class: ``root/CLASS/*.jpg``.

    classes       sorted folder names; class_to_idx maps them to 0, 1, ...
    samples       sorted list of (path, class_index)
    dataset[i]    (transform(image), class_index); the image is HWC uint8 RGB
    cache         decode every image once, now, into one uint8 array ``images`` (N, H, W, 3)
                  (Imagenette's 9,469 training photos at 64 px: 116 MB, ~10 s), so epochs
                  never decode a JPEG again; all images must then have one size, or pass
                  ``size=(h, w)`` to resize them (bilinear) while caching.
                  ``to_array_dataset()`` hands them to an ``ArrayDataset`` for fast batches.

    Grayscale, palette, CMYK and RGBA files become RGB (transparent pixels over white).
    A file Pillow cannot read (truncated, corrupt, not an image) is skipped with a warning
    that names it, and one warning at the end gives the count; ``skipped`` lists them.
    Without cache a bad file is found only when it is read: that example is replaced by the
    next readable one, with the same warning.  A missing root, a root without class folders
    or without any image is an error that names the folder.
    """

    def __init__(self, root, transform=None, target_transform=None, extensions=IMAGE_EXTENSIONS,
                 cache=False, size=None, progress=False):
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"ImageFolder: folder '{self.root}' does not exist")
        self.classes = sorted(e.name for e in os.scandir(self.root) if e.is_dir())
        if not self.classes:
            raise ValueError(f"ImageFolder: no class folders in '{self.root}' "
                             "(expected root/CLASS/image.jpg)")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        extensions = tuple(e.lower() for e in extensions)
        self.samples = []
        for c in self.classes:
            folder = os.path.join(self.root, c)
            for name in sorted(os.listdir(folder)):
                if name.lower().endswith(extensions):
                    self.samples.append((os.path.join(folder, name), self.class_to_idx[c]))
        if not self.samples:
            raise ValueError(f"ImageFolder: no images ({', '.join(extensions)}) in the class "
                             f"folders of '{self.root}'")
        empty = sorted(set(self.classes) - {self.classes[t] for _, t in self.samples})
        if empty:          # kept as classes (indices stay stable), but say so
            warnings.warn(f"ImageFolder: class folders without images in '{self.root}': "
                          f"{', '.join(empty)}", stacklevel=2)
        self.size = None if size is None else _size_pair(size, "ImageFolder")
        self.transform, self.target_transform = transform, target_transform
        self.skipped = []                   # paths of files that could not be read
        self.images = None
        self.targets = [t for _, t in self.samples]
        if cache:
            self.cache_images(progress)

    def _read(self, path):
        """The image at ``path`` (resized to ``size``), or None with a warning naming it."""
        try:
            image = load_image(path)
        except (OSError, ValueError, SyntaxError) as exc:   # what Pillow raises on bad files
            self.skipped.append(path)
            warnings.warn(f"ImageFolder: skipped '{path}': {exc.__cause__ or exc}", stacklevel=3)
            return None
        if self.size is not None:
            image = Resize(self.size)(image)
        return image

    def cache_images(self, progress=False):
        """Decode every sample now into ``images`` (N, H, W, 3) uint8 (what cache=True
        does; call it yourself after narrowing ``samples`` to decode only those)."""
        from tqdm.auto import tqdm
        kept, images = [], []
        for path, target in tqdm(self.samples, desc=f"decoding {self.root}", unit="image",
                                 disable=not progress, leave=False):
            image = self._read(path)
            if image is None:
                continue
            if images and image.shape != images[0].shape:
                raise ValueError(f"ImageFolder(cache=True): '{path}' is {image.shape[:2]}, "
                                 f"but '{kept[0][0]}' is {images[0].shape[:2]}; pass "
                                 "size=(h, w) to resize every image to one size")
            kept.append((path, target))
            images.append(image)
        self._warn_count()
        if not images:
            raise ValueError(f"ImageFolder: none of the {len(self.samples)} images in "
                             f"'{self.root}' could be read")
        self.samples, self.images = kept, np.stack(images)
        self.targets = [t for _, t in self.samples]
        return self

    def _warn_count(self):
        if self.skipped:
            warnings.warn(f"ImageFolder: skipped {len(self.skipped)} unreadable file(s) in "
                          f"'{self.root}'", stacklevel=4)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, target = self.samples[index]
        if self.images is not None:
            image = self.images[index]
        else:
            image = self._read(path)
            for step in range(1, len(self.samples)):     # a bad file: the next good one
                if image is not None:
                    break
                path, target = self.samples[(index + step) % len(self.samples)]
                image = self._read(path)
            if image is None:
                raise ValueError(f"ImageFolder: no image in '{self.root}' could be read")
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def to_array_dataset(self, transform=None):
        """An ``ArrayDataset`` over the cached images (NCHW uint8) and their labels."""
        if self.images is None:
            raise ValueError("ImageFolder.to_array_dataset needs ImageFolder(..., cache=True)")
        return ArrayDataset(self.images.transpose(0, 3, 1, 2), np.asarray(self.targets),
                            transform=transform)


def load_image(path):
    """An image file as an HWC uint8 RGB array.  Pillow decodes lazily, so ``load()``
    forces the whole file now: a truncated file fails here, with its name, not later.
    Grayscale, palette and CMYK convert to RGB; transparency is composited over white."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P"
                                                      and "transparency" in image.info):
                rgba = image.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise type(exc)(f"cannot read image '{os.fspath(path)}': {exc}") from exc


class ArrayDataset(Dataset):
    """Images already in memory: ``images`` (N, C, H, W) uint8 or float, ``labels`` (N,).

    dataset[i]              (transform(images[i:i+1])[0], labels[i])
    get_batch(indices)      (transform(images[indices]), labels[indices]): DataLoader uses
                            this, so a batch is one fancy-index plus the batch transforms
                            below, vectorised over the batch (no Python loop per image)
    transform               a batch transform, e.g.
                            Compose([BatchRandomCrop(56, padding=4), BatchRandomFlip(),
                                     BatchNormalize(mean, std)])
    """

    def __init__(self, images, labels, transform=None):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 4:
            raise ValueError(f"ArrayDataset: images must be (N, C, H, W), got shape {images.shape}")
        if labels.shape != (len(images),):
            raise ValueError(f"ArrayDataset: labels must have shape ({len(images)},), "
                             f"got {labels.shape}")
        self.images, self.labels, self.transform = images, labels.astype(np.int64), transform

    def __len__(self):
        return len(self.images)

    def get_batch(self, indices):
        images = self.images[np.asarray(indices)]
        if self.transform is not None:
            images = self.transform(images)
        return images, self.labels[np.asarray(indices)]

    def __getitem__(self, index):
        images, labels = self.get_batch([index])
        return images[0], labels[0]


def channel_mean_std(images, batch_size=1024):
    """Per-channel mean and std of (N, C, H, W) images, in [0, 1] units for uint8 (as
    ``BatchNormalize`` expects): accumulated in float64, a chunk at a time."""
    images = np.asarray(images)
    scale = 1 / 255.0 if images.dtype == np.uint8 else 1.0
    total = np.zeros(images.shape[1]), np.zeros(images.shape[1])
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size].astype(np.float64) * scale
        total[0][:] += chunk.sum(axis=(0, 2, 3))
        total[1][:] += (chunk ** 2).sum(axis=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total[0] / count
    return mean.astype(np.float32), np.sqrt(np.maximum(total[1] / count - mean ** 2, 0)).astype(np.float32)


# ---- transforms: callables on one image ------------------------------------------------
