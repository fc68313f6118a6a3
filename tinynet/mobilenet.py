"""Pretrained MobileNets (v1 and v2) imported from TensorFlow Lite files.

    model = tinynet.models.load_tflite("mobilenet_v2_1.0_224_quant.tflite")
    x = tinynet.models.mobilenet_input(images_uint8)     # (N, H, W, 3) uint8 -> (x - 128) / 128
    logits = model(x)                                    # (N, 1001), index 0 = "background"

The file's graph is a chain of TFLite ops; ``load_tflite`` turns each into ordinary tinynet
layers and groups them the way the MobileNet papers draw them, so that Grad-CAM and TCAV can
name a layer (``model.named_modules()``):

    features.0                 the stem: 3x3 conv, stride 2, ReLU6
    features.K (K >= 1)        a block: [expand 1x1 conv, ReLU6] (v2 only) ->
                               depthwise 3x3 conv, ReLU6 -> pointwise 1x1 conv
                               (v1: + ReLU6; v2: linear, plus the block input when the
                               file adds it: the residual ADD)
        features.K.expand / .depthwise / .pointwise   each a ConvUnit: [pad] conv [act]
    features.18                v2 only: the last 1x1 conv to 1280 channels, ReLU6
    pool                       average over the whole feature map
    classifier                 1x1 conv to 1001 classes (TFLite's logits layer)
    flatten                    (N, 1001, 1, 1) -> (N, 1001)
    softmax                    only with ``softmax=True``

The model returns the *pre-softmax* logits by default: explanation methods differentiate the
class score S_c, not its probability.  ``model.tflite_names`` maps each module name to the
TFLite tensor it reproduces.

Weights are dequantized once (real = scale * (q - zero_point)) and everything after that
runs in float: activations are not re-quantized between layers, so the outputs are those of
"a plain float computation with the dequantized weights", not bit-exact to the uint8
interpreter.  Layouts: TFLite's NHWC activations become NCHW, conv weights [O, KH, KW, I]
become (O, I, KH, KW), depthwise weights [1, KH, KW, C] become (C, 1, KH, KW), groups = C.

TensorFlow's 'SAME' padding is worked out once, for the input size the file fixes (e.g.
224): even padding goes into the Conv2d, uneven padding (stride 2 on an even size: the extra
row and column at the bottom and right) into a ZeroPad2d before it.  Other input sizes run
with those same pads, which is what TensorFlow would do for every even size.
"""
import math
from collections import OrderedDict

import numpy as np

from . import functional as F
from . import nn
from .autograd import Tensor
from .tflite import TFLiteError, dequantize, read_tflite

_GITHUB = ("https://raw.githubusercontent.com/google-coral/test_data/"
           "104342d2d3480b3e66203073dac24f4e2dbb4c41/")
LABELS = {"file": "imagenet_labels.txt", "url": _GITHUB + "imagenet_labels.txt",
          "sha256": "b8aaeb5630c62626a7d124a05c0e14230a7ffdd2136a31d0190a4fb71c1d82f1"}


def _entry(name, size, sha256):
    file = name + "_quant.tflite"
    return {"file": file, "url": _GITHUB + file, "sha256": sha256, "input_size": size,
            "num_classes": 1001, "input_mean": 128.0, "input_std": 128.0, "format": "tflite",
            "labels": LABELS, "license": "Apache-2.0 (google-coral/test_data)"}


# The four MobileNets of google-coral/test_data (commit pinned): where to fetch them and
# how to check them.  ``load_tflite(path)`` reads a downloaded copy.
PRETRAINED = {
    "mobilenet_v1_0.25_128": _entry(
        "mobilenet_v1_0.25_128", 128,
        "cb273c23ee76374b05b9583177e28aa19744858a7679c56a250e83d0333da785"),
    "mobilenet_v1_0.5_160": _entry(
        "mobilenet_v1_0.5_160", 160,
        "3cc6d2ca460abd2e0f699a6d0d2550c6b61c6e3b0e27a3616e384ea74cb86f43"),
    "mobilenet_v1_0.75_192": _entry(
        "mobilenet_v1_0.75_192", 192,
        "41daeb22fdcf947e0e5ec32373aa9df7c31f3ef45dbd0ef7b5940fbce3c20f6a"),
    "mobilenet_v2_1.0_224": _entry(
        "mobilenet_v2_1.0_224", 224,
        "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776"),
}

SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "AVERAGE_POOL_2D", "RESHAPE", "SOFTMAX")
_ACTIVATIONS = {None: None, "relu": nn.ReLU, "relu6": nn.ReLU6}


class ConvUnit(nn.Module):
    """One TFLite convolution op: [pad] -> conv -> [fused activation].

    ``pad`` is present only where TensorFlow's 'SAME' padding is uneven (stride 2 on an even
    input: the extra row and column go at the bottom and right); even padding is the conv's
    own ``padding``."""

    def __init__(self, conv, pad=None, act=None):
        super().__init__()
        self.pad, self.conv, self.act = pad, conv, act

    def forward(self, x):
        if self.pad is not None:
            x = self.pad(x)
        x = self.conv(x)
        return x if self.act is None else self.act(x)


class Block(nn.Sequential):
    """A MobileNet block: its ConvUnits in order (expand, depthwise, pointwise), plus the
    block's input when ``residual`` (MobileNet v2's skip connection, TFLite's ADD)."""

    def __init__(self, units, residual=False):
        super().__init__(OrderedDict(units))
        self.residual = residual

    def forward(self, x):
        y = super().forward(x)
        return y + x if self.residual else y

    def extra_repr(self):
        return "residual=True" if self.residual else ""


def mobilenet_input(images, scale=1 / 128, zero_point=128):
    """uint8 RGB images (N, H, W, 3) or one (H, W, 3) -> the float32 (N, 3, H, W) Tensor the
    TFLite MobileNets expect: scale * (x - zero_point) = (x - 128) / 128, in [-1, 1)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"mobilenet_input: images must be (N, H, W, 3) or (H, W, 3) RGB, got "
                         f"shape {images.shape}")
    x = (images.astype(np.float32) - zero_point) * np.float32(scale)
    return Tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def read_labels(path):
    """The 1001 class names of a labels file (line 0 'background', line i+1 = ImageNet i)."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


# ---- building the Module from the op list ----------------------------------------------------

def load_tflite(path, softmax=False):
    """Read a MobileNet (v1 or v2) from the TFLite file at ``path`` and return it as a tinynet
    Module (an nn.Sequential: features, pool, classifier, flatten; layer names in this
    module's docstring) in eval mode, float32.

    It returns logits (N, 1001) by default; ``softmax=True`` appends the file's SOFTMAX.
    Attributes: ``input_size`` (H, W), ``input_scale``/``input_zero_point`` (the input's
    quantization: feed scale * (x - zero_point), see ``mobilenet_input``), ``tflite_names``
    (module name -> TFLite tensor name).

    A truncated or corrupt file, an op other than CONV_2D, DEPTHWISE_CONV_2D, ADD,
    AVERAGE_POOL_2D, RESHAPE, SOFTMAX, or a graph that is not such a chain raises
    ``TFLiteError`` naming the file and the op, before any model is returned."""
    graph = read_tflite(path)
    return _Builder(graph).build(softmax)


def _tf_padding(padding, size, kernel, stride, dilation):
    """TensorFlow's padding of one axis as (before, after).  'SAME' makes the output
    ceil(size / stride) and pads what that needs, the odd pixel after (bottom/right)."""
    if padding == "VALID":
        return 0, 0
    span = dilation * (kernel - 1) + 1
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def _out_size(size, kernel, stride, dilation):
    return (size - dilation * (kernel - 1) - 1) // stride + 1


class _Builder:
    """Walks the ops in execution order.  ``current`` is the tensor the chain has reached;
    every op must read it (only ADD also reads the input of the block it closes)."""

    def __init__(self, graph):
        self.graph, self.path = graph, graph.path
        self.features = OrderedDict()   # name -> module (stem, blocks, v2's last conv)
        self.block = OrderedDict()      # the block being collected: unit name -> ConvUnit
        self.block_outputs = {}         # unit name -> TFLite tensor index
        self.block_input = None
        self.last_block = None          # (name, Block, input tensor) of the last closed block
        self.head = OrderedDict()       # pool, classifier, flatten, softmax
        self.names = {}                 # module name -> TFLite tensor index

    def error(self, op, message):
        return TFLiteError(f"{self.path}: operator {op.index} ({op.op}): {message}")

    def expect_input(self, op, tensor):
        if tensor != self.current:
            raise self.error(op, f"reads tensor {tensor}, but the importer follows a chain of "
                                 f"ops (expected tensor {self.current}); graph not supported")

    def advance(self, op, name):
        self.current = op.outputs[0]
        self.names[name] = self.current

    def activation(self, op):
        act = op.options.get("activation")
        if act not in _ACTIVATIONS:
            raise self.error(op, f"fused activation {act!r} is not supported "
                                 "(supported: none, relu, relu6)")
        return None if act is None else _ACTIVATIONS[act]()

    def const(self, op, index, what):
        tensor = self.graph.tensors[index]
        if tensor.data is None:
            raise self.error(op, f"the {what} (tensor {index}) has no constant data")
        return tensor

    def conv_unit(self, op):
        x_index, w_index = op.inputs[:2]
        b_index = op.inputs[2] if len(op.inputs) > 2 else -1
        self.expect_input(op, x_index)
        weight_t = self.const(op, w_index, "weight")
        opts = op.options
        x_shape = self.graph.tensors[x_index].shape
        if (len(x_shape) != 4 or len(weight_t.shape) != 4 or opts.get("padding") is None
                or min(opts["stride"] + opts["dilation"]) < 1):
            raise self.error(op, f"input {list(x_shape)}, weight {list(weight_t.shape)} or "
                                 f"options {opts} are not a valid 2-D convolution")
        _, h, w, c_in = x_shape
        weight = dequantize(weight_t)
        if op.op == "CONV_2D":                    # [O, KH, KW, I] -> (O, I, KH, KW)
            weight, groups = weight.transpose(0, 3, 1, 2), 1
        else:                                     # [1, KH, KW, C*M] -> (C*M, 1, KH, KW)
            weight, groups = weight.transpose(3, 0, 1, 2), c_in
        c_out, _, kh, kw = weight.shape
        if weight.shape[1] * groups != c_in or c_out % groups:
            raise self.error(op, f"weight {list(weight_t.shape)} does not fit {c_in} input "
                                 "channels")
        stride, dilation = op.options["stride"], op.options["dilation"]
        (top, bottom), (left, right) = [
            _tf_padding(op.options["padding"], size, k, s, d)
            for size, k, s, d in zip((h, w), (kh, kw), stride, dilation)]
        even = top == bottom and left == right
        expected = (_out_size(h + top + bottom, kh, stride[0], dilation[0]),
                    _out_size(w + left + right, kw, stride[1], dilation[1]), c_out)
        out_shape = self.graph.tensors[op.outputs[0]].shape
        if tuple(out_shape[1:]) != expected:
            raise self.error(op, f"output shape {list(out_shape)} differs from the computed "
                                 f"(N, {expected[0]}, {expected[1]}, {expected[2]})")
        conv = nn.Conv2d(c_in, c_out, (kh, kw), stride, (top, left) if even else 0, dilation,
                         groups, bias=b_index >= 0)
        conv.weight.data = np.ascontiguousarray(weight)
        if b_index >= 0:
            conv.bias.data = self.bias(op, b_index, x_index, weight_t)
        pad = None if even else nn.ZeroPad2d((left, right, top, bottom))
        return ConvUnit(conv, pad, self.activation(op))

    def bias(self, op, b_index, x_index, weight_t):
        """An int32 bias q stands for s_x * s_w * q: TFLite's rule, its scale is the input's
        times the weight's (per output channel where the weight has one scale per channel).
        The scale the file stores for the bias is that product to float32 rounding."""
        bias_t = self.const(op, b_index, "bias")
        x_scale = self.graph.tensors[x_index].scale
        if bias_t.dtype.kind in "iu":
            if x_scale is None or weight_t.scale is None:
                raise self.error(op, "integer bias, but the input or the weight has no "
                                     "quantization scale")
            scale = x_scale * weight_t.scale
            bias_t = bias_t._replace(scale=scale, zero_point=np.zeros(scale.shape, np.int64),
                                     quantized_dimension=0)
        return dequantize(bias_t).reshape(-1)

    def feature_conv(self, op):
        """A conv before the pooling: the stem, or one unit of a block."""
        start = self.current
        unit = self.conv_unit(op)
        if op.op == "DEPTHWISE_CONV_2D":
            name = "depthwise"
            if name in self.block:
                raise self.error(op, "two depthwise convs in one block")
        elif not self.features and not self.block:
            self.features["0"] = unit
            return self.advance(op, "features.0")
        else:
            name = "pointwise" if "depthwise" in self.block else "expand"
            if name in self.block:
                raise self.error(op, "two 1x1 convs in a row do not form a MobileNet block")
        if not self.block:
            self.block_input = start
        self.block[name] = unit
        self.current = self.block_outputs[name] = op.outputs[0]
        if name == "pointwise":
            self.close_block()

    def close_block(self):
        name = str(len(self.features))
        block = self.features[name] = Block(self.block)
        for unit, tensor in self.block_outputs.items():
            self.names[f"features.{name}.{unit}"] = tensor
        self.names[f"features.{name}"] = self.current
        self.last_block = (name, block, self.block_input)
        self.block, self.block_outputs = OrderedDict(), {}

    def residual_add(self, op):
        name, block, block_input = self.last_block or (None, None, None)
        if (block is None or next(reversed(self.features.values())) is not block
                or sorted(op.inputs) != sorted((block_input, self.current))
                or op.options.get("activation") is not None):
            raise self.error(op, "only the residual ADD of a block's input and output "
                                 "(without fused activation) is supported")
        block.residual = True
        self.advance(op, f"features.{name}")

    def pool(self, op):
        self.expect_input(op, op.inputs[0])
        if list(self.block) == ["expand"]:     # v2's last 1x1 conv is a layer of its own
            name = str(len(self.features))
            self.features[name] = self.block["expand"]
            self.names[f"features.{name}"] = self.block_outputs["expand"]
            self.block, self.block_outputs = OrderedDict(), {}
        elif self.block:
            raise self.error(op, f"pooling inside an unfinished block ({', '.join(self.block)})")
        shape, opts = self.graph.tensors[op.inputs[0]].shape, op.options
        if (len(shape) != 4 or opts.get("padding") != "VALID" or opts["activation"] is not None
                or min(opts["stride"] + opts["filter"]) < 1):
            raise self.error(op, f"only VALID average pooling of an (N, H, W, C) input without "
                                 f"activation is supported, got {list(shape)} with {opts}")
        _, h, w, _ = shape
        # a window over the whole map is global pooling: then any input size works
        self.head["pool"] = (nn.AdaptiveAvgPool2d(1) if opts["filter"] == (h, w)
                             else nn.AvgPool2d(opts["filter"], opts["stride"]))
        self.advance(op, "pool")

    def flatten(self, op):
        self.expect_input(op, op.inputs[0])
        in_shape = self.graph.tensors[op.inputs[0]].shape
        out_shape = self.graph.tensors[op.outputs[0]].shape
        if len(in_shape) != 4 or in_shape[1:3] != (1, 1) or out_shape[1:] != in_shape[3:]:
            raise self.error(op, f"only a reshape (N, 1, 1, C) -> (N, C) is supported, got "
                                 f"{list(in_shape)} -> {list(out_shape)}")
        self.head["flatten"] = nn.Flatten()
        self.advance(op, "flatten")

    def build(self, softmax):
        graph = self.graph
        for op in graph.operators:                     # check every op before building
            if op.op not in SUPPORTED_OPS:
                raise self.error(op, f"op {op.op} is not supported by tinynet's importer "
                                     f"(supported: {', '.join(SUPPORTED_OPS)})")
        if len(graph.inputs) != 1 or len(graph.tensors[graph.inputs[0]].shape) != 4:
            raise TFLiteError(f"{self.path}: expected one (1, H, W, C) image input, got "
                              f"{[graph.tensors[i].shape for i in graph.inputs]}")
        self.current = graph.inputs[0]
        for op in graph.operators:
            if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D") and not self.head:
                self.feature_conv(op)
            elif op.op == "ADD":
                self.residual_add(op)
            elif op.op == "AVERAGE_POOL_2D" and "pool" not in self.head:
                self.pool(op)
            elif op.op == "CONV_2D" and list(self.head) == ["pool"]:
                self.head["classifier"] = self.conv_unit(op)
                self.advance(op, "classifier")
            elif op.op == "RESHAPE" and "flatten" not in self.head:
                self.flatten(op)
            elif op.op == "SOFTMAX" and op is graph.operators[-1]:
                self.expect_input(op, op.inputs[0])
                if op.options.get("beta", 1.0) != 1.0:
                    raise self.error(op, f"softmax with beta={op.options['beta']} (only 1.0)")
                if softmax:
                    self.head["softmax"] = nn.Softmax(dim=1)
                    self.advance(op, "softmax")
                else:
                    self.current = op.outputs[0]
            else:
                raise self.error(op, "this op at this place is not a MobileNet layer")
        if self.block or "classifier" not in self.head:
            raise TFLiteError(f"{self.path}: the graph ends before the classifier")
        if tuple(graph.outputs) != (self.current,):
            raise TFLiteError(f"{self.path}: the graph's output {list(graph.outputs)} is not "
                              f"the end of the op chain (tensor {self.current})")
        return self.module()

    def module(self):
        model = nn.Sequential(OrderedDict(features=nn.Sequential(self.features), **self.head))
        model.eval()
        input_t = self.graph.tensors[self.graph.inputs[0]]
        model.input_size = tuple(input_t.shape[1:3])
        model.input_scale = None if input_t.scale is None else float(input_t.scale[0])
        model.input_zero_point = (None if input_t.zero_point is None
                                  else int(input_t.zero_point[0]))
        model.tflite_names = {name: self.graph.tensors[i].name for name, i in self.names.items()}
        return model
