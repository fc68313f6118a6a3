"""Pooling ops: values, shapes, gradients (float64, random upstream gradient) and bad input."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F


def t(array, requires_grad=False):
    return tn.tensor(array, requires_grad=requires_grad)


def distinct(rng, *shape):
    """Values without ties (a shuffled range), so max pooling is differentiable."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) / 4.0 - 3.0


X4 = np.array([[[[1.0, 2.0, 5.0, 0.0],
                 [3.0, 4.0, 1.0, 2.0],
                 [0.0, 9.0, 6.0, 6.5],
                 [8.0, 1.0, 7.0, 3.0]]]])


# ---- values ------------------------------------------------------------------------------

def test_max_pool_hand_example():
    y = F.max_pool2d(t(X4), 2)               # stride defaults to the kernel
    np.testing.assert_array_equal(y.numpy()[0, 0], [[4, 5], [9, 7]])


def test_avg_pool_hand_example():
    y = F.avg_pool2d(t(X4), 2)
    np.testing.assert_array_equal(y.numpy()[0, 0], [[2.5, 2.0], [4.5, 5.625]])


def test_avg_pool_counts_padding():
    """count_include_pad=True: a corner window with padding 1 holds one real value."""
    x = np.ones((1, 1, 2, 2))
    y = F.avg_pool2d(t(x), 2, stride=1, padding=1).numpy()[0, 0]
    np.testing.assert_allclose(y, [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])


def test_max_pool_gradient_goes_to_the_maximum():
    x = t(X4, True)
    y = F.max_pool2d(x, 2)
    y.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = np.zeros((4, 4))
    expected[1, 1], expected[0, 2], expected[2, 1], expected[3, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(x.grad[0, 0], expected)


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0)),
                                                     (3, 1, 0), (2, 3, 1)])
def test_pools_against_plain_loops(kernel, stride, padding, rng):
    x = distinct(rng, 2, 3, 7, 6)
    (kh, kw) = (kernel, kernel) if isinstance(kernel, int) else kernel
    (sh, sw) = (kh, kw) if stride is None else ((stride, stride) if isinstance(stride, int) else stride)
    (ph, pw) = (padding, padding) if isinstance(padding, int) else padding
    y_max = F.max_pool2d(t(x), kernel, stride, padding).numpy()
    y_avg = F.avg_pool2d(t(x), kernel, stride, padding).numpy()
    oh, ow = (7 + 2 * ph - kh) // sh + 1, (6 + 2 * pw - kw) // sw + 1
    assert y_max.shape == y_avg.shape == (2, 3, oh, ow)
    padded_max = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    padded_avg = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    for i in range(oh):
        for j in range(ow):
            window = (slice(None), slice(None), slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw))
            np.testing.assert_allclose(y_max[:, :, i, j], padded_max[window].max(axis=(2, 3)))
            np.testing.assert_allclose(y_avg[:, :, i, j], padded_avg[window].mean(axis=(2, 3)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", ["max", "avg", "adaptive", "global"])
def test_dtype_is_kept(pool, dtype, rng):
    x = t(distinct(rng, 2, 3, 6, 5).astype(dtype), True)
    y = {"max": lambda: F.max_pool2d(x, 2), "avg": lambda: F.avg_pool2d(x, 3, 2, 1),
         "adaptive": lambda: F.adaptive_avg_pool2d(x, (4, 3)),
         "global": lambda: F.global_avg_pool2d(x)}[pool]()
    assert y.dtype == dtype
    y.sum().backward()
    assert x.grad.dtype == dtype and x.grad.shape == x.shape


# ---- adaptive and global average pooling --------------------------------------------------------

def adaptive_definition(x, oh, ow):
    """PyTorch's bins: start = floor(i H / OH), end = ceil((i + 1) H / OH)."""
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow))
    for i in range(oh):
        h0, h1 = (i * h) // oh, -((-(i + 1) * h) // oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, -((-(j + 1) * w) // ow)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


@pytest.mark.parametrize("size, output_size", [((6, 6), 3), ((5, 7), (3, 2)), ((7, 5), (7, 5)),
                                               ((4, 4), 1), ((3, 5), (5, 7)), ((6, 8), (None, 3))])
def test_adaptive_avg_pool(size, output_size, rng):
    x = rng.standard_normal((2, 3) + size)
    y = F.adaptive_avg_pool2d(t(x), output_size).numpy()
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    oh, ow = oh or size[0], ow or size[1]
    np.testing.assert_allclose(y, adaptive_definition(x, oh, ow), rtol=1e-12)


def test_global_avg_pool(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    y = F.global_avg_pool2d(t(x))
    assert y.shape == (2, 3)
    np.testing.assert_allclose(y.numpy(), x.mean(axis=(2, 3)))


# ---- gradients -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0)),
                                                     (3, 1, 1), (2, 3, 0)])
def test_gradcheck_max_pool(kernel, stride, padding, rng, each_kernel):
    x = distinct(rng, 1, 3, 7, 6)       # gradcheck perturbs all 126 elements one by one
    tn.gradcheck(lambda x: F.max_pool2d(x, kernel, stride, padding), x)


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0)),
                                                     (3, 1, 1)])
def test_gradcheck_avg_pool(kernel, stride, padding, rng, each_kernel):
    x = rng.standard_normal((1, 3, 7, 6))
    tn.gradcheck(lambda x: F.avg_pool2d(x, kernel, stride, padding), x)


@pytest.mark.parametrize("output_size", [(3, 2), 2, (5, 4), 1])
def test_gradcheck_adaptive_and_global(output_size, rng):
    x = rng.standard_normal((2, 2, 6, 5))
    tn.gradcheck(lambda x: F.adaptive_avg_pool2d(x, output_size), x)
    tn.gradcheck(F.global_avg_pool2d, x)


# ---- PyTorch, where installed ------------------------------------------------------------------

@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0))])
def test_matches_torch(kernel, stride, padding, rng):
    torch = pytest.importorskip("torch")
    x = distinct(rng, 2, 3, 9, 8).astype(np.float32)
    xr = torch.tensor(x)
    for ours, theirs in [
            (F.max_pool2d(t(x), kernel, stride, padding),
             torch.nn.functional.max_pool2d(xr, kernel, stride, padding)),
            (F.avg_pool2d(t(x), kernel, stride, padding),
             torch.nn.functional.avg_pool2d(xr, kernel, stride, padding)),
            (F.adaptive_avg_pool2d(t(x), (4, 3)),
             torch.nn.functional.adaptive_avg_pool2d(xr, (4, 3)))]:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)


# ---- bad input ---------------------------------------------------------------------------------

def zeros(*shape, dtype=np.float32):
    return t(np.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
@pytest.mark.parametrize("args, error, message", [
    ((zeros(3, 4, 4), 2), ValueError, r"input must be 4-D \(N, C, H, W\), got 3-D with shape \(3, 4, 4\)"),
    ((t(np.zeros((1, 1, 4, 4), dtype=np.int64)), 2), TypeError, r"floating dtype .* got dtype int64"),
    ((zeros(1, 1, 4, 4), 0), ValueError, r"kernel_size must be >= 1, got \(0, 0\)"),
    ((zeros(1, 1, 4, 4), 2, 0), ValueError, r"stride must be >= 1, got \(0, 0\)"),
    ((zeros(1, 1, 4, 4), 2, 2, 2), ValueError,
     r"padding must be between 0 and half the kernel size \(1, 1\), got \(2, 2\)"),
    ((zeros(1, 1, 4, 4), 2, 2, -1), ValueError, r"padding must be between 0 .* got \(-1, -1\)"),
    ((zeros(1, 1, 2, 4), 3), ValueError,
     r"kernel \(3, 3\) is larger than the padded input \(2, 4\)"),
    ((zeros(1, 1, 4, 4), (2, 2, 2)), TypeError, r"kernel_size must be an int or a pair of ints"),
])
def test_bad_input(pool, args, error, message):
    with pytest.raises(error, match=message):
        pool(*args)


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.adaptive_avg_pool2d(zeros(4, 4), 2), ValueError, r"input must be 4-D"),
    (lambda: F.adaptive_avg_pool2d(zeros(1, 1, 4, 4), 0), ValueError,
     r"output_size must be >= 1, got \(0, 0\)"),
    (lambda: F.adaptive_avg_pool2d(zeros(1, 1, 4, 4), "2"), TypeError,
     r"output_size must be an int or a pair of ints, got '2'"),
    (lambda: F.global_avg_pool2d(zeros(2, 3)), ValueError, r"global_avg_pool2d: input must be 4-D"),
    (lambda: F.global_avg_pool2d(t(np.zeros((1, 1, 2, 2), dtype=bool))), TypeError,
     r"floating dtype .* got dtype bool"),
])
def test_bad_input_adaptive(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.skipif(not tn.cuda_available(), reason="needs CuPy and an NVIDIA GPU")
@pytest.mark.parametrize("pool", [lambda x: F.max_pool2d(x, 3, 2, 1), lambda x: F.avg_pool2d(x, 2),
                                  lambda x: F.adaptive_avg_pool2d(x, (3, 2)), F.global_avg_pool2d])
def test_on_gpu_equals_cpu(pool, rng):
    x = distinct(rng, 2, 3, 7, 6).astype(np.float32)
    results = []
    for device in ("cpu", "cuda"):
        xt = tn.tensor(x, requires_grad=True, device=device)
        y = pool(xt)
        y.backward(tn.tensor(np.ones(y.shape, np.float32), device=device).data)
        assert y.device == device
        results.append([tn.Tensor(a).numpy() for a in (y.data, xt.grad)])
    for cpu, gpu in zip(*results):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-5)


# ---- inf, NaN and empty batches: every kernel gives the same answer as PyTorch --------------

def test_avg_pool_inf_stays_in_its_window(each_kernel):
    # one inf must not turn the other windows into NaN (the Numba kernel once started each
    # sum at x[n, c, 0, 0] * 0 = NaN); PyTorch: [inf, 4.5, 10.5, 12.5]
    x = np.arange(16.).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = np.inf
    np.testing.assert_array_equal(F.avg_pool2d(t(x), 2).numpy().ravel(),
                                  [np.inf, 4.5, 10.5, 12.5])
    # the equal-bins path of the adaptive pool runs the same kernel
    np.testing.assert_array_equal(F.adaptive_avg_pool2d(t(x), 2).numpy().ravel(),
                                  [np.inf, 4.5, 10.5, 12.5])
    x[0, 0, 0, 0] = np.nan
    out = F.avg_pool2d(t(x.astype(np.float32)), 2).numpy().ravel()
    assert np.isnan(out[0]) and np.array_equal(out[1:], [4.5, 10.5, 12.5])


@pytest.mark.parametrize("nan_at", [(0, 0), (0, 1), (1, 1)])
def test_max_pool_nan_window_sends_the_gradient_to_the_nan(nan_at, each_kernel):
    # PyTorch: a NaN is the window's maximum, and its gradient goes to the NaN
    x = np.arange(16.).reshape(1, 1, 4, 4)
    x[(0, 0) + nan_at] = np.nan
    x[0, 0, 2, 3] = np.nan                       # two NaNs in one window: the last wins
    x[0, 0, 3, 2] = np.nan
    xt = t(x, requires_grad=True)
    y = F.max_pool2d(xt, 2)
    assert np.isnan(y.numpy()[0, 0, 0, 0]) and np.isnan(y.numpy()[0, 0, 1, 1])
    y.backward(np.ones(y.shape))
    expected = np.zeros((4, 4))
    expected[nan_at] = 1
    expected[1, 3] = expected[3, 2] = expected[3, 1] = 1      # 7, the last NaN, 13
    np.testing.assert_array_equal(xt.grad[0, 0], expected)
    torch = pytest.importorskip("torch")
    xt_torch = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt_torch, 2).sum().backward()
    np.testing.assert_array_equal(xt.grad, xt_torch.grad.numpy())


@pytest.mark.parametrize("pool", [lambda x: F.max_pool2d(x, 2),
                                  lambda x: F.max_pool2d(x, 3, 1, 1),
                                  lambda x: F.avg_pool2d(x, 2),
                                  lambda x: F.adaptive_avg_pool2d(x, 3),
                                  lambda x: F.global_avg_pool2d(x)])
def test_pools_on_an_empty_batch(pool, each_kernel):
    x = t(np.zeros((0, 2, 4, 4)), requires_grad=True)
    y = pool(x)
    assert y.shape[:2] == (0, 2)
    y.sum().backward()
    assert x.grad.shape == (0, 2, 4, 4)


def test_conv_on_an_empty_batch(each_kernel):
    x = t(np.zeros((0, 2, 5, 5)), requires_grad=True)
    w = t(np.ones((3, 2, 3, 3)), requires_grad=True)
    y = F.conv2d(x, w, stride=2, padding=1)
    assert y.shape == (0, 3, 3, 3)
    y.sum().backward()
    assert x.grad.shape == (0, 2, 5, 5)
    np.testing.assert_array_equal(w.grad, np.zeros((3, 2, 3, 3)))
