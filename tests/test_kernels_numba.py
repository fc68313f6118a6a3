"""The Numba kernels (tinynet/kernels/cpu_numba.py, numba_pool.py) equal the plain loops of
kernels/reference.py on random inputs: every shape, stride, padding, dilation and group
count hypothesis draws, float32 and float64, contiguous or not, forward and backward.

The first run on a machine compiles each kernel once per dtype (and caches it on disk)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

pytest.importorskip("numba")

from tinynet import kernels                              # noqa: E402
from tinynet.kernels import cpu_numba as fast            # noqa: E402
from tinynet.kernels import numba_threads                # noqa: E402
from tinynet import geometry as geometry_module           # noqa: E402
from tinynet.kernels import reference as ref             # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None)


@pytest.fixture(autouse=True, scope="module")
def split_even_small_jobs():
    """Tiny test arrays would run on one thread; split them too, so the chunked
    (multi-thread) paths are the ones tested."""
    old = numba_threads.MIN_ELEMENTS_TO_SPLIT, numba_threads.THREADS
    numba_threads.MIN_ELEMENTS_TO_SPLIT, numba_threads.THREADS = 0, 2
    yield
    numba_threads.MIN_ELEMENTS_TO_SPLIT, numba_threads.THREADS = old


def assert_close(actual, expected, dtype):
    """Same shape and dtype; values equal up to the rounding of ``dtype``."""
    assert actual.shape == expected.shape
    assert actual.dtype == dtype
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    tol = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol * scale)


def noncontiguous(a, kind):
    """The same values as ``a`` in a strided or transposed memory layout."""
    if kind == "strided":
        return np.repeat(a, 2, axis=-1)[..., ::2]
    if kind == "transposed":
        return np.asfortranarray(a)
    return a


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = groups > 1 and draw(st.booleans())
    cg = 1 if depthwise else draw(st.integers(1, 3))
    og = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    # smallest input the dilated kernel fits in, then a few pixels more
    h0 = max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0])
    w0 = max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1])
    h, w = draw(st.integers(h0, h0 + 6)), draw(st.integers(w0, w0 + 6))
    n = draw(st.integers(1, 3))
    return dict(x_shape=(n, cg * groups, h, w), w_shape=(og * groups, cg, kh, kw),
                stride=stride, padding=padding, dilation=dilation, groups=groups,
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                layout=draw(st.sampled_from(["plain", "strided", "transposed"])),
                seed=draw(st.integers(0, 2**16)))


def check_conv(case):
    rng = np.random.default_rng(case["seed"])
    dtype, layout = case["dtype"], case["layout"]
    geometry = (case["stride"], case["padding"], case["dilation"], case["groups"])
    x = rng.standard_normal(case["x_shape"])
    w = rng.standard_normal(case["w_shape"])
    y = ref.conv2d_forward(x, w, *geometry)[0]                    # the oracle, in float64
    gy = rng.standard_normal(y.shape)
    xd, wd, gyd = (noncontiguous(a.astype(dtype), layout) for a in (x, w, gy))

    assert_close(fast.conv2d_forward(xd, wd, *geometry)[0], y, dtype)
    assert_close(fast.conv2d_backward_input(gyd, wd, x.shape, *geometry),
                 ref.conv2d_backward_input(gy, w, x.shape, *geometry), dtype)
    assert_close(fast.conv2d_backward_weight(gyd, xd, w.shape, *geometry),
                 ref.conv2d_backward_weight(gy, x, w.shape, *geometry), dtype)
    # as in training: the forward saves col (a view of x for a 1x1 kernel and one example),
    # and the backward uses it for dL/dW
    y_saved, col = fast.conv2d_forward(xd, wd, *geometry, save=True)
    assert_close(y_saved, y, dtype)
    grad_x, grad_w, _ = fast.conv2d_backward(gyd, xd, wd, *geometry, saved=col)
    assert_close(grad_x, ref.conv2d_backward_input(gy, w, x.shape, *geometry), dtype)
    assert_close(grad_w, ref.conv2d_backward_weight(gy, x, w.shape, *geometry), dtype)


@SETTINGS
@given(conv_cases())
def test_conv2d_matches_reference(case):
    check_conv(case)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, w_shape, padding, groups", [
    ((2, 3, 32, 33), (4, 3, 3, 3), (1, 1), 1),     # a first layer: 3 channels, large planes
    ((1, 4, 6, 5), (5, 4, 3, 2), (1, 0), 1),       # batch of one
    ((3, 5, 4, 6), (7, 5, 1, 1), (0, 0), 1),       # 1x1: col is x swapped, no im2col
    ((1, 5, 4, 6), (7, 5, 1, 1), (0, 0), 1),       # 1x1, one example: col is a view of x
    ((2, 6, 4, 5), (4, 3, 1, 1), (0, 0), 2),       # 1x1 with groups
    ((2, 4, 5, 5), (8, 1, 3, 3), (1, 1), 4),       # depthwise with 2 outputs per channel
])
def test_conv2d_special_paths(x_shape, w_shape, padding, groups, dtype):
    check_conv(dict(x_shape=x_shape, w_shape=w_shape, stride=(1, 1), padding=padding,
                    dilation=(1, 1), groups=groups, dtype=dtype, layout="plain", seed=1))


def test_conv2d_in_batch_slices(monkeypatch):
    """A col larger than MAX_COL_BYTES is built a few examples at a time; same result."""
    monkeypatch.setattr(geometry_module, "MAX_COL_BYTES", 4 * 3 * 9 * 25 * 8)    # 4 examples' col
    for shape in [((9, 3, 5, 5), (4, 3, 3, 3), 1), ((9, 4, 5, 5), (6, 2, 3, 3), 2)]:
        check_conv(dict(x_shape=shape[0], w_shape=shape[1], stride=(1, 1), padding=(1, 1),
                        dilation=(1, 1), groups=shape[2], dtype=np.float64, layout="plain",
                        seed=2))


def test_conv2d_one_thread(monkeypatch):
    monkeypatch.setattr(numba_threads, "THREADS", 1)
    check_conv(dict(x_shape=(2, 2, 5, 5), w_shape=(3, 2, 3, 3), stride=(2, 1), padding=(1, 1),
                    dilation=(1, 2), groups=1, dtype=np.float64, layout="plain", seed=3))


# ---- pooling -------------------------------------------------------------------------------

@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    # as in PyTorch: padding at most half the kernel, so a window always holds real pixels
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    h = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), 8))
    w = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), 8))
    return dict(x_shape=(draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w),
                kernel=kernel, stride=stride, padding=padding,
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                layout=draw(st.sampled_from(["plain", "strided", "transposed"])),
                ties=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@SETTINGS
@given(pool_cases())
def test_pooling_matches_reference(case):
    rng = np.random.default_rng(case["seed"])
    dtype, shape = case["dtype"], case["x_shape"]
    geometry = (case["kernel"], case["stride"], case["padding"])
    if case["ties"]:      # few distinct values: the first maximum in a window must win
        x = rng.integers(-2, 3, size=shape).astype(np.float64)
    else:
        x = rng.standard_normal(shape)
    xd = noncontiguous(x.astype(dtype), case["layout"])

    y, argmax = fast.max_pool2d_forward(xd, *geometry)
    y_ref, argmax_ref = ref.max_pool2d_forward(x, *geometry)
    assert_close(y, y_ref, dtype)
    assert argmax.dtype == np.int64
    np.testing.assert_array_equal(argmax, argmax_ref)
    gy = rng.standard_normal(y.shape)
    gyd = noncontiguous(gy.astype(dtype), case["layout"])
    assert_close(fast.max_pool2d_backward(gyd, argmax, shape),
                 ref.max_pool2d_backward(gy, argmax_ref, shape), dtype)

    assert_close(fast.avg_pool2d_forward(xd, *geometry), ref.avg_pool2d_forward(x, *geometry),
                 dtype)
    assert_close(fast.avg_pool2d_backward(gyd, shape, *geometry),
                 ref.avg_pool2d_backward(gy, shape, *geometry), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (1, 2, 5, 7)])       # even and odd sizes
def test_max_pool_2x2_fast_path(shape, dtype):
    """2x2 windows with stride 2 have their own kernel; ties (few distinct values) too."""
    rng = np.random.default_rng(5)
    for x in (rng.standard_normal(shape), rng.integers(-1, 2, size=shape).astype(float)):
        y, argmax = fast.max_pool2d_forward(x.astype(dtype), (2, 2), (2, 2), (0, 0))
        y_ref, argmax_ref = ref.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
        assert_close(y, y_ref, dtype)
        np.testing.assert_array_equal(argmax, argmax_ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 4, 32, 32), (2, 3, 17, 9), (1, 5, 6, 66)])
def test_max_pool_2x2_planes_with_and_without_nan(shape, dtype):
    """The 2x2 kernel's NaN-free path and its redo of planes that hold a NaN: NaN, +-inf,
    +-0 (equal, so the first wins) and ties in some planes, none in others."""
    rng = np.random.default_rng(6)
    x = rng.integers(-2, 3, size=shape).astype(dtype)            # many ties
    x[0, 0] = rng.standard_normal(shape[2:])
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype)
    for n, c in [(0, 1), (shape[0] - 1, shape[1] - 1)]:          # NaN in these planes only
        flat = x[n, c].reshape(-1)
        flat[rng.choice(flat.size, size=12, replace=False)] = np.resize(specials, 12)
    x[-1, 0, -1, -1] = np.nan              # outside every window when H or W is odd
    y, argmax = fast.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0))
    y_ref, argmax_ref = ref.max_pool2d_forward(x.astype(np.float64), (2, 2), (2, 2), (0, 0))
    np.testing.assert_array_equal(argmax, argmax_ref)
    np.testing.assert_array_equal(y, y_ref.astype(dtype))       # NaN where NaN
    np.testing.assert_array_equal(np.signbit(y), np.signbit(y_ref))


@pytest.mark.parametrize("kernel, stride", [((2, 2), (2, 2)), ((3, 3), (1, 1))])
def test_max_pool_nan_wins_like_pytorch(kernel, stride):
    # a NaN is the maximum; of two NaNs in a window the last one wins (PyTorch's CPU rule)
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 1, 0] = np.nan
    y, argmax = fast.max_pool2d_forward(x, kernel, stride, (0, 0))
    y_ref, argmax_ref = ref.max_pool2d_forward(x, kernel, stride, (0, 0))
    np.testing.assert_array_equal(argmax, argmax_ref)
    assert argmax[0, 0, 0, 0] == 4 and np.isnan(y[0, 0, 0, 0])
    np.testing.assert_array_equal(y, y_ref)


def test_lecture_example_and_dispatch():
    """The lecture's 3x3 input 0..8 with the 2x2 kernel 0..3 gives [[19, 25], [37, 43]], and
    kernels.use('numba') routes NumPy float arrays here."""
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    w = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    with kernels.use("numba"):
        assert kernels.choose("conv2d_forward", x) is fast.conv2d_forward
        y = kernels.conv2d_forward(x, w, (1, 1), (0, 0), (1, 1), 1)[0]
    np.testing.assert_array_equal(y[0, 0], [[19, 25], [37, 43]])
    assert y.dtype == np.float32


def test_gradcheck_through_conv_and_pool_with_numba():
    import tinynet as tn
    import tinynet.functional as F
    rng = np.random.default_rng(4)
    x = tn.tensor(rng.standard_normal((2, 2, 6, 6)), requires_grad=True)
    w = tn.tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    b = tn.tensor(rng.standard_normal(3), requires_grad=True)
    with kernels.use("numba"):
        tn.gradcheck(lambda x, w, b: F.avg_pool2d(
            F.conv2d(x, w, b, stride=1, padding=1), 2), x, w, b)


def test_saved_col_gives_the_same_weight_gradient(monkeypatch):
    """conv2d_forward(save=True) returns the col it built; conv2d_backward_weight(saved=col)
    gives the reference dL/dW without a second im2col.  Without save, or when the batch
    ran in slices, nothing is returned to keep."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    gy = rng.standard_normal((2, 4, 6, 6))
    expected = ref.conv2d_backward_weight(gy, x, w.shape, *geometry)
    y, col = fast.conv2d_forward(x, w, *geometry, save=True)
    assert col.shape == (3 * 9, 2, 36)
    assert_close(y, ref.conv2d_forward(x, w, *geometry)[0], np.float64)
    assert_close(fast.conv2d_backward_weight(gy, x, w.shape, *geometry, saved=col), expected,
                 np.float64)
    assert fast.conv2d_forward(x, w, *geometry)[1] is None
    monkeypatch.setattr(geometry_module, "MAX_COL_BYTES", 27 * 36 * 8)    # one example's col
    assert fast.conv2d_forward(x, w, *geometry, save=True)[1] is None
    assert_close(fast.conv2d_backward_weight(gy, x, w.shape, *geometry), expected, np.float64)


@pytest.mark.parametrize("sliced", [False, True])
@pytest.mark.parametrize("groups, need", [(1, (True, True)), (2, (True, True)),
                                          (1, (False, True)), (1, (True, False))])
def test_conv2d_backward_swaps_once_and_equals_the_two_functions(monkeypatch, sliced, groups,
                                                                 need):
    """conv2d_backward shares one rearranged dL/dy between dL/dx and dL/dW; the results are
    bitwise those of conv2d_backward_input and conv2d_backward_weight called apart, and
    with the batch too large for one col slice it falls back to them."""
    if sliced:
        monkeypatch.setattr(geometry_module, "MAX_COL_BYTES", 2 * 4 * 9 * 36 * 8)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 4, 6, 6))
    w = rng.standard_normal((6, 4 // groups, 3, 3))
    geometry = ((1, 1), (1, 1), (1, 1), groups)
    y, saved = fast.conv2d_forward(x, w, *geometry, save=True)
    assert (saved is None) == sliced
    grad_y = rng.standard_normal(y.shape)
    swaps = []
    real_swap = fast._swap
    monkeypatch.setattr(fast, "_swap", lambda *a, **k: swaps.append(1) or real_swap(*a, **k))
    grad_x, grad_w, _ = fast.conv2d_backward(grad_y, x, w, *geometry, saved, *need)
    together = len(swaps)
    apart_x = fast.conv2d_backward_input(grad_y, w, x.shape, *geometry)
    apart_w = fast.conv2d_backward_weight(grad_y, x, w.shape, *geometry, saved)
    assert (grad_x is None) != need[0] and (grad_w is None) != need[1]
    if need[0]:
        assert np.array_equal(grad_x, apart_x)
    if need[1]:
        assert np.array_equal(grad_w, apart_w)
    if all(need) and not sliced:
        assert together == 1, f"dL/dy swapped {together} times for both gradients"
    expected_x, expected_w, _ = kernels.conv2d_backward(grad_y, x, w, *geometry, saved, *need)
    for got, expected in [(grad_x, expected_x), (grad_w, expected_w)]:
        assert (got is None and expected is None) or np.array_equal(got, expected)


@pytest.mark.parametrize("shape, groups",
                         [((3, 2, 7, 6), 1), ((1, 4, 6, 5), 2), ((2, 3, 5, 5), 1)])
def test_per_example_products_equal_the_batched_product(monkeypatch, shape, groups):
    """conv2d_forward's two ways to multiply (one product plus a layout swap, or one
    product per example written straight into y, chosen by the measured rule
    _per_example_wins) give the same y; one example's dL/dy needs no swap."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((4, shape[1] // groups, 3, 3))
    geometry = ((1, 1), (1, 1), (1, 1), groups)
    results = {}
    for per_example in (False, True):
        monkeypatch.setattr(fast, "_per_example_wins", lambda m, k, p: per_example)
        results[per_example] = fast.conv2d_forward(x, w, *geometry)[0]
    expected = ref.conv2d_forward(x, w, *geometry)[0]
    for per_example, y in results.items():
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12,
                                   err_msg=f"per-example products: {per_example}")
    one = fast._to_onp(x[:1].reshape(1, shape[1], -1))
    assert one.shape == (shape[1], 1, shape[2] * shape[3]) and np.shares_memory(one, x)
    several = fast._to_onp(x.reshape(shape[0], shape[1], -1))
    assert np.array_equal(several, x.reshape(shape[0], shape[1], -1).transpose(1, 0, 2))


@pytest.mark.parametrize("sliced", [False, True])
@pytest.mark.parametrize("shape, groups",
                         [((3, 2, 7, 6), 1), ((4, 4, 6, 5), 2), ((2, 3, 5, 5), 1)])
def test_per_example_backward_products_equal_the_reference(monkeypatch, shape, groups,
                                                            sliced):
    """The backward's two ways to multiply (dL/dy swapped for one large product, or one
    product per example reading dL/dy in place) both give the reference dL/dx and dL/dW,
    in one batch slice or several.  A gradient wanted alone takes the per-example way
    where the rule says so, with no swap; both gradients together share one swap."""
    if sliced:
        monkeypatch.setattr(geometry_module, "MAX_COL_BYTES", 2 * shape[1] * 9 * 42 * 8)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((4, shape[1] // groups, 3, 3))
    geometry = ((1, 1), (1, 1), (1, 1), groups)
    grad_y = rng.standard_normal(ref.conv2d_forward(x, w, *geometry)[0].shape)
    expected = (ref.conv2d_backward_input(grad_y, w, x.shape, *geometry),
                ref.conv2d_backward_weight(grad_y, x, w.shape, *geometry))
    real_swap = fast._swap
    swaps = []
    monkeypatch.setattr(fast, "_swap", lambda *a, **k: swaps.append(1) or real_swap(*a, **k))
    for per_example in (False, True):
        monkeypatch.setattr(fast, "_per_example_wins", lambda m, k, p: per_example)
        _, saved = fast.conv2d_forward(x, w, *geometry, save=True)
        for need in [(True, False), (False, True), (True, True)]:
            swaps.clear()
            got = fast.conv2d_backward(grad_y, x, w, *geometry, saved, *need)
            for wanted, g, want in zip(need, got, expected):
                assert (g is None) != wanted
                if wanted:
                    np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12,
                                               err_msg=f"per example {per_example}, {need}")
            if per_example and not all(need):
                assert not swaps, f"dL/dy swapped for {need} per example"
            if not per_example and not sliced:
                assert len(swaps) == 1, f"{len(swaps)} swaps for {need}"
