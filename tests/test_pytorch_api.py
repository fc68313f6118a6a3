"""PyTorch names people port from: Tensor methods, dim=/keepdim=, and the conventions at
kinks (maximum at a tie, relu at NaN).  Values and gradients are compared with PyTorch
(float64, random upstream gradient) where it is installed, and checked by finite
differences (tn.gradcheck) or hand-computed values everywhere."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F


def tn_and_torch(tn_fn, torch_fn, *arrays, seed=0):
    """Run both on float64 copies of ``arrays`` with one random upstream gradient; assert
    equal outputs and equal input gradients."""
    torch = pytest.importorskip("torch")
    ours = [tn.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, yt = tn_fn(*ours), torch_fn(*theirs)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    u = np.random.default_rng(seed).standard_normal(y.shape)
    y.backward(u)
    yt.backward(torch.tensor(u))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-10, atol=1e-12)


RNG = np.random.default_rng(12)
X = RNG.standard_normal((2, 1, 3, 4))


@pytest.mark.parametrize("name, ours, theirs", [
    ("squeeze", lambda t: t.squeeze(), lambda t: t.squeeze()),
    ("squeeze1", lambda t: t.squeeze(1), lambda t: t.squeeze(1)),
    ("squeeze_not_one", lambda t: t.squeeze(2), lambda t: t.squeeze(2)),
    ("unsqueeze", lambda t: t.unsqueeze(-1), lambda t: t.unsqueeze(-1)),
    ("unsqueeze0", lambda t: t.unsqueeze(0), lambda t: t.unsqueeze(0)),
    ("view", lambda t: t.view(2, -1), lambda t: t.view(2, -1)),
    ("min_all", lambda t: t.min(), lambda t: t.min()),
    ("min_dim", lambda t: t.min(dim=3)[0], lambda t: t.min(dim=3)[0]),
    ("max_dim_keep", lambda t: t.max(dim=2, keepdim=True).values,
     lambda t: t.max(dim=2, keepdim=True).values),
    ("clamp", lambda t: t.clamp(-0.5, 0.7), lambda t: t.clamp(-0.5, 0.7)),
    ("clamp_min", lambda t: t.clamp(min=0.1), lambda t: t.clamp(min=0.1)),
    ("sum_dim", lambda t: t.sum(dim=(1, 3), keepdim=True), lambda t: t.sum(dim=(1, 3), keepdim=True)),
    ("mean_dim", lambda t: t.mean(dim=-1), lambda t: t.mean(dim=-1)),
    ("softmax_dim", lambda t: F.softmax(t, dim=2), lambda t: t.softmax(dim=2)),
    ("log_softmax_dim", lambda t: F.log_softmax(t, dim=3), lambda t: t.log_softmax(dim=3)),
])
def test_tensor_methods_match_torch(name, ours, theirs):
    tn_and_torch(ours, theirs, X)


@pytest.mark.parametrize("fn", [
    lambda t: t.squeeze(1), lambda t: t.unsqueeze(2), lambda t: t.view(-1),
    lambda t: t.min(), lambda t: t.min(dim=2)[0], lambda t: t.max(dim=3).values,
    lambda t: t.clamp(-0.5, 0.5), lambda t: t.sum(dim=2), lambda t: F.softmax(t, dim=1),
])
def test_tensor_methods_gradcheck(fn):
    assert tn.gradcheck(fn, X)


def test_min_max_dim_return_values_and_first_index():
    x = tn.tensor([[3.0, 1.0, 1.0], [2.0, 5.0, 5.0]], requires_grad=True)
    values, indices = x.min(dim=1)
    np.testing.assert_array_equal(values.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(indices.numpy(), [1, 0])
    values.sum().backward()          # the gradient goes to the one picked element
    np.testing.assert_array_equal(x.grad, [[0, 1, 0], [1, 0, 0]])
    x.grad = None
    x.max().backward()               # no dim: ties share the gradient, as PyTorch
    np.testing.assert_array_equal(x.grad, [[0, 0, 0], [0, 0.5, 0.5]])
    assert x.max(dim=1).indices.tolist() == [0, 1]


def test_argmax_argmin_size():
    a = np.array([[3.0, 7.0, 7.0], [9.0, 1.0, 1.0]])
    x = tn.tensor(a)
    assert x.argmax().item() == 3 and x.argmin().item() == 4
    assert x.argmax(dim=1).tolist() == [1, 0] and x.argmin(axis=0).tolist() == [0, 1, 1]
    assert x.argmax(dim=1, keepdim=True).shape == (2, 1)
    assert x.size() == (2, 3) and x.size(-1) == 3 and x.numel() == 6
    assert x.squeeze().shape == (2, 3) and x.unsqueeze(1).shape == (2, 1, 3)


def test_axis_and_dim_together_is_an_error():
    x = tn.tensor(X)
    for call in (lambda: x.sum(axis=1, dim=1), lambda: F.softmax(x, axis=1, dim=1),
                 lambda: x.mean(keepdims=True, keepdim=True), lambda: x.argmax(0, dim=0)):
        with pytest.raises(TypeError, match="not both"):
            call()
    with pytest.raises(ValueError, match="unsqueeze: dim must be in"):
        x.unsqueeze(5)


def test_maximum_minimum_ties_match_torch():
    a = np.array([1.0, 2.0, 3.0, -1.0, 0.5])
    b = np.array([1.0, 1.0, 4.0, -1.0, 0.7])
    torch = pytest.importorskip("torch")
    tn_and_torch(F.maximum, torch.maximum, a, b)
    tn_and_torch(F.minimum, torch.minimum, a, b)


def test_maximum_minimum_hand_values_and_gradcheck():
    a = tn.tensor([2.0, 1.0, 0.0], requires_grad=True)
    b = tn.tensor([2.0, 3.0, -1.0], requires_grad=True)
    F.minimum(a, b).backward(np.array([2.0, 1.0, 1.0]))
    np.testing.assert_array_equal(a.grad, [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(b.grad, [1.0, 0.0, 1.0])
    rng = np.random.default_rng(3)
    p, q = rng.standard_normal((3, 4)), rng.standard_normal(4)
    assert tn.gradcheck(F.minimum, p, q) and tn.gradcheck(F.maximum, p, q)


@pytest.mark.parametrize("fn, slope_at_nan", [
    (F.relu, 1.0), (F.relu6, 1.0), (lambda x: F.leaky_relu(x, 0.1), 0.1)])
def test_activation_slope_at_nan_as_pytorch(fn, slope_at_nan):
    # PyTorch 2.x: relu'(NaN) = relu6'(NaN) = 1, leaky_relu'(NaN) = negative_slope
    x = tn.tensor([np.nan, -1.0, 2.0], requires_grad=True)
    fn(x).backward(np.ones(3, np.float32))
    assert x.grad[0] == np.float32(slope_at_nan)
    assert np.isnan(fn(x).numpy()[0])
