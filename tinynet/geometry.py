"""Window geometry shared by the kernels, the ops and the layers: one definition of each.

Notation: H input length along one axis, KH kernel, SH stride, PH zero padding on each
side, DH dilation, OH output length.
"""
import numpy as np

# A convolution whose im2col matrix would exceed this runs in slices of the batch, so that
# col (KH KW copies of the input) never needs more memory than this at once.
MAX_COL_BYTES = 256 * 2**20


def pair(value, name="value", op=None):
    """``3`` -> (3, 3); ``(3, 5)`` -> (3, 5).  Anything that is not one or two ints (a bool
    included) is refused with a TypeError naming ``name`` (and ``op`` when given)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
            for v in value):
        return int(value[0]), int(value[1])
    where = f"{op}: " if op else ""
    raise TypeError(f"{where}{name} must be an int or a pair of ints, got {value!r}")


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    """Output length along one axis of a convolution or pooling window (as in PyTorch):

        OH = floor((H + 2 PH - DH (KH - 1) - 1) / SH) + 1

    DH (KH - 1) + 1 is the span of the dilated kernel.  May be <= 0 when the kernel does
    not fit; callers check that."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_output_hw(x_shape, kernel, stride, padding, dilation=(1, 1)):
    """(OH, OW) of an (N, C, H, W) input for (KH, KW), (SH, SW), (PH, PW), (DH, DW)."""
    return (conv_output_size(x_shape[2], kernel[0], stride[0], padding[0], dilation[0]),
            conv_output_size(x_shape[3], kernel[1], stride[1], padding[1], dilation[1]))


def is_depthwise(weight_shape, groups):
    """One input channel per group (C = G; O = M C with a channel multiplier M >= 1)."""
    return groups > 1 and weight_shape[1] == 1


def batch_step(x_shape, weight_shape, out_pixels, itemsize):
    """Examples per slice so that col (C KH KW, n, OH OW) stays under MAX_COL_BYTES."""
    per_example = x_shape[1] * weight_shape[2] * weight_shape[3] * out_pixels * itemsize
    return max(1, MAX_COL_BYTES // max(per_example, 1))
