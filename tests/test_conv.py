"""F.conv2d: values, shapes, gradients (float64, random upstream gradient) and bad input."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import kernels
from tinynet.kernels import reference


def t(array, requires_grad=False):
    return tn.tensor(array, requires_grad=requires_grad)


# ---- values ----------------------------------------------------------------------------------

def test_lecture_example():
    """The 3x3 input 0..8 cross-correlated with the 2x2 kernel 0..3."""
    x = t(np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3))
    w = t(np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2))
    y = F.conv2d(x, w)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy()[0, 0], [[19, 25], [37, 43]])


@pytest.mark.parametrize("setting", ["reference", "numpy", "auto"])
def test_every_kernel_setting_gives_the_same_op(setting, rng):
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((6, 2, 3, 3))
    b = rng.standard_normal(6)
    g = None
    results = {}
    for name in ("reference", setting):
        with kernels.use(name):
            xt, wt, bt = t(x, True), t(w, True), t(b, True)
            y = F.conv2d(xt, wt, bt, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
            g = rng.standard_normal(y.shape) if g is None else g
            y.backward(g)
            results[name] = [y.numpy(), xt.grad, wt.grad, bt.grad]
    for a, b_ in zip(results["reference"], results[setting]):
        np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-10)


def test_bias_is_added_per_output_channel(rng):
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    b = np.array([1.0, -2.0, 0.5, 3.0])
    y = F.conv2d(t(x), t(w), t(b), padding=1).numpy()
    y0 = reference.conv2d_forward(x, w, (1, 1), (1, 1), (1, 1), 1)[0]
    np.testing.assert_allclose(y, y0 + b[None, :, None, None], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_forward_and_backward(dtype, rng):
    x = t(rng.standard_normal((2, 3, 6, 6)).astype(dtype), True)
    w = t(rng.standard_normal((4, 3, 3, 3)).astype(dtype), True)
    b = t(rng.standard_normal(4).astype(dtype), True)
    y = F.conv2d(x, w, b, stride=2, padding=1)
    assert y.dtype == dtype
    y.sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == dtype


def test_no_gradient_for_an_input_that_does_not_need_one(rng):
    x = t(rng.standard_normal((1, 2, 5, 5)))                     # an image: no grad
    w = t(rng.standard_normal((3, 2, 3, 3)), True)
    F.conv2d(x, w).sum().backward()
    assert x.grad is None and w.grad.shape == (3, 2, 3, 3)


# ---- output shapes: PyTorch's formula ------------------------------------------------------

SHAPE_CASES = [  # (H, W, C, O, kernel, stride, padding, dilation, groups, OH, OW)
    (3, 3, 1, 1, 2, 1, 0, 1, 1, 2, 2),
    (7, 9, 3, 4, 3, 2, 1, 1, 1, 4, 5),
    (8, 8, 4, 8, 3, 1, 0, 2, 2, 4, 4),
    (10, 7, 6, 6, (3, 1), (2, 3), (1, 0), (1, 1), 6, 5, 3),
    (224, 224, 3, 64, 7, 2, 3, 1, 1, 112, 112),
    (5, 6, 4, 2, (2, 3), (1, 2), (0, 1), (2, 1), 2, 3, 3),
]


@pytest.mark.parametrize("h, w, c, o, k, s, p, d, groups, oh, ow", SHAPE_CASES)
def test_output_shape(h, w, c, o, k, s, p, d, groups, oh, ow):
    k2, s2, p2, d2 = (kernels.pair(v) for v in (k, s, p, d))
    x = t(np.zeros((2, c, h, w)))
    weight = t(np.zeros((o, c // groups) + k2))
    y = F.conv2d(x, weight, stride=s, padding=p, dilation=d, groups=groups)
    assert y.shape == (2, o, oh, ow)
    # ... and the formula floor((H + 2P - D(K-1) - 1)/S) + 1 says the same
    assert (oh, ow) == tuple((n + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                             for n, kk, ss, pp, dd in zip((h, w), k2, s2, p2, d2))


@pytest.mark.parametrize("kernel, dilation", [(3, 1), (4, 1), ((3, 4), (2, 1)), (1, 1)])
def test_padding_same_and_valid(kernel, dilation, rng):
    x = t(rng.standard_normal((1, 2, 7, 8)))
    w = t(rng.standard_normal((3, 2) + kernels.pair(kernel)))
    assert F.conv2d(x, w, padding="same", dilation=dilation).shape == (1, 3, 7, 8)
    valid = F.conv2d(x, w, padding="valid", dilation=dilation)
    np.testing.assert_array_equal(valid.numpy(), F.conv2d(x, w, dilation=dilation).numpy())


# ---- gradients --------------------------------------------------------------------------------

GRAD_CASES = [  # (C, O, kernel, stride, padding, dilation, groups)
    (2, 3, (3, 3), 1, 0, 1, 1),
    (2, 3, (3, 2), (2, 1), (1, 2), 1, 1),
    (3, 2, (2, 3), 2, 1, (2, 1), 1),
    (4, 6, (3, 3), 1, 1, 1, 2),              # grouped
    (3, 3, (3, 3), (2, 1), 1, 1, 3),         # depthwise
    (2, 4, (2, 2), 1, (0, 1), 2, 2),         # depthwise with channel multiplier 2
    (2, 2, (1, 1), 2, 0, 1, 1),              # 1x1 with stride: some inputs get no gradient
]


@pytest.mark.parametrize("c, o, kernel, stride, padding, dilation, groups", GRAD_CASES)
def test_gradcheck(c, o, kernel, stride, padding, dilation, groups, rng, each_kernel):
    x = rng.standard_normal((2, c, 6, 5))
    w = rng.standard_normal((o, c // groups) + kernel)
    b = rng.standard_normal(o)

    def conv(x, w, b):
        return F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation,
                        groups=groups)
    tn.gradcheck(conv, x, w, b)


def test_gradcheck_padding_same_with_uneven_split(rng):
    x, w = rng.standard_normal((1, 2, 5, 4)), rng.standard_normal((2, 2, 2, 3))
    tn.gradcheck(lambda x, w: F.conv2d(x, w, padding="same"), x, w)


def test_gradcheck_catches_a_wrong_backward(monkeypatch, rng):
    """The check above can fail: a weight gradient flipped upside down is caught."""
    original = kernels.conv2d_backward

    def wrong(*args):
        grad_x, grad_w, grad_b = original(*args)
        return grad_x, grad_w[:, :, ::-1, :].copy(), grad_b
    monkeypatch.setattr(kernels, "conv2d_backward", wrong)
    x, w = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((2, 2, 3, 3))
    with pytest.raises(tn.GradcheckError):
        tn.gradcheck(lambda x, w: F.conv2d(x, w, padding=1), x, w)


# ---- PyTorch, where installed -------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("c, o, kernel, stride, padding, dilation, groups", GRAD_CASES + [
    (3, 3, (3, 3), 1, "same", 2, 1), (2, 4, (4, 4), 1, "same", 1, 2)])
def test_matches_torch(c, o, kernel, stride, padding, dilation, groups, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, c, 9, 8)).astype(np.float32)
    w = rng.standard_normal((o, c // groups) + kernel).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    xt, wt, bt = t(x, True), t(w, True), t(b, True)
    y = F.conv2d(xt, wt, bt, **args)
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(g)
    xr, wr, br = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yr = torch.nn.functional.conv2d(xr, wr, br, **args)
    yr.backward(torch.tensor(g))
    for ours, theirs in [(y.numpy(), yr), (xt.grad, xr.grad), (wt.grad, wr.grad),
                         (bt.grad, br.grad)]:
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-4, atol=1e-4)


# ---- bad input ---------------------------------------------------------------------------------

def zeros(*shape, dtype=np.float32):
    return t(np.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.conv2d(zeros(3, 5, 5), zeros(2, 3, 3, 3)), ValueError,
     r"input must be 4-D \(N, C, H, W\), got 3-D with shape \(3, 5, 5\)"),
    (lambda: F.conv2d(zeros(1, 3, 5, 5), zeros(3, 3, 3)), ValueError,
     r"weight must be 4-D .* got 3-D with shape \(3, 3, 3\)"),
    (lambda: F.conv2d(zeros(1, 3, 5, 5), zeros(2, 4, 3, 3)), ValueError,
     r"input has C_in=3 channels, but weight \(2, 4, 3, 3\) with groups=1 expects C_in .* = 4"),
    (lambda: F.conv2d(zeros(1, 4, 5, 5), zeros(2, 1, 3, 3), groups=2), ValueError,
     r"expects C_in = weight.shape\[1\] \* groups = 2"),
    (lambda: F.conv2d(zeros(1, 3, 5, 5), zeros(2, 1, 3, 3), groups=2), ValueError,
     r"groups=2 must divide the input channels C_in=3"),
    (lambda: F.conv2d(zeros(1, 4, 5, 5), zeros(3, 2, 3, 3), groups=2), ValueError,
     r"groups=2 must divide the output channels C_out=3"),
    (lambda: F.conv2d(zeros(1, 2, 5, 5), zeros(2, 2, 3, 3), groups=0), ValueError,
     r"groups must be a positive int, got 0"),
    (lambda: F.conv2d(zeros(1, 1, 2, 5), zeros(1, 1, 3, 3)), ValueError,
     r"kernel height 3 .* larger than the padded input height 2 \+ 2\*0 = 2"),
    (lambda: F.conv2d(zeros(1, 1, 5, 5), zeros(1, 1, 3, 3), dilation=3), ValueError,
     r"kernel height 3 \(dilated span 7\) is larger than the padded input height 5"),
    (lambda: F.conv2d(t(np.zeros((1, 1, 3, 3), dtype=np.int64)), zeros(1, 1, 2, 2)), TypeError,
     r"input must have a floating dtype .* got dtype int64"),
    (lambda: F.conv2d(zeros(1, 1, 3, 3), t(np.zeros((1, 1, 2, 2), dtype=np.int32))), TypeError,
     r"weight must have a floating dtype .* got dtype int32"),
    (lambda: F.conv2d(zeros(1, 1, 3, 3), zeros(1, 1, 2, 2, dtype=np.float64)), TypeError,
     r"weight dtype float64 differs from input dtype float32"),
    (lambda: F.conv2d(zeros(1, 1, 3, 3), zeros(2, 1, 2, 2), zeros(3)), ValueError,
     r"bias must have shape \(2,\) .* got \(3,\)"),
    (lambda: F.conv2d(zeros(1, 1, 3, 3), zeros(1, 1, 2, 2), stride=0), ValueError,
     r"stride must be >= 1, got \(0, 0\)"),
    (lambda: F.conv2d(zeros(1, 1, 3, 3), zeros(1, 1, 2, 2), stride=1.5), TypeError,
     r"conv2d: stride must be an int or a pair of ints, got 1.5"),
    (lambda: F.conv2d(zeros(1, 1, 3, 3), zeros(1, 1, 2, 2), padding=-1), ValueError,
     r"padding must be >= 0, got \(-1, -1\)"),
    (lambda: F.conv2d(zeros(1, 1, 3, 3), zeros(1, 1, 2, 2), padding="full"), ValueError,
     r"padding must be an int, a pair, 'valid' or 'same', got 'full'"),
    (lambda: F.conv2d(zeros(1, 1, 5, 5), zeros(1, 1, 2, 2), stride=2, padding="same"),
     ValueError, r"padding='same' needs stride 1, got stride=\(2, 2\)"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_tensors_on_different_devices(monkeypatch):
    """A tensor on 'cuda' next to one on 'cpu' is refused before anything runs (faked on a
    machine without a GPU by overriding what the first tensor reports as its device)."""
    x, w = zeros(1, 1, 3, 3), zeros(1, 1, 2, 2)
    monkeypatch.setattr(type(x), "device", property(lambda self: "cuda" if self is x else "cpu"))
    with pytest.raises(ValueError, match=r"one device, got input on 'cuda', weight on 'cpu'"):
        F.conv2d(x, w)


@pytest.mark.skipif(not tn.cuda_available(), reason="needs CuPy and an NVIDIA GPU")
@pytest.mark.parametrize("setting", ["auto", "numpy"])
def test_on_gpu_equals_cpu(setting, rng):
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    results = []
    for device in ("cpu", "cuda"):
        with kernels.use(setting):
            xt, wt, bt = (tn.tensor(a, requires_grad=True, device=device) for a in (x, w, b))
            y = F.conv2d(xt, wt, bt, stride=(2, 1), padding=1, groups=2)
            y.backward(tn.tensor(np.ones(y.shape, np.float32), device=device).data)
            assert y.device == device and xt.grad.dtype == np.float32
            results.append([tn.Tensor(a).numpy() for a in (y.data, xt.grad, wt.grad, bt.grad)])
    for cpu, gpu in zip(*results):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-4)


# ---- saved state lives on the Function, nowhere else ----------------------------------------

def test_conv2d_saves_col_only_when_the_weight_needs_a_gradient(rng):
    """Conv2d keeps what backward needs on itself: the kernel's saved col when the weight
    needs dL/dW (Numba path), nothing when only the input does (saliency on a frozen net)."""
    pytest.importorskip("numba")
    x = t(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = t(rng.standard_normal((4, 3, 3, 3)))
    with kernels.use("numba"):
        y = F.conv2d(x, w, padding=1)
        assert y.creator.needs_input_grad == (True, False)
        assert y.creator.saved is None
        w.requires_grad = True
        y = F.conv2d(x, w, padding=1)
        assert y.creator.needs_input_grad == (True, True)
        assert y.creator.saved is not None
        y.sum().backward()
    assert not hasattr(y.creator, "saved")        # released after backward
    np.testing.assert_allclose(
        w.grad, reference.conv2d_backward_weight(np.ones(y.shape), x.numpy(), w.shape,
                                                 (1, 1), (1, 1), (1, 1), 1), rtol=1e-10)


def test_a_forward_that_reaches_no_backward_keeps_nothing(rng):
    """Under no_grad(), or when the output is dropped, no memory stays behind after the
    call (before, each input array kept its im2col matrix in a module-level dict: 18 MiB for
    an (8, 64, 32, 32) input).  Measured with tracemalloc, which sees NumPy's allocations."""
    import gc
    import tracemalloc
    w = t(rng.standard_normal((16, 16, 3, 3)).astype(np.float32), requires_grad=True)
    xs = [t(rng.standard_normal((4, 16, 16, 16)).astype(np.float32)) for _ in range(6)]
    F.conv2d(xs[0], w, padding=1)            # warm up: compile, scratch buffers
    with tn.no_grad():
        F.conv2d(xs[0], w, padding=1)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for x in xs:                         # the inputs stay alive all along
            with tn.no_grad():
                F.conv2d(x, w, padding=1)
            F.conv2d(x, w, padding=1)        # output (and its Function) dropped at once
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    col_bytes = 16 * 9 * 4 * 256 * 4         # one input's im2col matrix (C KH KW, N, OH OW)
    assert grown < col_bytes, f"{grown} bytes stayed behind"
