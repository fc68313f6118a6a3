"""A ReLU followed by max pooling as one op (F.relu_max_pool2d, ReLUMaxPool2d: the ReLU runs
on the pooled output), and nn.Sequential running a ReLU + MaxPool2d pair through it: the
same values as max_pool2d(relu(x)) and the same gradients, NaN and ceil_mode included,
under the Numba kernels and the NumPy reference; a finite-difference check; and no fusion
where a hook watches or the pool returns its indices."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import kernels, nn

SETTINGS = ["auto", "numpy"]


def both_ways(x, grad, setting, **pool):
    results = []
    for fused in (True, False):
        with kernels.use(setting):
            xt = tn.tensor(x, requires_grad=True)
            y = (F.relu_max_pool2d(xt, **pool) if fused
                 else F.max_pool2d(F.relu(xt), **pool))
            y.backward(grad)
        results.append((y.numpy(), xt.grad))
    return results


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("pool", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                  dict(kernel_size=2, ceil_mode=True),
                                  dict(kernel_size=3, stride=1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_equals_max_pool_of_relu(setting, pool, dtype, rng):
    """The values bitwise, NaN kept (a NaN wins its window in both); the gradients equal,
    also where a whole window is <= 0 (there the fused op sends its zero to the maximum,
    the two ops to the first position: the same values)."""
    x = rng.standard_normal((2, 3, 7, 9)).astype(dtype)
    x[0, 0, :3, :3] = -1.0                         # windows without a positive value
    x[0, 1, :2, :2] = 0.0
    x[1, 0, :2, :2] = [[-3.0, -2.0], [-1.0, -4.0]]   # <= 0, the maximum not first
    x[1, 2, 4, 4] = np.nan
    with kernels.use(setting):
        shape = F.max_pool2d(tn.tensor(x), **pool).shape
    grad = rng.standard_normal(shape).astype(dtype)
    (y, gx), (y_apart, gx_apart) = both_ways(x, grad, setting, **pool)
    assert y.dtype == gx.dtype == dtype
    np.testing.assert_array_equal(y, y_apart)
    np.testing.assert_array_equal(gx, gx_apart)
    assert np.nanmin(y) >= 0 and np.isnan(y).any()


@pytest.mark.parametrize("setting", SETTINGS)
def test_relu_max_pool_gradcheck(setting, rng):
    """Finite differences in float64 (distinct values, away from 0 and from ties)."""
    x = rng.permutation(np.linspace(-3, 3, 2 * 2 * 6 * 6)).reshape(2, 2, 6, 6)
    x[np.abs(x) < 0.1] += 0.5
    with kernels.use(setting):
        assert tn.gradcheck(lambda a: F.relu_max_pool2d(a, 2), x)
        assert tn.gradcheck(lambda a: F.relu_max_pool2d(a, 3, stride=2, padding=1), x)


def ops(model, x):
    """The names of the ops model(x) records (a fresh forward: backward frees the graph)."""
    seen, queue, names = set(), [model(tn.tensor(x, requires_grad=True))], []
    while queue:
        tensor = queue.pop()
        if tensor.creator is None or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        names.append(type(tensor.creator).__name__)
        queue.extend(tensor.creator.inputs)
    return names


def reference_cnn_like():
    tn.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 2))


def test_sequential_runs_relu_then_max_pool_as_one_op(rng):
    """One ReLUMaxPool2d where a ReLU is followed by a MaxPool2d (the second ReLU, before
    an average pool, stays a ReLU), and the same output and gradients as calling each
    module."""
    model = reference_cnn_like()
    x = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    names = ops(model, x)
    assert names.count("ReLUMaxPool2d") == 1 and names.count("ReLU") == 1
    assert "MaxPool2d" not in names
    results = []
    for by_hand in (False, True):
        model.zero_grad()
        xt = tn.tensor(x, requires_grad=True)
        y = xt
        if by_hand:
            for module in model:
                y = module(y)
        else:
            y = model(xt)
        y.sum().backward()
        results.append([y.numpy(), xt.grad] + [p.grad.copy() for p in model.parameters()])
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("where, hook", [(1, "forward"), (1, "pre"), (2, "forward"), (2, "pre")])
def test_no_fusion_where_a_hook_watches(where, hook, rng):
    model = reference_cnn_like()
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    seen = []
    if hook == "forward":
        model[where].register_forward_hook(lambda m, inputs, output: seen.append(output))
    else:
        model[where].register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0]))
    names = ops(model, x)
    assert len(seen) == 1 and "ReLUMaxPool2d" not in names
    assert names.count("ReLU") == 2 and "MaxPool2d" in names


def test_no_fusion_when_the_pool_returns_indices(rng):
    model = nn.Sequential(nn.ReLU(), nn.MaxPool2d(2, return_indices=True))
    y, indices = model(tn.tensor(rng.standard_normal((1, 2, 4, 4))))
    assert y.shape == indices.shape == (1, 2, 2, 2)
