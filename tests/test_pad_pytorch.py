"""F.pad with PyTorch's flat tuple (last axis first) and NumPy's per-axis pairs, negative
widths (cropping), and nn.ZeroPad2d / nn.ConstantPad2d."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import nn

X = np.random.default_rng(2).standard_normal((2, 3, 4, 5))


def test_flat_tuple_is_last_axis_first_by_hand():
    y = F.pad(tn.tensor(X), (0, 1, 2, 0), value=7.0).numpy()     # W: +1 right; H: +2 top
    np.testing.assert_array_equal(y, np.pad(X, ((0, 0), (0, 0), (2, 0), (0, 1)),
                                            constant_values=7.0))
    per_axis = F.pad(tn.tensor(X), ((0, 0), (0, 0), (2, 0), (0, 1)), value=7.0).numpy()
    np.testing.assert_array_equal(y, per_axis)
    # negative widths crop: one column off the left, one row off the bottom
    np.testing.assert_array_equal(F.pad(tn.tensor(X), (-1, 0, 0, -1)).numpy(),
                                  X[:, :, :-1, 1:])


@pytest.mark.parametrize("pad", [(0, 1, 0, 1), (1, 1), (2, -1, -2, 3), (1, 0, 0, 2, 1, 1),
                                 (-1, -1, -1, -1)])
def test_pad_matches_torch(pad):
    torch = pytest.importorskip("torch")
    x, xt = tn.tensor(X, requires_grad=True), torch.tensor(X, requires_grad=True)
    y, yt = F.pad(x, pad, value=0.5), torch.nn.functional.pad(xt, pad, value=0.5)
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    u = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(u)
    yt.backward(torch.tensor(u))
    np.testing.assert_array_equal(x.grad, xt.grad.numpy())


def test_pad_gradcheck_and_layers():
    assert tn.gradcheck(lambda t: F.pad(t, (2, -1, -2, 3)), X)
    y = nn.ZeroPad2d((0, 1, 0, 1))(tn.tensor(X)).numpy()           # TF 'SAME', stride 2
    np.testing.assert_array_equal(y, np.pad(X, ((0, 0), (0, 0), (0, 1), (0, 1))))
    y = nn.ConstantPad2d(2, -3.0)(tn.tensor(X)).numpy()
    np.testing.assert_array_equal(y, np.pad(X, ((0, 0), (0, 0), (2, 2), (2, 2)),
                                            constant_values=-3.0))
    assert tn.gradcheck(nn.ZeroPad2d((1, 0, 2, 1)), X)
    torch = pytest.importorskip("torch")
    for ours, theirs in ((nn.ZeroPad2d((1, 2, 0, 3)), torch.nn.ZeroPad2d((1, 2, 0, 3))),
                         (nn.ConstantPad2d(1, 2.5), torch.nn.ConstantPad2d(1, 2.5))):
        np.testing.assert_array_equal(ours(tn.tensor(X)).numpy(),
                                      theirs(torch.tensor(X)).numpy())


def test_pad_errors_name_pad():
    x = tn.tensor(X)
    with pytest.raises(ValueError, match="pad: the flat form needs an even number of ints"):
        F.pad(x, (1, 2, 3))
    with pytest.raises(ValueError, match="at most 2 per axis"):
        F.pad(x, (1,) * 10)
    with pytest.raises(TypeError, match="pad: pad must be a flat tuple"):
        F.pad(x, 1)
    with pytest.raises(ValueError, match="pad: mode must be 'constant'"):
        F.pad(x, (1, 1), mode="reflect")
    with pytest.raises(ValueError, match="crops more than the input's shape"):
        F.pad(x, (-3, -3))
    with pytest.raises(ValueError, match="ZeroPad2d: padding must be an int or 4 ints"):
        nn.ZeroPad2d((1, 2))
