"""Read a TensorFlow Lite model file (``.tflite``) with nothing but ``struct`` and NumPy.

A .tflite file is a FlatBuffer: one byte string holding nested *tables*, read in place
without unpacking.  The whole format needs five rules (all integers little-endian):

    file[0:4]     uint32  offset of the root table (the Model)
    file[4:8]     b"TFL3" the file identifier of TensorFlow Lite
    table at T    int32   soffset: the table's *vtable* starts at T - soffset
    vtable at V   uint16  vtable size in bytes, uint16 table size, then one uint16 per
                          field (slot): the field's offset from T, 0 = absent (default)
    reference     uint32  a field that is a table, vector or string holds an offset u,
                          counted from the field's own position P: the target is at P + u
    vector/string uint32  length n, then n elements (a vector of tables: n references;
                          a string: n bytes of UTF-8)

The schema (tensorflow/lite/schema/schema.fbs) gives each table's fields by slot number.
Only the slots tinynet reads are listed; a union takes two slots (type, then value):

    Model                 1 operator_codes, 2 subgraphs, 3 description, 4 buffers
    OperatorCode          0 deprecated_builtin_code (int8), 3 builtin_code (int32);
                          the op is the larger of the two (the int8 field saturates at 127)
    SubGraph              0 tensors, 1 inputs, 2 outputs, 3 operators
    Tensor                0 shape [int32], 1 type (uint8), 2 buffer (uint32), 3 name,
                          4 quantization
    QuantizationParameters 2 scale [float32], 3 zero_point [int64], 6 quantized_dimension
    Operator              0 opcode_index, 1 inputs, 2 outputs, 4 builtin_options (table)
    Buffer                0 data [uint8], 1 offset (uint64): data stored outside the
                          FlatBuffer (files over 2 GB), which this reader does not support
    Conv2DOptions         0 padding (0 SAME, 1 VALID), 1 stride_w, 2 stride_h,
                          3 fused_activation_function, 4 dilation_w, 5 dilation_h
    DepthwiseConv2DOptions 0 padding, 1 stride_w, 2 stride_h, 3 depth_multiplier,
                          4 fused_activation_function, 5 dilation_w, 6 dilation_h
    Pool2DOptions         0 padding, 1 stride_w, 2 stride_h, 3 filter_width,
                          4 filter_height, 5 fused_activation_function
    ReshapeOptions        0 new_shape [int32]
    AddOptions            0 fused_activation_function
    SoftmaxOptions        0 beta (float32)

A quantized tensor holds integers q; its real value is ``scale * (q - zero_point)``.

Any read outside the file (a truncated or corrupt file) raises ``TFLiteError`` naming the
file, never an IndexError from deep inside.
"""
import struct
from collections import namedtuple
from pathlib import Path

import numpy as np

FILE_IDENTIFIER = b"TFL3"

# BuiltinOperator codes (schema.fbs), the ones worth naming in messages.
BUILTIN_OPS = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE", 6: "DEQUANTIZE", 8: "FLOOR", 9: "FULLY_CONNECTED",
    11: "L2_NORMALIZATION", 12: "L2_POOL_2D", 13: "LOCAL_RESPONSE_NORMALIZATION",
    14: "LOGISTIC", 16: "LSTM", 17: "MAX_POOL_2D", 18: "MUL", 19: "RELU", 21: "RELU6",
    22: "RESHAPE", 23: "RESIZE_BILINEAR", 25: "SOFTMAX", 26: "SPACE_TO_DEPTH", 28: "TANH",
    32: "CUSTOM", 34: "PAD", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB", 43: "SQUEEZE",
}
# TensorType codes -> NumPy dtypes (the integer and float types a classifier uses).
TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64,
                7: np.int16, 9: np.int8, 10: np.float64}
PADDING = {0: "SAME", 1: "VALID"}
ACTIVATIONS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh", 5: "sign_bit"}

Tensor = namedtuple("Tensor", "index name shape dtype data scale zero_point quantized_dimension")
Tensor.__doc__ = """One tensor of the graph.  ``data`` is the constant's array in the file's
dtype and shape (None for activations); ``scale``/``zero_point`` are float64/int64 arrays
(one entry per tensor, or one per channel along ``quantized_dimension``), None if not
quantized."""
Operator = namedtuple("Operator", "index op inputs outputs options")
Operator.__doc__ = """One op: ``op`` its name (e.g. "CONV_2D", or "BUILTIN_<code>" if unknown
here), ``inputs``/``outputs`` tensor indices (-1 = optional input left out), ``options``
a dict of the builtin options read for that op (empty for ops this reader does not know)."""
TFLiteModel = namedtuple("TFLiteModel", "path tensors operators inputs outputs description")


class TFLiteError(ValueError):
    """A .tflite file that is truncated, corrupt, or uses what tinynet cannot import."""


class _FlatBuffer:
    """Bounds-checked little-endian reads from the file's bytes."""

    def __init__(self, data, path):
        self.data, self.path = data, path

    def check(self, pos, size):
        if pos < 0 or pos + size > len(self.data):
            raise TFLiteError(f"{self.path}: truncated or corrupt TFLite file (needs bytes "
                              f"{pos}..{pos + size}, the file has {len(self.data)})")

    def read(self, fmt, pos):
        self.check(pos, struct.calcsize("<" + fmt))
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def read_many(self, fmt, pos, count):
        self.check(pos, struct.calcsize("<" + fmt) * count)
        return struct.unpack_from(f"<{count}{fmt}", self.data, pos)

    def table(self, pos):
        return _Table(self, pos)


class _Table:
    """A table at ``pos``: fields are looked up by slot number through its vtable."""

    def __init__(self, fb, pos):
        self.fb, self.pos = fb, pos
        self.vtable = pos - fb.read("i", pos)
        self.vtable_size = fb.read("H", self.vtable)

    def _field(self, slot):
        """Position of the field in slot ``slot``, or None if the field is absent."""
        entry = 4 + 2 * slot
        if entry + 2 > self.vtable_size:      # an older writer: the slot did not exist yet
            return None
        offset = self.fb.read("H", self.vtable + entry)
        return self.pos + offset if offset else None

    def scalar(self, slot, fmt, default=0):
        pos = self._field(slot)
        return default if pos is None else self.fb.read(fmt, pos)

    def _target(self, slot):
        pos = self._field(slot)
        return None if pos is None else pos + self.fb.read("I", pos)

    def table(self, slot):
        pos = self._target(slot)
        return None if pos is None else _Table(self.fb, pos)

    def vector(self, slot, fmt):
        """A vector of scalars as a tuple (empty if absent)."""
        pos = self._target(slot)
        if pos is None:
            return ()
        return self.fb.read_many(fmt, pos + 4, self.fb.read("I", pos))

    def tables(self, slot):
        """A vector of tables: each element is a reference counted from its own place."""
        pos = self._target(slot)
        if pos is None:
            return []
        count = self.fb.read("I", pos)
        self.fb.check(pos + 4, 4 * count)
        items = [pos + 4 + 4 * i for i in range(count)]
        return [_Table(self.fb, p + self.fb.read("I", p)) for p in items]

    def bytes(self, slot):
        pos = self._target(slot)
        if pos is None:
            return b""
        n = self.fb.read("I", pos)
        self.fb.check(pos + 4, n)
        return self.fb.data[pos + 4:pos + 4 + n]

    def string(self, slot):
        return self.bytes(slot).decode("utf-8", errors="replace")


def _options(op, table):
    """The builtin options this importer uses, as a dict (schema slots in the docstring).
    Pairs are (height, width), although the file stores width first."""
    if table is None:
        return {}

    def common(activation_slot):     # padding, stride_w, stride_h lead all three tables
        return dict(padding=PADDING.get(table.scalar(0, "b")),
                    stride=(table.scalar(2, "i"), table.scalar(1, "i")),
                    activation=ACTIVATIONS.get(table.scalar(activation_slot, "b"), "unknown"))

    if op == "CONV_2D":
        return dict(common(3), dilation=(table.scalar(5, "i", 1), table.scalar(4, "i", 1)))
    if op == "DEPTHWISE_CONV_2D":
        return dict(common(4), depth_multiplier=table.scalar(3, "i"),
                    dilation=(table.scalar(6, "i", 1), table.scalar(5, "i", 1)))
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"):
        return dict(common(5), filter=(table.scalar(4, "i"), table.scalar(3, "i")))
    if op == "RESHAPE":
        return dict(new_shape=table.vector(0, "i"))
    if op == "ADD":
        return dict(activation=ACTIVATIONS.get(table.scalar(0, "b"), "unknown"))
    if op == "SOFTMAX":
        return dict(beta=table.scalar(0, "f", 1.0))
    return {}


def _tensor(fb, index, table, buffers, path):
    shape = table.vector(0, "i")
    type_code = table.scalar(1, "B")
    if type_code not in TENSOR_TYPES:
        raise TFLiteError(f"{path}: tensor {index} has TensorType {type_code}, which tinynet "
                          f"does not read (known: {sorted(TENSOR_TYPES)})")
    dtype = np.dtype(TENSOR_TYPES[type_code])
    buffer_index = table.scalar(2, "I")
    if buffer_index >= len(buffers):
        raise TFLiteError(f"{path}: tensor {index} refers to buffer {buffer_index}, but the "
                          f"file has {len(buffers)} buffers")
    buffer = buffers[buffer_index]
    if buffer.scalar(1, "Q") > 1:
        raise TFLiteError(f"{path}: tensor {index} stores its data outside the FlatBuffer "
                          "(Buffer.offset, files over 2 GB); tinynet does not read that")
    raw = buffer.bytes(0)
    data = None
    if raw:
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if len(raw) != expected:
            raise TFLiteError(f"{path}: tensor {index} ({table.string(3)}) has shape {list(shape)} "
                              f"of {dtype} = {expected} bytes, but its buffer holds {len(raw)}")
        data = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    scale = zero_point = None
    quantization = table.table(4)
    qdim = 0
    if quantization is not None and quantization.vector(2, "f"):
        scale = np.array(quantization.vector(2, "f"), dtype=np.float64)
        zero_point = np.array(quantization.vector(3, "q") or (0,) * len(scale), dtype=np.int64)
        qdim = quantization.scalar(6, "i")
    return Tensor(index, table.string(3), tuple(shape), dtype, data, scale, zero_point, qdim)


def read_tflite(path):
    """Read ``path`` into a ``TFLiteModel``: the tensors (with constant data), the operators
    in execution order (with their options) and the graph's input and output indices.
    Only the first subgraph is read (a classifier has one)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TFLiteError(f"{path}: cannot read the TFLite file ({exc.strerror})") from None
    fb = _FlatBuffer(data, path)
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise TFLiteError(f"{path}: not a TFLite file (bytes 4..8 should be the identifier "
                          f"{FILE_IDENTIFIER!r}, got {bytes(data[4:8])!r})")
    model = fb.table(fb.read("I", 0))
    subgraphs = model.tables(2)
    if len(subgraphs) != 1:
        raise TFLiteError(f"{path}: expected one subgraph, got {len(subgraphs)}")
    graph = subgraphs[0]
    buffers = model.tables(4)
    for buffer in buffers:          # bounds-check them all: a cut file fails here, not later
        buffer.bytes(0)
    op_names = []
    for opcode in model.tables(1):
        code = max(opcode.scalar(0, "b"), opcode.scalar(3, "i"))
        op_names.append(BUILTIN_OPS.get(code, f"BUILTIN_{code}"))
    tensors = [_tensor(fb, i, t, buffers, path) for i, t in enumerate(graph.tables(0))]
    operators = []
    for i, table in enumerate(graph.tables(3)):
        opcode_index = table.scalar(0, "I")
        if opcode_index >= len(op_names):
            raise TFLiteError(f"{path}: operator {i} uses opcode index {opcode_index}, but the "
                              f"file lists {len(op_names)} operator codes")
        op = op_names[opcode_index]
        inputs, outputs = table.vector(1, "i"), table.vector(2, "i")
        for t in inputs + outputs:
            if not -1 <= t < len(tensors):
                raise TFLiteError(f"{path}: operator {i} ({op}) refers to tensor {t}, but the "
                                  f"graph has {len(tensors)} tensors")
        operators.append(Operator(i, op, inputs, outputs, _options(op, table.table(4))))
    return TFLiteModel(path, tensors, operators, graph.vector(1, "i"), graph.vector(2, "i"),
                       model.string(3))


def dequantize(tensor):
    """The real values of a constant tensor as float32: ``scale * (q - zero_point)``, with one
    scale per channel along ``quantized_dimension`` where the file gives several."""
    if tensor.data is None:
        raise ValueError(f"tensor {tensor.index} ({tensor.name}) has no constant data")
    if tensor.scale is None:
        return tensor.data.astype(np.float32)
    shape = [1] * tensor.data.ndim
    if tensor.scale.size > 1:
        shape[tensor.quantized_dimension] = -1
    scale = tensor.scale.reshape(shape)
    zero_point = tensor.zero_point.reshape(shape)
    return (scale * (tensor.data.astype(np.int64) - zero_point)).astype(np.float32)
