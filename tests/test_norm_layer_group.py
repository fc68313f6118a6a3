"""LayerNorm and GroupNorm (+ F.layer_norm, F.group_norm): against PyTorch (values, input and
parameter gradients, state_dict keys), by hand, and by finite differences in float64."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import nn

RNG = np.random.default_rng(5)
X = RNG.standard_normal((2, 6, 3, 2)) * 2 + 1


def _module_vs_torch(ours, theirs, x):
    torch = pytest.importorskip("torch")
    ours.double()
    theirs.double()
    with torch.no_grad():                          # non-trivial affine parameters
        for (name, p), q in zip(theirs.named_parameters(), ours.parameters()):
            p.copy_(torch.tensor(RNG.standard_normal(p.shape)))
            q.data[...] = p.numpy()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    xt, xo = torch.tensor(x, requires_grad=True), tn.tensor(x, requires_grad=True)
    y, yt = ours(xo), theirs(xt)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    u = RNG.standard_normal(y.shape)
    y.backward(u)
    yt.backward(torch.tensor(u))
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    for p, q in zip(theirs.parameters(), ours.parameters()):
        np.testing.assert_allclose(q.grad, p.grad.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("shape", [(2,), (3, 2), (6, 3, 2)])
def test_layer_norm_matches_torch(shape):
    torch = pytest.importorskip("torch")
    _module_vs_torch(nn.LayerNorm(shape), torch.nn.LayerNorm(shape), X)


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_group_norm_matches_torch(groups):
    torch = pytest.importorskip("torch")
    _module_vs_torch(nn.GroupNorm(groups, 6), torch.nn.GroupNorm(groups, 6), X)
    _module_vs_torch(nn.GroupNorm(groups, 6), torch.nn.GroupNorm(groups, 6), X[:, :, 0, 0])


def test_layer_norm_by_hand():
    x = np.array([[1.0, 2.0, 3.0, 6.0]])          # mean 3, var (4 + 1 + 0 + 9)/4 = 3.5
    expected = (x - 3) / np.sqrt(3.5 + 1e-5)
    np.testing.assert_allclose(F.layer_norm(tn.tensor(x), 4).numpy(), expected, rtol=1e-12)
    # group norm with one channel per group is instance norm: each (n, c) plane alone
    y = F.group_norm(tn.tensor(X), 6).numpy()
    plane = X[1, 4]
    np.testing.assert_allclose(y[1, 4], (plane - plane.mean()) / np.sqrt(plane.var() + 1e-5),
                               rtol=1e-10)


def test_norm_gradcheck_with_parameters():
    w, b = RNG.standard_normal((3, 2)), RNG.standard_normal((3, 2))
    assert tn.gradcheck(lambda x, w, b: F.layer_norm(x, (3, 2), w, b), X, w, b)
    wc, bc = RNG.standard_normal(6), RNG.standard_normal(6)
    assert tn.gradcheck(lambda x, w, b: F.group_norm(x, 3, w, b), X, wc, bc)
    assert tn.gradcheck(nn.GroupNorm(2, 6), X[:, :, :, :1])


def test_norm_argument_errors():
    with pytest.raises(ValueError, match="num_channels .6. must be divisible by num_groups .4."):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"expected input \(N, 6, ...\), got shape \(2, 4\)"):
        nn.GroupNorm(2, 6)(tn.tensor(np.ones((2, 4))))
    with pytest.raises(ValueError, match=r"normalized_shape \(3,\) must equal the last axes"):
        F.layer_norm(tn.tensor(X), 3)
    with pytest.raises(ValueError, match="normalized_shape must be positive ints"):
        nn.LayerNorm(0)
    ln = nn.LayerNorm(2, elementwise_affine=False)
    assert ln.weight is None and ln.state_dict() == {}
