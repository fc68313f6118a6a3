"""Image transforms: per image (HWC arrays, torchvision's names) and per batch.

Per image, for ``ImageFolder(transform=...)`` and a ``DataLoader`` that stacks the results:
``Resize``, ``CenterCrop``, ``RandomCrop``, ``RandomHorizontalFlip``, ``ToArray`` (HWC uint8 ->
CHW float32 in [0, 1]) and ``Normalize``, chained by ``Compose``.

Per batch, for images decoded once into one (N, C, H, W) uint8 array (``ArrayDataset``):
``BatchRandomCrop``, ``BatchRandomResizedCrop``, ``BatchRandomFlip``, ``BatchNormalize``:
each a few vectorised NumPy operations on the whole batch, no loop over images.

Random transforms draw from ``tinynet.random.get_generator()``, so seeded runs repeat.
``tinynet.data`` re-exports every name here.
"""
import numpy as np


def _generator():
    from . import random as tn_random
    return tn_random.get_generator()

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


# ---- batch transforms: vectorised over (N, C, H, W) arrays --------------------------------
# The same augmentations as above, for a whole batch at once (ArrayDataset.get_batch): the
# random numbers are drawn for all N images in one call and the crop is one fancy-index, so a
# batch of 64 costs about a millisecond instead of 64 Python calls.

class BatchRandomCrop:
    """Pad (N, C, H, W) images by ``padding`` on each side, then cut a random (h, w) window
    per image.  padding_mode 'reflect' (mirror without repeating the edge, as np.pad and
    torchvision) or 'constant' (zeros).  Works on uint8 and float arrays alike."""

    def __init__(self, size, padding=0, padding_mode="reflect"):
        if padding_mode not in ("reflect", "constant"):
            raise ValueError(f"BatchRandomCrop: padding_mode must be 'reflect' or 'constant', "
                             f"got {padding_mode!r}")
        self.size, self.padding = _size_pair(size, "BatchRandomCrop"), int(padding or 0)
        self.padding_mode = padding_mode

    def __call__(self, images):
        images = np.asarray(images)
        if images.ndim != 4:
            raise ValueError(f"BatchRandomCrop: images must be (N, C, H, W), got {images.shape}")
        p = self.padding
        if p:
            images = np.pad(images, ((0, 0), (0, 0), (p, p), (p, p)), mode=self.padding_mode)
        n, _, h, w = images.shape
        th, tw = self.size
        if th > h or tw > w:
            raise ValueError(f"BatchRandomCrop: crop {self.size} is larger than the padded "
                             f"images {(h, w)}")
        rng = _generator()
        top = rng.integers(0, h - th + 1, size=n)
        left = rng.integers(0, w - tw + 1, size=n)
        # every (th, tw) window as a view: (N, C, H - th + 1, W - tw + 1, th, tw), no copy;
        # then one fancy-index picks window (top[i], left[i]) of image i: (N, C, th, tw)
        windows = np.lib.stride_tricks.sliding_window_view(images, (th, tw), axis=(2, 3))
        return windows[np.arange(n), :, top, left]

    def __repr__(self):
        return f"BatchRandomCrop({self.size}, padding={self.padding}, padding_mode={self.padding_mode!r})"


class BatchRandomResizedCrop:
    """Inception-style scale augmentation, per image of an (N, C, H, W) batch, as
    torchvision's RandomResizedCrop: pick a box of area ``s * H * W`` (s uniform in
    ``scale``) and aspect ratio w/h log-uniform in ``ratio`` (10 tries, then the whole
    image), then resize the box to ``size`` with bilinear interpolation (pixel centres,
    align_corners=False).  uint8 in -> uint8 out (rounded), float in -> float32 out.

    Each output pixel (i, j) of image n samples the box at
        y = top_n + (i + 0.5) * box_h_n / out_h - 0.5,   x likewise (kept inside the box),
    mixing the neighbouring pixels by their distances: rows first, then columns, each a
    gather over the whole batch, no loop over images."""

    def __init__(self, size, scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = _size_pair(size, "BatchRandomResizedCrop")
        if not (0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f"BatchRandomResizedCrop: scale must be (min, max) with "
                             f"0 < min <= max <= 1, got {scale!r}")
        if not (0 < ratio[0] <= ratio[1]):
            raise ValueError(f"BatchRandomResizedCrop: ratio must be (min, max) with "
                             f"0 < min <= max, got {ratio!r}")
        self.scale, self.ratio = tuple(scale), tuple(ratio)

    def boxes(self, n, h, w, rng, tries=10):
        """(top, left, box_h, box_w) per image, each an int array of length n."""
        area = rng.uniform(*self.scale, size=(n, tries)) * h * w
        aspect = np.exp(rng.uniform(*np.log(self.ratio), size=(n, tries)))
        bw = np.rint(np.sqrt(area * aspect)).astype(int)
        bh = np.rint(np.sqrt(area / aspect)).astype(int)
        fits = (bw >= 1) & (bw <= w) & (bh >= 1) & (bh <= h)
        first = fits.argmax(axis=1)                 # the first try that fits ...
        rows = np.arange(n)
        bh = np.where(fits.any(axis=1), bh[rows, first], h)     # ... else the whole image
        bw = np.where(fits.any(axis=1), bw[rows, first], w)
        top = rng.integers(0, h - bh + 1)
        left = rng.integers(0, w - bw + 1)
        return top, left, bh, bw

    def __call__(self, images):
        images = np.asarray(images)
        if images.ndim != 4:
            raise ValueError(f"BatchRandomResizedCrop: images must be (N, C, H, W), "
                             f"got {images.shape}")
        n, _, h, w = images.shape
        out_h, out_w = self.size
        top, left, bh, bw = self.boxes(n, h, w, _generator())

        def coordinates(start, extent, out):      # (n, out): the two source pixels, weight
            pos = (np.arange(out) + 0.5) * (extent[:, None] / out) - 0.5
            pos = np.clip(pos, 0, extent[:, None] - 1)        # inside the box, as torchvision
            low = np.floor(pos).astype(int)
            high = np.minimum(low + 1, extent[:, None] - 1)
            return start[:, None] + low, start[:, None] + high, (pos - low).astype(np.float32)

        y0, y1, fy = coordinates(top, bh, out_h)
        x0, x1, fx = coordinates(left, bw, out_w)
        # separable: mix two rows per output row, then two columns per output column
        rows = np.take_along_axis(images, y0[:, None, :, None], axis=2).astype(np.float32)
        rows *= 1 - fy[:, None, :, None]
        rows += np.take_along_axis(images, y1[:, None, :, None], axis=2) * fy[:, None, :, None]
        out = np.take_along_axis(rows, x0[:, None, None, :], axis=3)
        out *= 1 - fx[:, None, None, :]
        out += np.take_along_axis(rows, x1[:, None, None, :], axis=3) * fx[:, None, None, :]
        if images.dtype == np.uint8:
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return out

    def __repr__(self):
        return (f"BatchRandomResizedCrop({self.size}, scale={self.scale}, "
                f"ratio={tuple(round(r, 4) for r in self.ratio)})")


class BatchRandomFlip:
    """Mirror each (C, H, W) image of the batch left-right with probability p."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, images):
        images = np.array(images)            # a copy: the caller's array stays as it was
        flip = _generator().random(len(images)) < self.p
        images[flip] = images[flip][..., ::-1]
        return images

    def __repr__(self):
        return f"BatchRandomFlip(p={self.p})"


class BatchNormalize:
    """uint8 [0, 255] (or float [0, 1]) (N, C, H, W) -> float32 (x - mean[c]) / std[c],
    with mean and std in [0, 1] units (``channel_mean_std`` of the training images)."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
        if np.any(self.std <= 0):
            raise ValueError(f"BatchNormalize: std must be positive, got {std!r}")

    def __call__(self, images):
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1] != self.mean.shape[1]:
            raise ValueError(f"BatchNormalize: expected (N, {self.mean.shape[1]}, H, W) "
                             f"images, got shape {images.shape}")
        scale = np.float32(1 / 255.0 if images.dtype == np.uint8 else 1.0)
        out = images.astype(np.float32)                 # (x s - mean) / std, in place
        out *= scale / self.std
        out -= self.mean / self.std
        return out

    def __repr__(self):
        return (f"BatchNormalize(mean={self.mean.ravel().tolist()}, "
                f"std={self.std.ravel().tolist()})")
