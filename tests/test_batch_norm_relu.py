"""BatchNorm followed by ReLU as one op (F.batch_norm_relu, BatchNormReLU), and nn.Sequential
running a BatchNorm + ReLU pair through it: the same values, gradients and running
statistics as the two ops, NaN and signed zeros included, under the Numba kernels and the
NumPy reference; a finite-difference check; and no fusion where a hook is watching."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import kernels, nn
from tinynet.functional.norm import BatchNormReLU

SETTINGS = ["auto", "numpy"]         # the Numba kernels, and the NumPy reference


def both_ways(x, weight, bias, grad, training, setting, dtype):
    """(outputs, gradients, running stats) of the fused op and of relu(batch_norm(...))."""
    results = []
    for fused in (True, False):
        running_mean = np.linspace(-0.5, 0.5, x.shape[1]).astype(dtype)
        running_var = np.linspace(0.5, 2.0, x.shape[1]).astype(dtype)
        with kernels.use(setting):
            xt = tn.tensor(x, requires_grad=True)
            params = [None if a is None else tn.tensor(a, requires_grad=True)
                      for a in (weight, bias)]
            if fused:
                y = F.batch_norm_relu(xt, running_mean, running_var, *params,
                                      training=training)
            else:
                y = F.relu(F.batch_norm(xt, running_mean, running_var, *params,
                                        training=training))
            y.backward(grad)
        results.append([y.numpy(), xt.grad] + [p.grad for p in params if p is not None]
                       + [running_mean, running_var])
    return results


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")   # inf * 0
@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("affine", [True, False])
def test_fused_equals_relu_of_batch_norm(setting, training, dtype, affine, rng):
    """Bitwise: the kernels recompute each normalized value exactly as the forward did, so
    the mask is the ReLU's.  Inputs include NaN (eval: only that value is NaN, and its
    slope is 1, as ReLU's), and a channel that normalizes to exactly 0 (to -0.0 with a
    negative weight and a bias of -0.0: ReLU gives +0.0), with an infinite gradient at one
    of its zeros (ReLU's backward gives inf * 0 = NaN there, not 0)."""
    x = rng.standard_normal((3, 5, 4, 6)).astype(dtype)
    x[:, 2] = 1.5 if training else 0.0             # the batch's mean, or the running one
    if not training:
        x[1, 3, 2, 2] = np.nan
    weight = rng.standard_normal(5).astype(dtype) if affine else None
    bias = rng.standard_normal(5).astype(dtype) if affine else None
    if affine:
        weight[2], bias[2] = -abs(weight[2]), -0.0
    grad = rng.standard_normal(x.shape).astype(dtype)
    grad[0, 2, 0, 0] = np.inf
    fused, apart = both_ways(x, weight, bias, grad, training, setting, dtype)
    for got, want in zip(fused, apart):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))     # -0.0 too
    assert (fused[0] >= 0).all() or np.isnan(fused[0]).any()


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_relu_gradcheck(setting, training, rng):
    """Finite differences in float64 (inputs away from the ReLU's kink)."""
    x = rng.standard_normal((4, 3, 3, 2))
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    running_mean, running_var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    with kernels.use(setting):
        def op(x, w, b):
            return F.batch_norm_relu(x, running_mean.copy(), running_var.copy(), w, b,
                                     training=training)
        assert tn.gradcheck(op, x, weight, bias)


def conv_bn_relu(rng):
    tn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 2))
    return model, rng.standard_normal((5, 3, 4, 4)).astype(np.float32)


def run_model(model, x, by_hand=False):
    xt = tn.tensor(x, requires_grad=True)
    if by_hand:                              # every module called on its own
        y = xt
        for module in model:
            y = module(y)
    else:
        y = model(xt)
    y.sum().backward()
    return y, [y.numpy(), xt.grad] + [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("train", [True, False])
def test_sequential_runs_batch_norm_then_relu_as_one_op(train, rng, monkeypatch):
    """The same results as calling each module, one op fewer, and no ReLU kernel run."""
    model, x = conv_bn_relu(rng)
    model.train(train)
    state = {k: v.copy() for k, v in model.state_dict().items()}
    by_hand = run_model(model, x, by_hand=True)[1]
    model.zero_grad()
    model.load_state_dict(state)                 # the running statistics as before
    relu_calls = []
    monkeypatch.setattr(F.activation.ReLU, "forward",
                        lambda self, x: relu_calls.append(x) or x)
    y, fused = run_model(model, x)
    assert relu_calls == []
    for got, want in zip(fused, by_hand):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("where, hook", [(1, "forward"), (1, "pre"), (2, "forward"),
                                         (2, "pre")])
def test_no_fusion_where_a_hook_watches(where, hook, rng):
    """A hook on the BatchNorm or the ReLU sees what it would see without fusion: the pair
    runs as two ops then (Grad-CAM and the other explain methods hook layers)."""
    model, x = conv_bn_relu(rng)
    seen = []
    module = model[where]
    if hook == "forward":
        module.register_forward_hook(lambda m, inputs, output: seen.append(output))
    else:
        module.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0]))
    y, _ = run_model(model, x)
    assert len(seen) == 1
    with tn.no_grad():
        want = model[1](model[0](tn.tensor(x)))              # the BatchNorm's output
    if (where, hook) in ((1, "forward"), (2, "pre")):
        np.testing.assert_allclose(seen[0].numpy(), want.numpy(), rtol=1e-6, atol=1e-6)
    names = set(op_names(model, x))
    assert "BatchNormReLU" not in names and "BatchNorm" in names
    # the ReLU runs as an op of its own, or (no hook on it) with the max pool after it
    assert ("ReLU" in names) == (where == 2) and ("ReLUMaxPool2d" in names) == (where == 1)


def op_names(model, x):
    """The ops of the graph model(x) records (a fresh forward: backward frees the graph)."""
    return [type(t.creator).__name__ for t in _walk(model(tn.tensor(x, requires_grad=True)))]


def _walk(y):
    """Every tensor of y's graph that has a creator."""
    seen, queue, out = set(), [y], []
    while queue:
        tensor = queue.pop()
        if tensor.creator is None or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        out.append(tensor)
        queue.extend(tensor.creator.inputs)
    return out


def test_the_fused_op_is_named_in_the_graph(rng):
    """What ran is what the graph (draw_graph, trace) shows: one BatchNormReLU."""
    model, x = conv_bn_relu(rng)
    y = model(tn.tensor(x, requires_grad=True))
    names = [type(t.creator).__name__ for t in _walk(y)]
    assert names.count("BatchNormReLU") == 1 and "ReLU" not in names and "BatchNorm" not in names
    assert any(isinstance(t.creator, BatchNormReLU) for t in _walk(y))


def test_batch_norm_1d_and_relu_fuse_too(rng):
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 1))
    x = rng.standard_normal((8, 4)).astype(np.float32)
    model.eval()                                # running statistics: repeatable
    assert "BatchNormReLU" in op_names(model, x)
    fused = run_model(model, x)
    model.zero_grad()
    by_hand = run_model(model, x, by_hand=True)
    for got, want in zip(fused[1], by_hand[1]):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
