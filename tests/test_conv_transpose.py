"""F.conv_transpose2d / nn.ConvTranspose2d: against a plain scatter loop (the definition)
under every kernel setting, against PyTorch, and by finite differences in float64."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import nn

CONFIGS = [
    dict(),
    dict(stride=2),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2), dilation=(2, 1), groups=2),
]


def scatter_loops(x, w, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The definition: every input pixel x[n, c, i, j] adds x * w[c, o, u, v] at output
    position (i SH + u DH - PH, j SW + v DW - PW) of each channel o of c's group."""
    pair = lambda v: (v, v) if isinstance(v, int) else v          # noqa: E731
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = map(pair, (stride, padding, output_padding,
                                                         dilation))
    n, c_in, h, wd = x.shape
    _, c_out_g, kh, kw = w.shape
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    y = np.zeros((n, c_out_g * groups, oh, ow))
    c_in_g = c_in // groups
    for b in range(n):
        for c in range(c_in):
            g = c // c_in_g
            for i in range(h):
                for j in range(wd):
                    for o in range(c_out_g):
                        for u in range(kh):
                            for v in range(kw):
                                r, s = i * sh + u * dh - ph, j * sw + v * dw - pw
                                if 0 <= r < oh and 0 <= s < ow:
                                    y[b, g * c_out_g + o, r, s] += x[b, c, i, j] * w[c, o, u, v]
    return y


def _arrays(config, seed=0):
    rng = np.random.default_rng(seed)
    groups = config.get("groups", 1)
    return rng.standard_normal((2, 4, 4, 3)), rng.standard_normal((4, 3, 3, 2)), \
        rng.standard_normal(3 * groups)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_matches_scatter_loops_under_every_kernel(config, each_kernel):
    x, w, b = _arrays(config)
    y = F.conv_transpose2d(tn.tensor(x), tn.tensor(w), tn.tensor(b), **config).numpy()
    np.testing.assert_allclose(y, scatter_loops(x, w, **config) + b[None, :, None, None],
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config", CONFIGS[1:], ids=str)
def test_gradcheck_under_every_kernel(config, each_kernel):
    x, w, b = _arrays(config)
    assert tn.gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, **config), x, w, b)


@pytest.mark.parametrize("config", CONFIGS + [dict(groups=4, stride=2)], ids=str)
def test_matches_torch(config):
    torch = pytest.importorskip("torch")
    x, w, b = _arrays(config)
    if config.get("groups") == 4:
        w, b = w[:, :1], b[:4]
    ours = [tn.tensor(a, requires_grad=True) for a in (x, w, b)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = F.conv_transpose2d(*ours, **config)
    yt = torch.nn.functional.conv_transpose2d(*theirs, **config)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    u = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(u)
    yt.backward(torch.tensor(u))
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_layer_matches_torch_layout_and_float32():
    torch = pytest.importorskip("torch")
    ours = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    theirs = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    bound = 1 / np.sqrt(3 * 3 * 3)                      # fan_in = C_out/groups * KH * KW
    assert np.abs(ours.weight.data).max() <= bound and np.abs(ours.bias.data).max() <= bound
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(3).standard_normal((2, 4, 5, 5)).astype(np.float32)
    y = ours(tn.tensor(x))
    assert y.dtype == np.float32 and y.shape == (2, 6, 10, 10)
    np.testing.assert_allclose(y.numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_transpose_of_conv2d_and_errors():
    # <conv2d(y, w), x> = <y, conv_transpose2d(x, w)>: the defining adjoint identity
    rng = np.random.default_rng(4)
    w = rng.standard_normal((4, 3, 3, 3))
    x = rng.standard_normal((1, 4, 3, 3))
    y = rng.standard_normal((1, 3, 7, 7))
    left = (F.conv2d(tn.tensor(y), tn.tensor(w), stride=2).numpy() * x).sum()
    right = (y * F.conv_transpose2d(tn.tensor(x), tn.tensor(w), stride=2).numpy()).sum()
    assert left == pytest.approx(right, rel=1e-12)
    with pytest.raises(ValueError, match="output_padding must be >= 0 and smaller than stride"):
        F.conv_transpose2d(tn.tensor(x), tn.tensor(w), output_padding=1)
    with pytest.raises(ValueError, match=r"input has C_in=4 channels, weight \(3, 3, 3, 3\)"):
        F.conv_transpose2d(tn.tensor(x), tn.tensor(w[:3]))
    with pytest.raises(ValueError, match="bias must have shape \\(3,\\)"):
        F.conv_transpose2d(tn.tensor(x), tn.tensor(w), tn.tensor(np.ones(4)))
