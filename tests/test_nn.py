"""Module machinery and layers: registration, names and state_dict keys as PyTorch,
loading (all-or-nothing), modes, hooks, devices, dtypes, init, and gradient checks."""
import math

import numpy as np
import pytest

import tinynet as tn
from tinynet import backend, nn


def small_cnn():
    """Sequential(Conv2d, BatchNorm2d, ReLU, Linear): Linear acts on the last axis (W=3)."""
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Linear(3, 2))


# PyTorch's state_dict of torch.nn.Sequential(Conv2d(3, 4, 3), BatchNorm2d(4), ReLU(),
# Linear(3, 2)), written down so that this check runs without torch.
TORCH_KEYS_AND_SHAPES = [
    ("0.weight", (4, 3, 3, 3)), ("0.bias", (4,)),
    ("1.weight", (4,)), ("1.bias", (4,)), ("1.running_mean", (4,)), ("1.running_var", (4,)),
    ("1.num_batches_tracked", ()),
    ("3.weight", (2, 3)), ("3.bias", (2,)),
]


def test_state_dict_keys_and_shapes_equal_pytorchs():
    sd = small_cnn().state_dict()
    assert [(k, v.shape) for k, v in sd.items()] == TORCH_KEYS_AND_SHAPES
    assert sd["1.num_batches_tracked"].dtype == np.int64
    assert all(isinstance(v, np.ndarray) for v in sd.values())


def test_state_dict_holds_copies():
    model = nn.Linear(2, 3)
    sd = model.state_dict()
    sd["weight"][...] = 7.0
    assert not np.any(model.weight.data == 7.0)


def test_named_modules_parameters_children():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Linear(2, 4), nn.ReLU())
            self.head = nn.Linear(4, 1)
            self.scale = 3.0                      # a plain attribute: not registered

        def forward(self, x):
            return self.head(self.features(x))

    model = Block()
    assert [n for n, _ in model.named_modules()] == ["", "features", "features.0",
                                                      "features.1", "head"]
    assert [n for n, _ in model.named_parameters()] == [
        "features.0.weight", "features.0.bias", "head.weight", "head.bias"]
    assert [n for n, _ in model.named_children()] == ["features", "head"]
    assert list(model.children()) == [model.features, model.head]
    assert len(list(model.parameters())) == 4
    assert model.get_submodule("features.0") is model.features[0]
    assert model(tn.tensor(np.ones((5, 2), np.float32))).shape == (5, 1)
    visited = []
    model.apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Linear", "ReLU", "Sequential", "Linear", "Block"]


def test_shared_parameter_listed_once():
    layer = nn.Linear(3, 3)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    assert len(list(model.parameters())) == 2


class SharedBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.BatchNorm1d(2)
        self.b = self.a                     # one submodule under two names


def test_state_dict_of_a_shared_submodule_lists_both_names_as_pytorch():
    # once de-duplicated: weights then did not move unchanged to a model without sharing
    model = SharedBlock()
    expected = ["a.weight", "a.bias", "a.running_mean", "a.running_var",
                "a.num_batches_tracked", "b.weight", "b.bias", "b.running_mean",
                "b.running_var", "b.num_batches_tracked"]
    assert list(model.state_dict()) == expected
    assert len(list(model.parameters())) == 2 and len(list(model.named_modules())) == 2
    torch = pytest.importorskip("torch")

    class TorchShared(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.BatchNorm1d(2)
            self.b = self.a
    assert list(TorchShared().state_dict()) == expected
    assert len(list(TorchShared().parameters())) == 2
    # a state_dict with both names loads, into a shared and into an unshared model
    state = model.state_dict()
    state["a.weight"] = state["b.weight"] = np.array([3.0, 4.0], dtype=np.float32)
    model.load_state_dict(state)
    np.testing.assert_array_equal(model.b.weight.numpy(), [3.0, 4.0])
    unshared = SharedBlock()
    unshared.b = nn.BatchNorm1d(2)
    unshared.load_state_dict(state)
    np.testing.assert_array_equal(unshared.b.weight.numpy(), [3.0, 4.0])
    layer = nn.Linear(2, 2)                 # the same layer twice in a Sequential
    keys = list(nn.Sequential(layer, nn.ReLU(), layer).state_dict())
    assert keys == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_buffers_registered_and_reassigned():
    bn = nn.BatchNorm1d(3)
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var",
                                                  "num_batches_tracked"]
    bn.running_mean = np.full(3, 2.0, np.float32)        # stays a buffer
    assert "running_mean" in bn._buffers and bn.state_dict()["running_mean"][0] == 2.0


def test_attribute_reads_agree_with_the_registries_after_every_kind_of_write():
    """Registered names are mirrored as plain attributes (fast reads); every way of writing
    them must keep the mirror and the registry the same object."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    conv, bn = model[0], model[1]

    def agree():
        for module in model.modules():
            for store in (module._parameters, module._buffers, module._modules):
                for name, value in store.items():
                    assert getattr(module, name) is value, name

    agree()
    conv.weight = nn.Parameter(np.ones((3, 2, 3, 3), np.float32))   # replace
    conv.bias = None                                                  # empty a slot
    bn.running_mean = np.full(3, 2.0, np.float32)                     # re-assign a buffer
    agree()
    model.load_state_dict({**model.state_dict(), "1.running_var": np.full(3, 5.0)},
                          strict=False)
    assert bn.running_var[0] == 5.0
    model.double()                                # _map_arrays replaces buffer arrays
    assert bn.running_mean.dtype == np.float64
    agree()
    conv.register_buffer("scale", np.ones(3))
    conv.register_parameter("extra", nn.Parameter(np.zeros(2, np.float32)))
    model.add_module("tail", nn.ReLU())
    agree()
    del conv.extra, conv.scale, model.tail
    for module, name in ((conv, "extra"), (conv, "scale"), (model, "tail")):
        assert not hasattr(module, name)
        assert all(name not in s for s in (module._parameters, module._buffers,
                                           module._modules))
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        conv.missing


def test_assigning_a_non_parameter_to_a_parameter_slot_is_refused():
    layer = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="weight"):
        layer.weight = np.zeros((2, 2))


def test_sequential_indexing_slicing_keeps_names():
    model = small_cnn()
    assert len(model) == 4
    assert isinstance(model[0], nn.Conv2d) and model[-1] is model[3]
    tail = model[1:]
    assert isinstance(tail, nn.Sequential) and len(tail) == 3
    assert [n for n, _ in tail.named_children()] == ["1", "2", "3"]
    assert list(tail.state_dict())[0] == "1.weight"
    assert tail[0] is model[1]
    assert [type(m).__name__ for m in model] == ["Conv2d", "BatchNorm2d", "ReLU", "Linear"]
    with pytest.raises(IndexError):
        model[4]


def test_repr_like_pytorch():
    assert repr(nn.Sequential(nn.Linear(2, 3), nn.ReLU())) == (
        "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n)")
    assert repr(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)) == \
        "Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)"


def test_repr_equals_torch():
    torch = pytest.importorskip("torch")
    ours = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, groups=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(3, 2), nn.Dropout(0.2), nn.Sigmoid())
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                 torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(3, 2),
                                 torch.nn.Dropout(0.2), torch.nn.Sigmoid())
    assert repr(ours) == repr(theirs)


# ---- loading ---------------------------------------------------------------------------------

def test_load_state_dict_round_trip():
    a, b = small_cnn(), small_cnn()
    b.load_state_dict(a.state_dict())
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and np.array_equal(va, vb)


def test_failed_load_lists_every_problem_and_changes_nothing():
    model = small_cnn()
    before = model.state_dict()
    params_before = list(model.parameters())
    bad = model.state_dict()
    bad["0.bias"] = bad["0.bias"] + 1               # a valid change that must NOT land
    del bad["1.running_var"]                         # missing
    bad["9.weight"] = np.zeros(3, np.float32)        # unexpected
    bad["3.weight"] = np.zeros((3, 3), np.float32)   # mis-shaped
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(bad)
    message = str(info.value)
    for key in ("1.running_var", "9.weight", "3.weight", "(3, 3)", "(2, 3)"):
        assert key in message
    assert "missing" in message and "unexpected" in message and "mis-shaped" in message
    for (k, v), (_, w) in zip(before.items(), model.state_dict().items()):
        assert np.array_equal(v, w), k
    assert list(model.parameters()) == params_before


def test_non_strict_load_reports_but_still_refuses_bad_shapes():
    model = nn.Linear(3, 2)
    missing, unexpected = model.load_state_dict({"weight": np.ones((2, 3)), "extra": np.ones(1)},
                                                strict=False)
    assert missing == ["bias"] and unexpected == ["extra"]
    assert np.all(model.weight.data == 1) and model.weight.dtype == np.float32
    with pytest.raises(RuntimeError, match="weight"):
        model.load_state_dict({"weight": np.ones((3, 2))}, strict=False)


def test_load_keeps_parameter_identity_and_dtype():
    model = nn.Linear(2, 2)
    weight = model.weight
    model.load_state_dict({"weight": np.eye(2), "bias": np.zeros(2)})   # float64 in
    assert model.weight is weight and weight.dtype == np.float32
    assert np.array_equal(weight.data, np.eye(2))


def test_torch_state_dict_keys_and_outputs_match():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                 torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                 torch.nn.Linear(4 * 3 * 3, 5), torch.nn.Tanh())
    with torch.no_grad():                     # non-trivial running statistics and affine
        theirs[1].running_mean.uniform_(-1, 1)
        theirs[1].running_var.uniform_(0.5, 2)
        theirs[1].weight.uniform_(0.5, 2)
        theirs[1].bias.uniform_(-1, 1)
    theirs.eval()
    ours = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5), nn.Tanh())
    torch_sd = {k: v.numpy() for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(torch_sd)
    assert all(ours.state_dict()[k].shape == v.shape for k, v in torch_sd.items())
    ours.load_state_dict(torch_sd)
    ours.eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(tn.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    back = {k: torch.from_numpy(v) for k, v in ours.state_dict().items()}
    theirs.load_state_dict(back)              # and the other way round


def test_linear_feature_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="in_features=3"):
        nn.Linear(3, 2)(tn.tensor(np.ones((4, 5), np.float32)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="in_features"):
        nn.Linear(0, 2)
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="p must"):
        nn.Dropout(1.5)


# ---- modes, hooks, devices, dtypes ------------------------------------------------------------

def test_train_eval_switches_dropout():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    assert model.training and model[1].training
    x = tn.tensor(np.ones((64, 4), np.float32))
    tn.manual_seed(0)
    train_out = model(x).numpy()
    assert np.any(train_out == 0)
    model.eval()
    assert not model[1].training
    eval_out = model(x).numpy()
    np.testing.assert_array_equal(eval_out, model[0](x).numpy())
    model.train()
    assert model[1].training


def test_train_eval_switches_batchnorm():
    bn = nn.BatchNorm2d(2)
    x = np.random.default_rng(1).normal(3.0, 2.0, (4, 2, 3, 3)).astype(np.float32)
    y = bn(tn.tensor(x)).numpy()              # batch statistics: mean 0, var 1 per channel
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert int(bn.num_batches_tracked) == 1
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3), ddof=1)       # running variance is unbiased, as PyTorch
    np.testing.assert_allclose(bn.running_mean, 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * var, rtol=1e-5)
    bn.eval()
    y = bn(tn.tensor(x)).numpy()              # running statistics, and no update
    expected = (x - bn.running_mean[:, None, None]) / np.sqrt(bn.running_var[:, None, None] + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert int(bn.num_batches_tracked) == 1


def test_batchnorm_checks_channels():
    with pytest.raises(ValueError, match="num_features=3"):
        nn.BatchNorm2d(3)(tn.tensor(np.ones((2, 4, 2, 2), np.float32)))
    with pytest.raises(ValueError, match="4-D"):
        nn.BatchNorm2d(3)(tn.tensor(np.ones((2, 3), np.float32)))


def test_forward_hook_sees_and_replaces_output_and_is_removable():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    seen = []
    handle = model[0].register_forward_hook(lambda m, inputs, out: seen.append((m, out.shape)))
    x = tn.tensor(np.ones((4, 2), np.float32))
    model(x)
    assert seen == [(model[0], (4, 3))]
    replace = model[1].register_forward_hook(lambda m, inputs, out: out * 0.0)
    np.testing.assert_allclose(model(x).numpy(), np.broadcast_to(model[2].bias.numpy(), (4, 1)))
    handle.remove()
    replace.remove()
    model(x)
    assert len(seen) == 2                     # the first call of the second forward only
    assert not model[1]._forward_hooks


def test_zero_grad_and_parameters_receive_gradients():
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    model(tn.tensor(np.ones((4, 2), np.float32))).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_to_cpu_keeps_identity_and_cuda_without_cupy_is_clear():
    model = small_cnn()
    params = list(model.parameters())
    assert model.to("cpu") is model and list(model.parameters()) == params
    with pytest.raises(ValueError, match="device"):
        model.to("tpu")
    if backend.cuda_available():
        pytest.skip("a GPU is present; the no-CuPy error cannot be seen")
    with pytest.raises(RuntimeError, match="CuPy"):
        model.to("cuda")


@pytest.mark.skipif(not backend.cuda_available(), reason="needs CuPy and a GPU")
def test_to_cuda_moves_everything_in_place():
    model = small_cnn()
    params = list(model.parameters())
    model.to("cuda")
    assert list(model.parameters()) == params
    assert all(p.device == "cuda" for p in params)
    assert all(backend.device_of(b) == "cuda" for b in model.buffers())
    assert all(isinstance(v, np.ndarray) for v in model.state_dict().values())


def test_double_and_float_cast_in_place():
    model = small_cnn()
    weight = model[0].weight
    model.double()
    assert model[0].weight is weight and weight.dtype == np.float64
    assert model[1].running_var.dtype == np.float64
    assert model[1].num_batches_tracked.dtype == np.int64
    model.float()
    assert weight.dtype == np.float32 and model[1].running_mean.dtype == np.float32


# ---- initialization ------------------------------------------------------------------------

def test_default_init_bounds_and_seeding():
    tn.manual_seed(123)
    a = nn.Conv2d(8, 16, 3)
    tn.manual_seed(123)
    b = nn.Conv2d(8, 16, 3)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    bound = 1 / math.sqrt(8 * 3 * 3)
    assert np.abs(a.weight.data).max() <= bound and np.abs(a.bias.data).max() <= bound
    assert np.abs(a.weight.data).max() > 0.9 * bound           # fills the range
    big = nn.Linear(400, 300)
    # U(-b, b) has variance b^2 / 3 with b = 1/sqrt(fan_in)
    assert abs(big.weight.data.var() - 1 / (3 * 400)) < 0.05 / (3 * 400)
    assert a.weight.dtype == np.float32


def test_init_helpers():
    w = nn.Parameter(np.empty((50, 20), np.float32))
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.data.std() - math.sqrt(2 / 20)) < 0.05 * math.sqrt(2 / 20) * 3
    nn.init.xavier_uniform_(w)
    assert np.abs(w.data).max() <= math.sqrt(6 / 70)
    nn.init.zeros_(w)
    assert not w.data.any()
    assert nn.init.calculate_gain("relu") == math.sqrt(2)


@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_and_normal_draw_the_right_distribution(dtype, contiguous, monkeypatch):
    """uniform_ and normal_ (a contiguous array filled in pieces, another in one draw):
    moments within 5 standard errors of U(a, b)'s and N(mean, std^2)'s, every value in
    [a, b]."""
    monkeypatch.setattr(nn.init, "DRAW_CHUNK", 4096)
    tn.manual_seed(7)
    n = 200_000
    array = np.empty((400, 500), dtype) if contiguous else np.empty((500, 400), dtype).T
    w = nn.Parameter(array)
    assert w.data.flags.c_contiguous == contiguous
    nn.init.uniform_(w, -3.0, 5.0)
    u = w.data.astype(np.float64)
    assert w.dtype == dtype and u.min() >= -3.0 and u.max() <= 5.0
    assert abs(u.mean() - 1.0) < 5 * 8 / math.sqrt(12 * n)                 # (a + b) / 2
    assert abs(u.var() / (64 / 12) - 1) < 5 * math.sqrt(0.8 / n)           # (b - a)^2 / 12
    nn.init.normal_(w, mean=-2.0, std=0.5)
    z = w.data.astype(np.float64)
    assert w.dtype == dtype
    assert abs(z.mean() + 2.0) < 5 * 0.5 / math.sqrt(n)
    assert abs(z.std() / 0.5 - 1) < 5 * math.sqrt(0.5 / n)
    assert abs((((z + 2.0) / 0.5) ** 4).mean() - 3) < 5 * math.sqrt(96 / n)  # kurtosis 3


@pytest.mark.parametrize("fill", ["uniform", "normal"])
def test_init_in_pieces_draws_the_numbers_of_one_draw(fill, monkeypatch):
    """A large tensor is filled in pieces of DRAW_CHUNK numbers; under one seed it gets the
    numbers one draw of the whole shape gives (seeded models keep their weights)."""
    w = nn.Parameter(np.empty((300, 70), np.float32))
    draw = {"uniform": lambda g: g.uniform(-0.5, 0.5, size=w.shape),
            "normal": lambda g: g.normal(1.0, 2.0, size=w.shape)}[fill]
    tn.manual_seed(3)
    want = draw(tn.random.get_generator()).astype(np.float32)
    monkeypatch.setattr(nn.init, "DRAW_CHUNK", 1000)        # 21 pieces, the last one short
    tn.manual_seed(3)
    if fill == "uniform":
        nn.init.uniform_(w, -0.5, 0.5)
    else:
        nn.init.normal_(w, 1.0, 2.0)
    np.testing.assert_array_equal(w.data, want)


# ---- gradient checks (float64, random upstream gradient) --------------------------------------

def test_gradcheck_linear(rng):
    tn.manual_seed(0)
    tn.gradcheck(nn.Linear(4, 3), rng.standard_normal((5, 4)))


def test_gradcheck_conv2d(rng):
    tn.manual_seed(0)
    tn.gradcheck(nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), rng.standard_normal((2, 4, 5, 5)))
    tn.gradcheck(nn.Conv2d(2, 3, (2, 3), dilation=(2, 1), bias=False),
                 rng.standard_normal((1, 2, 5, 6)))


def test_gradcheck_batchnorm_training_and_eval(rng):
    bn = nn.BatchNorm2d(3)
    bn.weight.data[...] = rng.uniform(0.5, 2, 3)
    bn.bias.data[...] = rng.uniform(-1, 1, 3)
    x = rng.standard_normal((4, 3, 2, 2))
    tn.gradcheck(bn, x)
    bn.eval()
    tn.gradcheck(bn, x)
    tn.gradcheck(nn.BatchNorm1d(3), rng.standard_normal((6, 3)))


def test_gradcheck_small_network(rng):
    tn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2),
                          nn.Flatten(), nn.Linear(3 * 2 * 2, 2), nn.Sigmoid())
    tn.gradcheck(model, rng.standard_normal((2, 2, 4, 4)))


def test_deepcopy_gives_an_independent_model():
    import copy
    model = small_cnn()
    clone = copy.deepcopy(model)
    assert list(clone.state_dict()) == list(model.state_dict())
    clone[0].weight.data[...] = 0.0
    assert model[0].weight.data.any()
    assert clone[0].weight is not model[0].weight


def test_conv_padding_same_and_batchnorm_without_bias(rng):
    conv = nn.Conv2d(2, 3, 3, padding="same")
    assert conv(tn.tensor(rng.standard_normal((1, 2, 5, 4)).astype(np.float32))).shape == (1, 3, 5, 4)
    assert "padding=same" in repr(conv)
    with pytest.raises(ValueError, match="stride 1"):
        nn.Conv2d(2, 3, 3, stride=2, padding="same")
    bn = nn.BatchNorm2d(3, bias=False)          # PyTorch >= 2.6 spelling
    assert list(bn.state_dict()) == ["weight", "running_mean", "running_var",
                                     "num_batches_tracked"]
    assert list(nn.BatchNorm2d(3, affine=False).state_dict()) == [
        "running_mean", "running_var", "num_batches_tracked"]


def test_batchnorm_bad_input_changes_no_state():
    bn = nn.BatchNorm2d(3)
    bn.running_mean[...] = 0.5
    bad = tn.tensor(np.ones((2, 3, 4, 4), dtype=np.float64))   # dtype differs from the stats
    with pytest.raises(TypeError):
        bn(bad)
    assert int(bn.num_batches_tracked) == 0
    np.testing.assert_array_equal(bn.running_mean, np.full(3, 0.5, dtype=np.float32))
    bn(tn.tensor(np.ones((2, 3, 4, 4), dtype=np.float32)))
    assert int(bn.num_batches_tracked) == 1


def test_replacing_a_parameter_keeps_its_place_in_the_state_dict():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    model[2].weight = model[0].weight                  # tie the weights, as PyTorch allows
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_layers_that_differ_are_siblings_not_subclasses():
    """As in PyTorch: a LogSoftmax is not a Softmax, an AvgPool2d not a MaxPool2d (code
    that tests ``isinstance(m, nn.Softmax)`` must not catch the other)."""
    assert not isinstance(nn.LogSoftmax(dim=1), nn.Softmax)
    assert not isinstance(nn.Softmax(dim=1), nn.LogSoftmax)
    assert not isinstance(nn.AvgPool2d(2), nn.MaxPool2d)
    x = tn.tensor(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(nn.LogSoftmax(dim=1)(x).numpy(),
                               np.log(nn.Softmax(dim=1)(x).numpy()), rtol=1e-12)
    assert repr(nn.LogSoftmax(dim=1)) == "LogSoftmax(dim=1)"
