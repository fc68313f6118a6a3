"""Ready architectures.

Each builder takes the namespace of layers to build from: ``tinynet.nn`` by default, or
``torch.nn``, which builds the identical PyTorch model.  The two have the same module names,
so their state_dicts have the same keys and shapes and weights move between them unchanged:

    ours = models.reference_cnn()
    theirs = models.reference_cnn(layers=torch.nn)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})

Pretrained ImageNet models (docs/pretrained.md): MobileNets read from TFLite files
(``load_tflite``, built in tinynet/mobilenet.py, the file reader in tinynet/tflite.py) and
VGG-16 with torchvision's layer names and weights (``vgg16``, tinynet/vgg.py).
"""
from . import nn as _tinynet_nn
# ---- pretrained ImageNet models (tinynet/mobilenet.py, tinynet/vgg.py) ----
from .mobilenet import PRETRAINED, load_tflite, mobilenet_input, read_labels  # noqa: F401
from .tflite import TFLiteError  # noqa: F401
from .vgg import load_torchvision_state_dict, vgg16  # noqa: F401

REFERENCE_CNN_CHANNELS = (3, 32, 64, 128, 256)


def reference_cnn(num_classes=10, layers=None):
    """The project's reference CNN (benchmarks, explain's speed budget): four 3x3 conv
    layers with 32-64-128-256 channels, each followed by ReLU, a 2x2 max-pool after the
    first three, global average pooling and a linear classifier.

    Input (N, 3, H, W) with H, W divisible by 8 (64x64 in the benchmarks); output logits
    (N, num_classes).  Module names: "0" ... "13" ("9" is the last conv layer)."""
    layers = _tinynet_nn if layers is None else layers
    c = REFERENCE_CNN_CHANNELS
    modules = []
    for i in range(4):
        modules += [layers.Conv2d(c[i], c[i + 1], 3, padding=1), layers.ReLU()]
        if i < 3:
            modules.append(layers.MaxPool2d(2))
    modules += [layers.AdaptiveAvgPool2d(1), layers.Flatten(), layers.Linear(c[-1], num_classes)]
    return layers.Sequential(*modules)


# ---- the ImageNet-subset demo's CNN (demos/imagenet_subset.py) ---------------------------

IMAGENETTE_CNN_CHANNELS = (32, 64, 128, 256)


def imagenette_cnn(num_classes=10, channels=IMAGENETTE_CNN_CHANNELS, layers=None):
    """The CNN that ``python -m demos.imagenet_subset`` trains on Imagenette photos.

    Four blocks conv3x3 -> BatchNorm2d -> ReLU with ``channels`` output channels; a 2x2
    max-pool after each of the first three; global average pooling; a linear head:

        x (N, 3, H, W) -> ... -> (N, channels[-1], H/8, W/8) -> mean over H/8, W/8
          -> logits (N, num_classes)

    Any H, W divisible by 8 works, so the demo trains on 56x56 random crops and evaluates
    the full 64x64 photos with the same weights.  The convolutions have no bias (the
    BatchNorm shift that follows would cancel it).  Module names: "features.0" (first conv)
    ... "features.14" (last ReLU); the conv layers are "features.0", ".4", ".8", ".12";
    "classifier" is the linear head.  ``layers=torch.nn`` builds the same model in PyTorch.
    """
    layers = _tinynet_nn if layers is None else layers
    c = (3,) + tuple(channels)
    features = []
    for i in range(len(c) - 1):
        features += [layers.Conv2d(c[i], c[i + 1], 3, padding=1, bias=False),
                     layers.BatchNorm2d(c[i + 1]), layers.ReLU()]
        if i < len(c) - 2:
            features.append(layers.MaxPool2d(2))
    model = layers.Sequential()
    model.add_module("features", layers.Sequential(*features))
    model.add_module("pool", layers.AdaptiveAvgPool2d(1))
    model.add_module("flatten", layers.Flatten())
    model.add_module("classifier", layers.Linear(c[-1], num_classes))
    return model
