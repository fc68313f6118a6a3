"""Pretrained models: the TFLite MobileNet importer against a plain NumPy oracle, its errors
on bad files, VGG-16 against PyTorch, and the weight converter.

The oracle below reads the ``.npz`` twin of each .tflite file (same weights, op graph as
JSON; ../shared/data/README.md) and runs it in float64 NHWC as a sum over kernel taps of
shifted input slices: a code path that shares nothing with tinynet's importer or its conv
kernels.
"""
import hashlib
import json
import struct

import numpy as np
import pytest
from PIL import Image

import tinynet as tn
from tinynet import models

V1, V2 = "mobilenet_v1_0.25_128", "mobilenet_v2_1.0_224"


# ---- the oracle: a float64 NHWC forward pass from the .npz --------------------------------

def _real(npz, tensor):
    q = npz[tensor["const"]].astype(np.float64)
    return tensor["scale"] * (q - tensor["zero_point"]) if "scale" in tensor else q


def _taps(x, kh, kw, stride, padding):
    """Yield (i, j, x_ij) for each kernel tap: x_ij[n, p, q, c] = x[n, p S + i, q S + j, c],
    the input pixels that tap (i, j) multiplies.  TF 'SAME' pads first so that
    OH = ceil(H / S), the odd pixel at the end."""
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1            # VALID
    if padding == "SAME":
        pads = []
        for size, k, s in ((x.shape[1], kh, stride[0]), (x.shape[2], kw, stride[1])):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
        oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    for i in range(kh):
        for j in range(kw):
            yield i, j, x[:, i:i + oh:stride[0], j:j + ow:stride[1]]


def oracle(npz_path, images):
    """{tensor name: float64 value} for every op output of the graph, on uint8 NHWC images."""
    npz = np.load(npz_path)
    graph = json.loads(npz["graph_json"].tobytes())
    tensors = graph["tensors"]
    t_in = tensors[str(graph["input"])]
    values = {graph["input"]: t_in["scale"] * (images.astype(np.float64) - t_in["zero_point"])}
    for op in graph["ops"]:
        ins, kind = op["inputs"], op["op"]
        x = values[ins[0]]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w, b = _real(npz, tensors[str(ins[1])]), _real(npz, tensors[str(ins[2])])
            taps = _taps(x, w.shape[1], w.shape[2], op["stride"], op["padding"])
            if kind == "CONV_2D":                 # w [O, KH, KW, I]: y = sum_ij x_ij w_ij^T
                y = sum(np.tensordot(x_ij, w[:, i, j, :], axes=([3], [1]))
                        for i, j, x_ij in taps) + b
            else:                                 # w [1, KH, KW, C]: channel by channel
                y = sum(x_ij * w[0, i, j] for i, j, x_ij in taps) + b
            assert op["activation"] in (None, "relu6")
            if op["activation"] == "relu6":
                y = np.clip(y, 0.0, 6.0)
        elif kind == "ADD":
            y = x + values[ins[1]]
        elif kind == "AVERAGE_POOL_2D":                           # over the whole map here
            y = x.mean(axis=(1, 2), keepdims=True)
        elif kind == "RESHAPE":
            y = x.reshape(x.shape[0], -1)
        elif kind == "SOFTMAX":
            e = np.exp(x - x.max(axis=1, keepdims=True))
            y = e / e.sum(axis=1, keepdims=True)
        else:
            raise AssertionError(f"oracle: unexpected op {kind}")
        values[op["outputs"][0]] = y
    return {tensors[str(i)]["name"]: v for i, v in values.items()}, graph


def photos(shared_data, size, step, count):
    """``count`` Imagenette val photos (every ``step``-th), Pillow-bilinear to size x size."""
    paths = sorted((shared_data / "imagenette10" / "128" / "val").glob("*/*.jpg"))[::step]
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size),
                                                                    Image.BILINEAR))
                     for p in paths[:count]])


def model_files(shared_data, name):
    base = shared_data / "models" / models.PRETRAINED[name]["file"]
    return base, base.with_suffix(".npz")


def layer_outputs(model, x):
    """{module name: output array} for the modules in ``model.tflite_names``."""
    modules, outputs = dict(model.named_modules()), {}
    handles = [modules[name].register_forward_hook(
        lambda m, i, o, name=name: outputs.__setitem__(name, o.data))
        for name in model.tflite_names]
    with tn.no_grad():
        logits = model(x)
    for h in handles:
        h.remove()
    return logits, outputs


# ---- MobileNet import ------------------------------------------------------------------

@pytest.mark.parametrize("name, count", [(V1, 2), (V2, 1)])
def test_every_layer_matches_the_numpy_oracle(shared_data, name, count):
    tflite, npz = model_files(shared_data, name)
    size = models.PRETRAINED[name]["input_size"]
    images = photos(shared_data, size, step=997, count=count)
    reference, graph = oracle(npz, images)
    model = models.load_tflite(tflite)
    assert model.input_size == (size, size)

    # every op but the final SOFTMAX has a module reproducing its output
    op_outputs = {graph["tensors"][str(op["outputs"][0])]["name"] for op in graph["ops"][:-1]}
    assert set(model.tflite_names.values()) == op_outputs

    for dtype, tol in ((np.float64, 1e-4), (np.float32, 1e-4)):
        model = model.double() if dtype == np.float64 else model.float()
        x = models.mobilenet_input(images)
        logits, outputs = layer_outputs(model, tn.tensor(x.data.astype(dtype)))
        assert logits.dtype == dtype and logits.shape == (count, 1001)
        for module_name, tensor_name in model.tflite_names.items():
            got, want = outputs[module_name], reference[tensor_name]
            if got.ndim == 4:
                got = got.transpose(0, 2, 3, 1)                   # NCHW -> NHWC
            assert got.shape == want.reshape(got.shape).shape
            # float64: to 1e-4 absolute; float32: relative to the layer's scale
            scale = 1.0 if dtype == np.float64 else max(1.0, np.abs(want).max())
            np.testing.assert_allclose(got, want.reshape(got.shape), rtol=0, atol=tol * scale,
                                       err_msg=f"{name} {dtype.__name__} {module_name}")


def test_softmax_option_returns_the_files_probabilities(shared_data):
    tflite, npz = model_files(shared_data, V1)
    images = photos(shared_data, 128, step=1999, count=2)
    reference, graph = oracle(npz, images)
    model = models.load_tflite(tflite, softmax=True)
    with tn.no_grad():
        probs = model(models.mobilenet_input(images)).data
    softmax_out = graph["tensors"][str(graph["output"])]["name"]
    np.testing.assert_allclose(probs, reference[softmax_out], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name, count", [(V1, 64), (V2, 8)])
def test_top1_equals_the_oracle_on_imagenette_photos(shared_data, name, count):
    tflite, npz = model_files(shared_data, name)
    size = models.PRETRAINED[name]["input_size"]
    images = photos(shared_data, size, step=3925 // count, count=count)
    reference, graph = oracle(npz, images)
    logits_name = graph["tensors"][str(graph["ops"][-1]["inputs"][0])]["name"]
    want = reference[logits_name][:, 1:].argmax(axis=1)          # 1000-way: no background
    model = models.load_tflite(tflite)
    with tn.no_grad():
        got = model(models.mobilenet_input(images)).data[:, 1:].argmax(axis=1)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("size, kernel, stride, expected", [
    (8, 3, 2, (0, 1)),      # even size, stride 2: the extra pixel after
    (7, 3, 2, (1, 1)),      # odd size: out 4, (4 - 1) 2 + 3 - 7 = 2 in total
    (5, 3, 1, (1, 1)),      # stride 1: (K - 1) / 2 on each side
    (5, 1, 2, (0, 0)),      # 1x1 needs none
    (6, 4, 1, (1, 2)),      # even kernel: the odd one after
])
def test_tensorflow_same_padding(size, kernel, stride, expected):
    from tinynet.mobilenet import _tf_padding
    assert _tf_padding("SAME", size, kernel, stride, 1) == expected
    assert _tf_padding("VALID", size, kernel, stride, 1) == (0, 0)


def test_zero_pad2d_pads_left_right_top_bottom():
    from tinynet.nn import ZeroPad2d
    x = tn.tensor(np.arange(4.0).reshape(1, 1, 2, 2), requires_grad=True)
    y = ZeroPad2d((0, 1, 2, 0))(x)                      # (left, right, top, bottom)
    np.testing.assert_array_equal(y.data[0, 0], [[0, 0, 0], [0, 0, 0], [0, 1, 0], [2, 3, 0]])
    grad = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(grad)
    np.testing.assert_array_equal(x.grad, grad[:, :, 2:, :2])


def test_registry_checksums_match_the_files(shared_data):
    for name, entry in models.PRETRAINED.items():
        data = (shared_data / "models" / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert entry["url"].endswith("/" + entry["file"])
    labels = models.read_labels(shared_data / "models" / "imagenet_labels.txt")
    assert len(labels) == 1001 and labels[0] == "background"
    assert labels[1].startswith("tench") and labels[1000].startswith("toilet tissue")


def test_model_is_an_ordinary_module(shared_data):
    model = models.load_tflite(model_files(shared_data, V1)[0])
    state = model.state_dict()
    assert state["features.1.depthwise.conv.weight"].shape == (8, 1, 3, 3)
    assert model.features[1].depthwise.conv.groups == 8
    fresh = models.load_tflite(model_files(shared_data, V1)[0])
    fresh.features[0].conv.weight.data[...] = 0
    fresh.load_state_dict(state)
    x = tn.tensor(np.random.default_rng(0).uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32))
    with tn.no_grad():
        np.testing.assert_array_equal(fresh(x).data, model(x).data)


def test_grad_cam_on_a_named_mobilenet_layer(shared_data):
    import explain
    model = models.load_tflite(model_files(shared_data, V1)[0])
    x = models.mobilenet_input(photos(shared_data, 128, step=500, count=2))
    cam = explain.grad_cam(model, x, target=[1, 218], layer="features.13")
    assert cam.shape == (2, 128, 128)
    assert np.isfinite(cam).all() and cam.max() > 0
    coarse = explain.grad_cam(model, x, target=1, layer="features.12.depthwise",
                              upsample=False)
    assert coarse.shape == (2, 4, 4)


# ---- bad files ---------------------------------------------------------------------------

def _operator_code_fields(data):
    """Positions of (deprecated_builtin_code, builtin_code) of each OperatorCode: Model
    slot 1 is the vector of OperatorCode tables (schema.fbs), read by hand here."""
    def u32(p):
        return struct.unpack_from("<I", data, p)[0]

    def field(table, slot):
        vtable = table - struct.unpack_from("<i", data, table)[0]
        if 4 + 2 * slot >= struct.unpack_from("<H", data, vtable)[0]:
            return None
        offset = struct.unpack_from("<H", data, vtable + 4 + 2 * slot)[0]
        return table + offset if offset else None

    codes = field(u32(0), 1)
    vector = codes + u32(codes)
    tables = [vector + 4 + 4 * i + u32(vector + 4 + 4 * i) for i in range(u32(vector))]
    return [(field(t, 0), field(t, 3)) for t in tables]


def test_an_unknown_op_is_an_error_naming_op_and_file(shared_data, tmp_path):
    data = bytearray((model_files(shared_data, V1)[0]).read_bytes())
    for deprecated, builtin in _operator_code_fields(data):
        if deprecated is not None and data[deprecated] == 3:          # CONV_2D ...
            data[deprecated] = 17                                      # ... -> MAX_POOL_2D
            if builtin is not None:
                struct.pack_into("<i", data, builtin, 17)
            break
    else:
        pytest.fail("no CONV_2D operator code found")
    path = tmp_path / "patched.tflite"
    path.write_bytes(bytes(data))
    with pytest.raises(models.TFLiteError, match=r"patched\.tflite.*MAX_POOL_2D.*not supported"):
        models.load_tflite(path)


# (The coral files end with a zip of the labels after the FlatBuffer, which the importer
# does not read: cutting only that tail leaves a loadable model.)
@pytest.mark.parametrize("keep", [7, 100, 0.1, 0.5, 0.9])
def test_a_truncated_file_is_an_error_naming_the_file(shared_data, tmp_path, keep):
    data = (model_files(shared_data, V1)[0]).read_bytes()
    keep = int(len(data) * keep) if isinstance(keep, float) else keep
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[:keep])
    with pytest.raises(models.TFLiteError, match=r"cut\.tflite.*(truncated|not a TFLite)"):
        models.load_tflite(path)


def test_garbage_and_missing_files_are_errors(tmp_path):
    rng = np.random.default_rng(1)
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(models.TFLiteError, match=r"garbage\.tflite.*not a TFLite file.*TFL3"):
        models.load_tflite(garbage)
    for seed in range(20):          # the right identifier, random tables behind it
        rng = np.random.default_rng(seed)
        body = b"\x10\x00\x00\x00TFL3" + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
        garbage.write_bytes(body)
        with pytest.raises(models.TFLiteError, match="garbage.tflite"):
            models.load_tflite(garbage)
    with pytest.raises(models.TFLiteError, match="missing.tflite.*cannot read"):
        models.load_tflite(tmp_path / "missing.tflite")


def test_mobilenet_input_checks_and_scales():
    images = np.array([[[[0, 128, 255]]]], dtype=np.uint8)
    x = models.mobilenet_input(images)
    assert x.shape == (1, 3, 1, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x.data.ravel(), [-1.0, 0.0, 127 / 128])
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\).*\(2, 2\)"):
        models.mobilenet_input(np.zeros((2, 2), np.uint8))


# ---- VGG-16 ------------------------------------------------------------------------------

def _torchvision_vgg16(torch):
    """torchvision.models.vgg16's layout, spelled out (torchvision is not a dependency)."""
    nn = torch.nn
    layers, c = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(c, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            c = v

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000))
            for m in self.modules():          # torchvision's initialization
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.uniform_(m.bias, -0.1, 0.1)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.uniform_(m.bias, -0.1, 0.1)

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return VGG()


@pytest.mark.slow
def test_vgg16_gives_torchs_logits():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = _torchvision_vgg16(torch).eval()
    ours = models.vgg16().eval()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    with tn.no_grad():
        got = ours(tn.tensor(x)).data
    assert got.dtype == np.float32 and want.std() > 0.01      # not a trivially small output
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    names = [n for n, _ in ours.named_modules()]
    assert {"features.28", "avgpool", "classifier.6"} <= set(names)


def test_torch_state_dict_converts_to_npz_and_loads(tmp_path):
    torch = pytest.importorskip("torch")
    from tinynet import vgg
    torch.manual_seed(0)
    small = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))
    torch.save(small.state_dict(), tmp_path / "small.pth")
    vgg.main([str(tmp_path / "small.pth"), str(tmp_path / "small.npz")])
    for source in ("small.npz", "small.pth"):
        state = models.load_torchvision_state_dict(tmp_path / source)
        assert set(state) == set(small.state_dict())
        for k, v in small.state_dict().items():
            np.testing.assert_array_equal(state[k], v.numpy())
    ours = tn.nn.Sequential(tn.nn.Conv2d(3, 4, 3), tn.nn.ReLU(), tn.nn.Flatten(),
                            tn.nn.Linear(4 * 6 * 6, 5))
    ours.load_state_dict(models.load_torchvision_state_dict(tmp_path / "small.npz"))
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(ours(tn.tensor(x)).data,
                               small(torch.from_numpy(x)).detach().numpy(), atol=1e-5)


def test_a_state_dict_file_that_is_not_flat_is_an_error(tmp_path):
    tn.save({"model": {"w": np.zeros(2)}, "epoch": 3}, tmp_path / "checkpoint.npz")
    with pytest.raises(ValueError, match=r"checkpoint\.npz.*flat"):
        models.load_torchvision_state_dict(tmp_path / "checkpoint.npz")
