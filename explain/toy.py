"""Small tasks whose right explanation is known, and tiny CNNs trained on them in seconds.

    x, y, masks = bright_squares(64, seed=1)     # class 1: a bright square at a random place
    model = bright_square_model()               # a CNN trained on it (cached per process)

    x, y = striped_patches(64, seed=1)          # class 1: a striped patch at a random place
    model = striped_patch_model()

An explanation of class 1 should point at the square (``masks``); TCAV with a striped concept
should find that stripes matter.  Used by the tests and the README examples.
"""
import functools

import numpy as np

import tinynet as tn
import tinynet.functional as F
from tinynet import nn, optim

SIZE = 16


def bright_squares(n, seed=0, size=SIZE, side=4):
    """Dim noise in [0, 0.3); class-1 images hold a bright (1.0) side x side square at a
    random place.  Returns images (n, 1, size, size) float32, labels, and the square's mask
    (also drawn for class 0, where nothing is planted)."""
    rng = np.random.default_rng(seed)
    x = (0.3 * rng.random((n, 1, size, size))).astype(np.float32)
    y = rng.integers(0, 2, n)
    masks = np.zeros((n, size, size), bool)
    for i, (r, c) in enumerate(rng.integers(0, size - side + 1, size=(n, 2))):
        masks[i, r:r + side, c:c + side] = True
        if y[i] == 1:
            x[i, 0, r:r + side, c:c + side] = 1.0
    return x, y, masks


def stripes(n, rng, size=SIZE):
    """Horizontal stripes of period 2 (random phase) plus a little noise: (n, 1, size, size)."""
    rows = (np.arange(size)[None, :] + rng.integers(0, 2, (n, 1))) % 2
    img = np.repeat(rows[:, :, None], size, axis=2)
    return (0.8 * img + 0.2 * rng.random((n, size, size)))[:, None].astype(np.float32)


def noise(n, rng, size=SIZE):
    """Uniform noise images (n, 1, size, size): random examples for TCAV."""
    return rng.random((n, 1, size, size)).astype(np.float32)


def striped_patches(n, seed=0, size=SIZE, side=6):
    """Noise in [0.25, 0.75); class-1 images carry a striped side x side patch at a random
    place.  Patch and background have the same mean brightness (0.5), so only the stripes
    tell the classes apart."""
    rng = np.random.default_rng(seed)
    x = 0.25 + 0.5 * noise(n, rng, size)
    y = rng.integers(0, 2, n)
    patch = stripes(n, rng, side)
    for i, (r, c) in enumerate(rng.integers(0, size - side + 1, size=(n, 2))):
        if y[i] == 1:
            x[i, :, r:r + side, c:c + side] = patch[i]
    return x, y


def small_cnn(channels=(8, 8)):
    """conv3x3-ReLU-conv3x3-ReLU-global average pool-linear, for one-channel images, 2 classes.
    Layer names: '0' conv, '1' ReLU, '2' conv, '3' ReLU, '4' pool, '5' flatten, '6' linear."""
    a, b = channels
    return nn.Sequential(nn.Conv2d(1, a, 3, padding=1), nn.ReLU(), nn.Conv2d(a, b, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(b, 2))


def photo_cnn():
    """Three conv3x3-ReLU blocks (8-16-16 channels, max-pooling after the first two), global
    average pool, linear: a 2-class detector for RGB photos, small enough to train in seconds.
    Layer names: '0', '3', '6' convs, '2', '5' pools, '7' ReLU, '8' global pool, '10' linear."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(16, 2))


def train(model, x, y, epochs=4, batch_size=32, lr=0.02):
    """Adam on cross-entropy, in order (the data are already shuffled)."""
    opt = optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        for a in range(0, len(x), batch_size):
            opt.zero_grad()
            F.cross_entropy(model(tn.tensor(x[a:a + batch_size])),
                            tn.tensor(y[a:a + batch_size])).backward()
            opt.step()
    return model


@functools.lru_cache(maxsize=1)
def bright_square_model():
    """``small_cnn()`` trained on 256 ``bright_squares`` (seed 0); about 100% accurate.
    Cached: the same instance is returned each call, so do not modify it in place."""
    tn.manual_seed(0)
    x, y, _ = bright_squares(256, seed=0)
    return train(small_cnn((8, 8)), x, y)


@functools.lru_cache(maxsize=1)
def striped_patch_model():
    """``small_cnn((6, 8))`` trained on 256 ``striped_patches`` (seed 0), 8 epochs.  Cached."""
    tn.manual_seed(0)
    x, y = striped_patches(256, seed=0)
    return train(small_cnn((6, 8)), x, y, epochs=8)
