"""VGG-16 (Simonyan & Zisserman 2015) with torchvision's layer names, and its weights.

    model = tinynet.models.vgg16(weights="vgg16.npz")    # eval mode, 1000 ImageNet classes

The module names are torchvision's, so a torchvision ``vgg16`` state_dict loads unchanged:

    features.0 ... features.30   13 conv3x3 (+ ReLU) and 5 max-pools; the conv layers are
                                 features.0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28
    avgpool                      AdaptiveAvgPool2d(7): any input size gives (N, 512, 7, 7)
    flatten                      (N, 512, 7, 7) -> (N, 25088); torchvision calls
                                 torch.flatten in forward instead (no weights either way)
    classifier.0, 3, 6           Linear 25088-4096-4096-1000, with ReLU and Dropout between

Input: RGB in [0, 1], normalized per channel with the ImageNet mean (0.485, 0.456, 0.406)
and std (0.229, 0.224, 0.225), as for every torchvision ImageNet model.

Getting the real weights (528 MB) is the user's step; tinynet reads them without pickle:

    wget https://download.pytorch.org/models/vgg16-397923af.pth
    python -m tinynet.vgg vgg16-397923af.pth vgg16.npz     # once, needs PyTorch

The converter uses torch only to read the .pth (``torch.load(weights_only=True)``) and
writes a plain .npz, which ``load_torchvision_state_dict`` reads with NumPy alone.
"""
import argparse
from collections import OrderedDict
from pathlib import Path

import numpy as np

from . import nn as _tinynet_nn
from .io import load, save

VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M")
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16(num_classes=1000, weights=None, dropout=0.5, layers=None):
    """torchvision's VGG-16 (no batch norm).  ``weights``: a .npz (or, with torch installed,
    a .pth) torchvision state_dict file; the model is then put in eval mode.  ``layers``:
    the namespace to build from (tinynet.nn by default, or torch.nn), as in this package's
    other builders."""
    layers = _tinynet_nn if layers is None else layers
    features, channels = [], 3
    for v in VGG16_CONFIG:
        if v == "M":
            features.append(layers.MaxPool2d(kernel_size=2, stride=2))
        else:
            features += [layers.Conv2d(channels, v, kernel_size=3, padding=1),
                         layers.ReLU(inplace=True)]
            channels = v
    classifier = [layers.Linear(512 * 7 * 7, 4096), layers.ReLU(inplace=True),
                  layers.Dropout(p=dropout), layers.Linear(4096, 4096),
                  layers.ReLU(inplace=True), layers.Dropout(p=dropout),
                  layers.Linear(4096, num_classes)]
    model = layers.Sequential(OrderedDict(
        features=layers.Sequential(*features), avgpool=layers.AdaptiveAvgPool2d((7, 7)),
        flatten=layers.Flatten(), classifier=layers.Sequential(*classifier)))
    if weights is not None:
        if layers is not _tinynet_nn:
            raise ValueError("vgg16: weights= loads into a tinynet model only "
                             f"(layers={getattr(layers, '__name__', layers)!r})")
        model.load_state_dict(load_torchvision_state_dict(weights))
        model.eval()
    return model


def load_torchvision_state_dict(path):
    """A torchvision state_dict as {name: float32 ndarray}: from a .npz (NumPy only, no
    pickle) or, when PyTorch is installed, from the .pth file itself."""
    path = Path(path)
    if path.suffix in (".pth", ".pt"):
        return _read_pth(path)
    state = load(path)
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ValueError(f"{path}: expected a flat {{name: array}} state_dict .npz "
                         "(as written by `python -m tinynet.vgg SRC.pth DST.npz`)")
    return state


def _read_pth(path):
    try:
        import torch
    except ImportError:
        raise ImportError(f"{path}: reading a .pth file needs PyTorch; convert it once where "
                          f"torch is installed (python -m tinynet.vgg {path.name} "
                          f"{path.stem}.npz) and load the .npz") from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict (a dict of tensors), got "
                         f"{type(state).__name__}")
    return {k: v.detach().numpy() for k, v in state.items() if torch.is_tensor(v)}


def convert_torch_state_dict(src, dst):
    """Convert a PyTorch state_dict file ``src`` (.pth) into ``dst`` (.npz); returns the
    number of arrays.  Written atomically by ``tinynet.save``."""
    state = _read_pth(Path(src))
    save(state, dst)
    return len(state)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tinynet.vgg",
        description="Convert a torchvision state_dict (.pth, e.g. " + VGG16_URL.rsplit("/", 1)[1]
                    + ") to a .npz that tinynet loads without torch or pickle.")
    parser.add_argument("src", type=Path, help="the .pth file")
    parser.add_argument("dst", type=Path, help="the .npz file to write")
    args = parser.parse_args(argv)
    count = convert_torch_state_dict(args.src, args.dst)
    print(f"wrote {count} arrays to {args.dst}")


if __name__ == "__main__":
    main()
