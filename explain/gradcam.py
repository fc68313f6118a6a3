"""Grad-CAM (Selvaraju et al. 2017): where a convolutional layer "looks" for a class.

The lecture's algorithm, step by step:

    1. forward-propagate the image through the CNN
    2. take the raw score y^c of the class (the logit, before the softmax)
    3. set all other class activations to zero (upstream gradient = one-hot of c)
    4. back-propagate to the feature maps A^1..A^K of the chosen conv layer: dy^c/dA^k
    5. alpha_k^c = 1/Z sum_u sum_v dy^c/dA^k_uv          (global average of the gradients)
    6. sum_k alpha_k^c A^k                                (feature maps weighted by alpha)
    7. ReLU: keep what speaks for the class
    8. scale to [0, 1] and upsample (bilinear) to the image size to overlay it

    L^c_Grad-CAM = ReLU(sum_k alpha_k^c A^k)  in R^{U x V}

Backward stops at the layer: its output is made a leaf by a forward hook, so nothing below
it is differentiated.
"""
import numpy as np

import tinynet as tn
import tinynet.functional as F

from ._common import (as_input, batches, check_positive_int, check_targets,
                      class_score_gradients, resolve_layer, to_numpy)
from .saliency import guided_backprop


def grad_cam(model, x, target, layer=None, relu=True, upsample=True, normalize=True,
             batch_size=None):
    """Grad-CAM maps of shape (N, H, W) (or (N, U, V) at the layer with upsample=False):

        alpha_k^c = 1/Z sum_u sum_v dy^c/dA^k_uv          (Z = U V: the mean gradient)
        L^c_Grad-CAM = ReLU(sum_k alpha_k^c A^k)           in R^{U x V}

    y^c is the class's raw score (the logit, before the softmax) and A^1..A^K the feature
    maps of ``layer``; the map is then scaled to [0, 1] and resized (bilinear) to the image.

    layer      a Conv2d (or any module with a 4-D output) inside ``model``, or its dotted
               name from ``model.named_modules()``; None = the last Conv2d module (the
               lecture's "last convolutional layer").  A^k is the chosen module's output,
               so for a Conv2d the maps before the ReLU that follows it (as Captum's
               LayerGradCam on that Conv2d); name the ReLU module to use those after it
    relu       the ReLU: keep what speaks for the class (off: the signed map)
    upsample   the bilinear resize to the input's H x W (off: the layer's U x V)
    normalize  the per-image min-max scaling to [0, 1] (a constant map becomes 0)

    With relu, upsample and normalize off the result is the raw sum_k alpha_k A^k, the number
    other libraries report (Captum's LayerGradCam with relu_attributions=False).
    """
    xt = as_input(x, model, image=upsample)
    _, module = resolve_layer(model, layer)
    n = xt.shape[0]
    target = check_targets(target, n)
    batch_size = n if batch_size is None else check_positive_int(batch_size, "batch_size")
    maps = []
    for a, b in batches(n, batch_size):
        _, grad, act = class_score_gradients(model, xt[a:b] if b - a < n else xt,
                                             target[a:b], wrt="layer", layer_module=module)
        grad, act = to_numpy(grad), to_numpy(act)
        if act.ndim != 4:
            raise ValueError(f"grad_cam needs a layer with feature maps (N, K, U, V), the chosen "
                             f"layer gives shape {act.shape}")
        alpha = grad.mean(axis=(2, 3), keepdims=True)       # step 5: (N, K, 1, 1)
        cam = (alpha * act).sum(axis=1)                     # step 6: (N, U, V)
        maps.append(cam)
    cam = np.concatenate(maps)
    if relu:
        cam = np.maximum(cam, 0)                            # step 7
    if upsample:
        cam = upsample_maps(cam, xt.shape[2:])              # step 8
    if normalize:
        cam = minmax(cam)
    return cam.astype(to_numpy(xt).dtype, copy=False)


def upsample_maps(maps, size):
    """Bilinear resize of (N, U, V) maps to (N, H, W) with F.interpolate (align_corners=False)."""
    maps = np.asarray(maps)
    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    with tn.no_grad():
        up = F.interpolate(tn.tensor(maps[:, None]), size=tuple(int(s) for s in size),
                           mode="bilinear", align_corners=False)
    return to_numpy(up)[:, 0]


def minmax(maps):
    """Scale each map to [0, 1]: (m - min) / (max - min); a constant map becomes all zeros."""
    maps = np.asarray(maps)
    flat = maps.reshape(maps.shape[0], -1)
    low = flat.min(axis=1, keepdims=True)
    span = flat.max(axis=1, keepdims=True) - low
    scaled = np.where(span > 0, (flat - low) / np.where(span > 0, span, 1), 0)
    return scaled.reshape(maps.shape).astype(maps.dtype, copy=False)


def guided_grad_cam(model, x, target, layer=None, batch_size=None):
    """Guided Grad-CAM: guided backpropagation (N, C, H, W) times the upsampled Grad-CAM map,
    pixel by pixel: high-resolution detail restricted to the class-discriminative region,

        R[n, c, h, w] = guided_backprop[n, c, h, w] * upsample(L^c_Grad-CAM)[n, h, w]"""
    cam = grad_cam(model, x, target, layer, batch_size=batch_size)
    guided = guided_backprop(model, x, target, batch_size=batch_size)
    return guided * cam[:, None]
