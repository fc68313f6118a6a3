"""Datasets, batching and image transforms.

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

import numpy as np

from .autograd import Tensor

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
        for b in range(len(self)):
            indices = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.collate_fn([self.dataset[int(i)] for i in indices])


class ImageFolder(Dataset):
    """Images in one sub-folder per class: ``root/CLASS/*.jpg``.

    classes       sorted folder names; class_to_idx maps them to 0, 1, ...
    samples       sorted list of (path, class_index)
    dataset[i]    (transform(image), class_index); the image is HWC uint8 RGB
    """

    def __init__(self, root, transform=None, target_transform=None, extensions=IMAGE_EXTENSIONS):
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
        self.targets = [t for _, t in self.samples]
        self.transform, self.target_transform = transform, target_transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, target = self.samples[index]
        image = load_image(path)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target


def load_image(path):
    """An image file as an HWC uint8 RGB array."""
    from PIL import Image
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


# ---- transforms: callables on one image ------------------------------------------------

def _size_pair(size, name):
    pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(pair) != 2 or min(pair) <= 0:
        raise ValueError(f"{name}: size must be a positive int or (height, width), got {size!r}")
    return tuple(int(s) for s in pair)


class Compose:
    """Apply transforms one after another."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image):
        for t in self.transforms:
            image = t(image)
        return image

    def __repr__(self):
        return "Compose(" + ", ".join(map(repr, self.transforms)) + ")"


class Resize:
    """Resize an HWC image (bilinear, via Pillow).  An int resizes the shorter side to
    it, keeping the aspect ratio (as torchvision); (h, w) resizes to exactly that."""

    def __init__(self, size):
        self.size = size if isinstance(size, (int, np.integer)) else _size_pair(size, "Resize")
        if isinstance(self.size, (int, np.integer)) and self.size <= 0:
            raise ValueError(f"Resize: size must be positive, got {size!r}")

    def __call__(self, image):
        from PIL import Image
        image = np.asarray(image)
        h, w = image.shape[:2]
        if isinstance(self.size, (int, np.integer)):
            s = int(self.size)
            oh, ow = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
        else:
            oh, ow = self.size
        if (oh, ow) == (h, w):
            return image
        return np.asarray(Image.fromarray(image).resize((ow, oh), Image.BILINEAR))

    def __repr__(self):
        return f"Resize({self.size})"


class CenterCrop:
    """Cut the central (h, w) window of an HWC image."""

    def __init__(self, size):
        self.size = _size_pair(size, "CenterCrop")

    def __call__(self, image):
        image = np.asarray(image)
        h, w = image.shape[:2]
        th, tw = self.size
        if th > h or tw > w:
            raise ValueError(f"CenterCrop: crop {self.size} is larger than the image {(h, w)}")
        top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
        return image[top:top + th, left:left + tw]

    def __repr__(self):
        return f"CenterCrop({self.size})"


class RandomCrop:
    """Pad the HWC image with ``padding`` zeros on each side, then cut a random (h, w)."""

    def __init__(self, size, padding=0):
        self.size, self.padding = _size_pair(size, "RandomCrop"), int(padding or 0)

    def __call__(self, image):
        image = np.asarray(image)
        p = self.padding
        if p:
            image = np.pad(image, ((p, p), (p, p)) + ((0, 0),) * (image.ndim - 2))
        h, w = image.shape[:2]
        th, tw = self.size
        if th > h or tw > w:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the padded image {(h, w)}")
        rng = _generator()
        top, left = int(rng.integers(0, h - th + 1)), int(rng.integers(0, w - tw + 1))
        return image[top:top + th, left:left + tw]

    def __repr__(self):
        return f"RandomCrop({self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror the HWC image left-right with probability p."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, image):
        image = np.asarray(image)
        return image[:, ::-1] if _generator().random() < self.p else image

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class ToArray:
    """HWC uint8 in [0, 255] -> CHW float32 in [0, 1] (torchvision's ToTensor)."""

    def __call__(self, image):
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[:, :, None]
        scale = 1 / 255.0 if image.dtype == np.uint8 else 1.0
        return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) * np.float32(scale)

    def __repr__(self):
        return "ToArray()"


class Normalize:
    """(x - mean[c]) / std[c] for each channel c of a CHW float image."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be nonzero, got {std!r}")

    def __call__(self, image):
        if image.ndim != 3 or (len(self.mean) != 1 and image.shape[0] != len(self.mean)):
            raise ValueError(f"Normalize: expected a CHW image with {len(self.mean)} channels, "
                             f"got shape {image.shape}")
        return ((image - self.mean) / self.std).astype(image.dtype, copy=False)

    def __repr__(self):
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"
