"""Winograd F(2x2, 3x3) (kernels/winograd.py) against the reference loops: forward, dL/dx
and dL/dW on random shapes (odd and even sizes, padding 0-2) in float64 and float32, the
float32 error against im2col's, the 1-D F(2, 3) worked by hand, and the dispatch."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
import tinynet.functional as F
from tinynet import kernels
from tinynet.kernels import reference

pytest.importorskip("numba")
from tinynet.kernels import cpu_numba, products, winograd, winograd_weight  # noqa: E402
from tinynet.kernels import winograd_tiles  # noqa: E402

GEOMETRY = ((1, 1), None, (1, 1), 1)    # stride, padding (per case), dilation, groups

CASES = [  # N, C, H, W, O, (PH, PW)
    (2, 3, 5, 6, 4, (1, 1)), (1, 2, 7, 7, 3, (0, 0)), (2, 4, 6, 5, 3, (2, 1)),
    (3, 5, 8, 8, 6, (1, 1)), (1, 1, 3, 3, 1, (0, 0)), (2, 6, 4, 9, 2, (0, 2)),
    (1, 3, 1, 2, 2, (1, 2)),
    # rows of eight tiles and more: the transforms' simd path, with one-by-one tiles left over
    (2, 2, 9, 37, 3, (1, 1)), (1, 3, 6, 17, 2, (0, 0)), (1, 2, 5, 34, 4, (2, 1)),
    # rows of fewer than eight tiles with eight channels or more: V channels last
    (2, 9, 5, 7, 10, (1, 1)), (1, 16, 8, 8, 8, (0, 0)), (2, 8, 7, 12, 11, (2, 1))]


def problem(case, dtype, rng):
    n, c, h, w, o, padding = case
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((o, c, 3, 3))
    y_shape = reference.conv2d_forward(x, weight, (1, 1), padding, (1, 1), 1)[0].shape
    grad_y = rng.standard_normal(y_shape)
    return [a.astype(dtype) for a in (x, weight, grad_y)], padding


def three_products(module, x, weight, grad_y, padding):
    geometry = ((1, 1), padding, (1, 1), 1)
    return (module.conv2d_forward(x, weight, *geometry)[0],
            module.conv2d_backward_input(grad_y, weight, x.shape, *geometry),
            module.conv2d_backward_weight(grad_y, x, weight.shape, *geometry))


@pytest.mark.parametrize("case", CASES)
def test_winograd_matches_reference_float64(case, rng):
    (x, weight, grad_y), padding = problem(case, np.float64, rng)
    assert winograd.applies(x.shape, weight.shape, (1, 1), padding, (1, 1), 1)
    for got, want in zip(three_products(winograd, x, weight, grad_y, padding),
                         three_products(reference, x, weight, grad_y, padding)):
        assert got.shape == want.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("case", CASES)
def test_weight_gradient_with_v_channels_last_matches_reference(case, rng, monkeypatch):
    """dL/dW with V stored (16, B, C) (winograd_weight.channels_last, made true here): the
    reference's dL/dW and dL/db (float64, odd sizes, padding 0-2)."""
    (x, weight, grad_y), padding = problem(case, np.float64, rng)
    monkeypatch.setattr(winograd_weight, "channels_last", lambda c, tw: True)
    geometry = ((1, 1), padding, (1, 1), 1)
    _, grad_w, grad_b = winograd.conv2d_backward(grad_y, x, weight, *geometry, need_x=False,
                                                 need_b=True)
    want = reference.conv2d_backward_weight(grad_y, x, weight.shape, *geometry)
    np.testing.assert_allclose(grad_w, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    np.testing.assert_allclose(grad_b, grad_y.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES + [  # eight channels at a time, and the rest
    (2, 13, 7, 20, 2, (1, 1)), (1, 16, 5, 9, 2, (0, 1)), (1, 8, 6, 17, 1, (2, 2))])
def test_channels_last_input_transform_is_the_input_transform_transposed(case, rng):
    """_input_tiles_channels_last writes V[k, t, c] = _input_tiles' V[k, c, t], bitwise, for
    blocks of tile rows that start inside an example, span several, or hold one row."""
    (x, _, _), padding = problem(case, np.float32, rng)
    _, _, th, tw = winograd._tiles(x.shape, padding)
    rows = x.shape[0] * th
    for r0, r1 in [(0, rows), (0, 1), (rows - 1, rows), (th // 2, min(rows, th + 1))]:
        if r1 <= r0:
            continue
        size = (r1 - r0) * tw
        v = np.full((16, x.shape[1], size), np.nan, np.float32)
        v_last = np.full((16, size, x.shape[1]), np.nan, np.float32)
        winograd_tiles._input_tiles(x, *padding, th, tw, r0, r1, v)
        winograd_tiles._input_tiles_channels_last(x, *padding, th, tw, r0, r1, v_last)
        np.testing.assert_array_equal(v_last, v.transpose(0, 2, 1))


@pytest.mark.parametrize("c, size, blas_kernels, channels_last", [
    (16, 16, "SkylakeX", False), (32, 16, "SkylakeX", True), (32, 16, "Cooperlake", True),
    (64, 16, "SkylakeX", False), (32, 16, "Haswell", False), (32, 16, None, False),
    (8, 14, "Haswell", True), (64, 8, None, True), (7, 8, "SkylakeX", False)])
def test_dw_stores_v_channels_last_where_measured_faster(c, size, blas_kernels, channels_last,
                                                         rng, monkeypatch):
    """The layout rule (winograd_weight.channels_last): rows of fewer than eight tiles with at
    least eight channels (14x14 planes and smaller); and C = 32, there only with OpenBLAS's
    AVX-512 kernels (with its Haswell ones, or no OpenBLAS to name them, the planes layout)."""
    monkeypatch.setattr(winograd_weight.numba_threads, "openblas_kernels", lambda: blas_kernels)
    calls = []
    kernel = winograd_tiles._input_tiles_channels_last
    monkeypatch.setattr(winograd_tiles, "_input_tiles_channels_last",
                        lambda *args: calls.append(1) or kernel(*args))
    x = rng.standard_normal((2, c, size, size)).astype(np.float32)
    grad_y = rng.standard_normal((2, 8, size, size)).astype(np.float32)
    winograd.conv2d_backward_weight(grad_y, x, (8, c, 3, 3), (1, 1), (1, 1), (1, 1), 1)
    assert bool(calls) == channels_last


@pytest.mark.parametrize("case", CASES[:4] + [(4, 32, 16, 16, 16, (1, 1))])
def test_winograd_float32_error_is_near_im2col(case, rng, monkeypatch):
    """Both fast kernels in float32 against the float64 reference: the transforms add and
    subtract inputs, so Winograd's error may be a few times im2col's, never more than 4x
    (measured in float32 forward: 0.3x-1.7x, benchmarks/RESULTS.md).  im2col's products by
    NumPy's BLAS, as in test_winograd4.py."""
    (x, weight, grad_y), padding = problem(case, np.float64, rng)
    exact = three_products(reference, x, weight, grad_y, padding)
    f32 = [a.astype(np.float32) for a in (x, weight, grad_y)]
    with monkeypatch.context() as patch:
        patch.setattr(products, "KERNELS", False)
        im2col_products = three_products(cpu_numba, *f32, padding)
    for name, wino, im2col, want in zip(
            ["y", "dx", "dW"], three_products(winograd, *f32, padding),
            im2col_products, exact):
        assert wino.dtype == np.float32
        scale = np.abs(want).max()
        error_wino = np.abs(wino - want).max() / scale
        error_im2col = np.abs(im2col - want).max() / scale
        assert error_wino < max(4 * error_im2col, 1e-6), (name, error_wino, error_im2col)


def test_one_dimensional_f23_by_hand():
    """The docstring's worked example: 4 multiplications give the 2 outputs of a 3-tap
    correlation, y = A^T [(G g) * (B^T d)]."""
    d, g = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, -1.0, 0.5])
    y = winograd.A_T @ ((winograd.G @ g) * (winograd.B_T @ d))
    # by hand: y0 = 1*2 + 2*(-1) + 3*0.5 = 1.5, y1 = 2*2 + 3*(-1) + 4*0.5 = 3
    np.testing.assert_allclose(y, [1.5, 3.0])


@pytest.mark.parametrize("shape, kwargs", [
    ((2, 3, 6, 6), dict(stride=2, padding=1)), ((1, 4, 7, 7), dict(dilation=2, padding=2)),
    ((1, 4, 5, 5), dict(groups=2, padding=1)), ((1, 2, 5, 5), dict(padding=3))])
def test_use_winograd_leaves_other_convolutions_to_im2col(shape, kwargs, rng):
    """Under use('winograd') a convolution Winograd cannot compute still gives the right
    answer (the Numba im2col kernels run it)."""
    x = rng.standard_normal(shape)
    weight = rng.standard_normal((4, shape[1] // kwargs.get("groups", 1), 3, 3))
    results = []
    for setting in ("winograd", "reference"):
        with kernels.use(setting):
            xt, wt = tn.tensor(x, requires_grad=True), tn.tensor(weight, requires_grad=True)
            y = F.conv2d(xt, wt, **kwargs)
            y.backward(np.ones(y.shape))
            results.append((y.numpy(), xt.grad, wt.grad))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_dispatch_follows_the_setting(rng, monkeypatch):
    """'winograd' forces it, 'numba' and 'numpy' never pick it, 'auto' asks the rule."""
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    weight = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    args = ((1, 1), (1, 1), (1, 1), 1)
    pick = lambda: kernels.choose_conv("conv2d_forward", x, x.shape, weight.shape, *args)  # noqa
    with kernels.use("winograd"):
        assert pick() is winograd.conv2d_forward
    for setting in ("numba", "numpy", "reference"):
        with kernels.use(setting):
            assert pick() is not winograd.conv2d_forward
    for verdict in (True, False):
        monkeypatch.setattr(winograd, "faster", lambda *a, verdict=verdict: verdict)
        with kernels.use("auto"):
            assert (pick() is winograd.conv2d_forward) == verdict


def test_conv2d_gradcheck_under_winograd(rng):
    x, weight = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 3, 3))
    bias = rng.standard_normal(2)
    with kernels.use("winograd"):
        assert tn.gradcheck(lambda x, w, b: F.conv2d(x, w, b, padding=1), x, weight, bias)
        assert tn.gradcheck(lambda x, w: F.conv2d(x, w), x, weight)


def test_auto_rule_picks_winograd_for_wide_layers_with_enough_work():
    """The measured rule (winograd.faster, benchmarks/RESULTS.md): min(C, O) >= 16, at least
    32 tiles and products large enough (N OH OW min(C, O) >= 2^13), single photos
    included; not a first layer (C = 3 or 8), not one 7x7 plane, not too little work; any
    batch size (the blocks bound the memory)."""
    args = ((1, 1), (1, 1), (1, 1), 1)
    x = np.zeros((1, 1, 1, 1), np.float32)         # only its type and dtype are read
    cases = [((64, 64, 16, 16), (128, 64, 3, 3), True), ((1, 256, 56, 56), (256, 256, 3, 3), True),
             ((1, 512, 28, 28), (512, 512, 3, 3), True),      # 784 x 512: VGG's conv 4
             ((64, 32, 32, 32), (64, 32, 3, 3), True), ((16, 64, 16, 16), (32, 64, 3, 3), True),
             ((4, 32, 32, 32), (64, 32, 3, 3), True), ((64, 16, 32, 32), (16, 16, 3, 3), True),
             ((256, 64, 56, 56), (64, 64, 3, 3), True),       # 13 GB of V and M, unblocked
             ((2, 32, 32, 32), (64, 32, 3, 3), True), ((1, 32, 112, 112), (64, 32, 3, 3), True),
             ((1, 64, 14, 14), (128, 64, 3, 3), True),        # 196 x 64: one photo, 14x14
             ((1, 64, 32, 32), (64, 64, 3, 3), True), ((4, 32, 8, 8), (32, 32, 3, 3), True),
             ((64, 3, 64, 64), (32, 3, 3, 3), False), ((64, 8, 32, 32), (8, 8, 3, 3), False),
             ((8, 512, 7, 7), (512, 512, 3, 3), True),        # 7x7 planes, a batch
             ((1, 512, 7, 7), (512, 512, 3, 3), False),       # one: 16 tiles
             ((1, 32, 14, 14), (64, 32, 3, 3), False),        # 196 x 32: too little work
             ((1, 64, 8, 8), (64, 64, 3, 3), False), ((1, 16, 16, 16), (16, 16, 3, 3), False)]
    from tinynet.kernels import winograd4, winograd42     # F(4x4), F(4x2) by their rules
    with kernels.use("auto"):
        for x_shape, w_shape, expected in cases:
            for name in ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"):
                chosen = kernels.choose_conv(name, x, x_shape, w_shape, *args)
                winograds = (getattr(winograd, name), getattr(winograd4, name, None),
                             getattr(winograd42, name))
                assert (chosen in winograds) == expected, (x_shape, w_shape, name)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("tiles, threads", [(1, 2), (3, 2), (5, 3), (7, 1), (10 ** 6, 2)])
def test_blocks_of_any_size_give_the_reference(tiles, threads, channels_last, rng,
                                               monkeypatch):
    """The tiles go through the transforms and products a block of tile rows at a time, the
    blocks shared among the kernel threads: blocks that end inside an example or hold
    several, a last block shorter than the others, more threads than blocks, and one block
    for everything all give the reference's three products (float64, odd and even sizes),
    with dL/dW's V in either layout."""
    monkeypatch.setattr(winograd, "TILES_PER_BLOCK", tiles)
    monkeypatch.setattr(winograd_weight, "TILES_PER_WEIGHT_BLOCK", tiles)
    monkeypatch.setattr(winograd_weight, "TILES_PER_CHANNELS_LAST_BLOCK", tiles)
    monkeypatch.setattr(winograd.numba_threads, "THREADS", threads)
    for case in [(3, 4, 9, 8, 5, (1, 1)), (2, 3, 7, 11, 2, (0, 2)), (5, 2, 4, 4, 3, (2, 0))]:
        (x, weight, grad_y), padding = problem(case, np.float64, rng)
        monkeypatch.setattr(winograd_weight, "channels_last", lambda c, tw: channels_last)
        for got, want in zip(three_products(winograd, x, weight, grad_y, padding),
                             three_products(reference, x, weight, grad_y, padding)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_blocks_cover_every_tile_row_once_and_feed_every_thread(monkeypatch):
    monkeypatch.setattr(winograd.numba_threads, "THREADS", 2)
    for n, th, tw, tiles in [(64, 16, 16, 256), (64, 4, 4, 1024), (1, 3, 5, 1), (3, 2, 2, 7),
                              (1, 28, 28, 256), (5, 7, 3, 20)]:
        blocks = winograd._blocks(n, th, tw, tiles)
        rows = [r for r0, r1 in blocks for r in range(r0, r1)]
        assert rows == list(range(n * th))
        assert len(blocks) >= min(2, n * th)
        assert all((r1 - r0) * tw <= max(tiles, tw) for r0, r1 in blocks)
        sizes = [r1 - r0 for r0, r1 in blocks]
        assert max(sizes) - min(sizes) <= 1, f"uneven blocks {sizes}"
        assert len(blocks) % 2 == 0 or len(blocks) == n * th, f"{len(blocks)} blocks, 2 threads"


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 70), th=st.integers(1, 40), tw=st.integers(1, 130),
       tiles=st.integers(1, 2048), threads=st.integers(1, 4))
def test_blocks_are_even_for_any_geometry(n, th, tw, tiles, threads):
    """The same properties for any batch, plane and thread count: every tile row once, in
    order; at most max(tiles, TW) tiles a block; sizes within one row of each other; a
    whole number of blocks per thread unless there are fewer rows than that."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(winograd.numba_threads, "THREADS", threads)
        blocks = winograd._blocks(n, th, tw, tiles)
    rows = n * th
    assert [r for r0, r1 in blocks for r in range(r0, r1)] == list(range(rows))
    sizes = [r1 - r0 for r0, r1 in blocks]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1, sizes
    assert max(sizes) * tw <= max(tiles, tw), (sizes, tiles)
    assert len(blocks) % threads == 0 or len(blocks) == rows, (len(blocks), threads)


def test_flipped_kernel_transform_is_a_permutation_of_u(rng):
    """dL/dx's kernel w[o, c, 2 - u, 2 - v] (channel axes swapped) has the transform
    U[_FLIPPED].transpose(0, 2, 1): no second kernel transform is needed."""
    weight = rng.standard_normal((3, 2, 3, 3))
    flipped = np.ascontiguousarray(weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    want = winograd.kernel_transform(flipped).copy()      # the same sums, in another order
    got = winograd.kernel_transform(weight)[winograd._FLIPPED].transpose(0, 2, 1)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)


def test_forward_keeps_u_and_dx_from_it_is_the_same(rng):
    """With ``save`` the forward hands back its kernel transform U (as im2col hands back
    col), and conv2d_backward computes dL/dx from it: the same result as transforming the
    kernel again."""
    x, weight = rng.standard_normal((3, 5, 9, 8)), rng.standard_normal((4, 5, 3, 3))
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    y, saved = winograd.conv2d_forward(x, weight, *geometry, save=True)
    assert saved.shape == (16, 4, 5)                      # (16, O, C)
    np.testing.assert_array_equal(saved, winograd.kernel_transform(weight))
    assert winograd.conv2d_forward(x, weight, *geometry)[1] is None
    grad_y = rng.standard_normal(y.shape)
    from_saved = winograd.conv2d_backward(grad_y, x, weight, *geometry, saved=saved)
    again = winograd.conv2d_backward(grad_y, x, weight, *geometry)
    for got, want in zip(from_saved, again):
        np.testing.assert_array_equal(got, want)
    # and it is U that dL/dx is read from: another kernel's U gives that kernel's dL/dx
    other = rng.standard_normal(weight.shape)
    other_u = winograd.conv2d_forward(x, other, *geometry, save=True)[1]
    np.testing.assert_array_equal(
        winograd.conv2d_backward(grad_y, x, weight, *geometry, saved=other_u, need_w=False)[0],
        winograd.conv2d_backward_input(grad_y, other, x.shape, *geometry))


def test_the_output_transform_adds_the_bias(rng, monkeypatch):
    """With a bias, kernels.conv2d_forward hands it to Winograd (ADDS_BIAS), whose output
    transform adds it: the same y as the convolution plus b, and no separate pass."""
    x, weight = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((5, 4, 3, 3))
    bias = rng.standard_normal(5)
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    want = winograd.conv2d_forward(x, weight, *geometry)[0] + bias.reshape(1, -1, 1, 1)
    np.testing.assert_allclose(winograd.conv2d_forward(x, weight, *geometry, bias=bias)[0],
                               want, rtol=1e-13, atol=1e-13)
    passes = []
    monkeypatch.setattr(kernels, "add_bias", lambda *a: passes.append(a))
    with kernels.use("winograd"):
        y, _ = kernels.conv2d_forward(x, weight, *geometry, bias=bias)
    np.testing.assert_allclose(y, want, rtol=1e-13, atol=1e-13)
    assert passes == []
    with kernels.use("numba"):                   # im2col: the bias is a pass of its own
        kernels.conv2d_forward(x, weight, *geometry, bias=bias)
    assert len(passes) == 1


def test_kernel_transform_is_g_w_gt(rng):
    """U[4a + b, o, c] = (G w[o, c] G^T)[a, b], the definition, in float64."""
    weight = rng.standard_normal((3, 2, 3, 3))
    u = winograd.kernel_transform(weight)
    want = np.einsum("au,ocuv,bv->aboc", winograd.G, weight, winograd.G).reshape(16, 3, 2)
    np.testing.assert_allclose(u, want, rtol=1e-14, atol=1e-14)


def test_slabs_are_contiguous_and_staggered():
    """Each of the 16 slabs is one C-ordered block, and their starts differ modulo 4 KiB
    (same-set write streams made the transforms 2-3x slower)."""
    v = winograd._slabs(64, 256, np.float32)            # slabs of exactly 64 KiB
    assert v.shape == (16, 64, 256)
    starts = [v[k].ctypes.data for k in range(16)]
    assert all(v[k].flags.c_contiguous for k in range(16))
    assert len({s % 4096 for s in starts}) == 16
    assert all(b - a >= v[0].nbytes for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_auto_winograd_layer_matches_im2col(dtype, tolerance, rng, monkeypatch):
    """A layer the rule sends to Winograd, through F.conv2d with bias, forward and backward,
    against the same layer under 'numba' (im2col, itself tested against the reference)."""
    from tinynet.kernels import winograd42      # F(4x2), the backward on this plane
    calls = []
    for module in (winograd_weight, winograd42):
        monkeypatch.setattr(module, "weight_and_bias_grad",
                            lambda *a, original=module.weight_and_bias_grad, **k:
                            calls.append(a[-1]) or original(*a, **k))
    x = rng.standard_normal((2, 48, 40, 39)).astype(dtype)   # 2 x 40 x 39 x 48 > 2^17
    weight = (rng.standard_normal((50, 48, 3, 3)) / 20).astype(dtype)
    bias, grad = rng.standard_normal(50).astype(dtype), rng.standard_normal((2, 50, 40, 39))
    results = []
    for setting in ("auto", "numba"):
        with kernels.use(setting):
            xt, wt, bt = (tn.tensor(a, requires_grad=True) for a in (x, weight, bias))
            y = F.conv2d(xt, wt, bt, padding=1)
            y.backward(grad.astype(dtype))
            results.append((y.numpy(), xt.grad, wt.grad, bt.grad))
    assert len(calls) == 1            # Winograd's dL/dW (and dL/db) ran
    for got, want in zip(*results):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * np.abs(want).max())


@pytest.mark.parametrize("forward_setting, backward_setting",
                         [("winograd", "numba"), ("numba", "winograd"), ("winograd", "numpy"),
                          ("numba", "reference")])
def test_a_setting_changed_between_forward_and_backward_gives_the_right_gradients(
        forward_setting, backward_setting, rng):
    """What one module's forward saved for its dL/dW (Winograd's U, im2col's col) is not
    handed to another module's backward: with the setting switched between the passes the
    gradients are still the reference's (batch N = O, so that a misread U would fit)."""
    x = rng.standard_normal((4, 4, 6, 6))
    weight = rng.standard_normal((4, 4, 3, 3))
    grad_y = rng.standard_normal((4, 4, 6, 6))
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    want_x = reference.conv2d_backward_input(grad_y, weight, x.shape, *geometry)
    want_w = reference.conv2d_backward_weight(grad_y, x, weight.shape, *geometry)
    xt, wt = tn.tensor(x, requires_grad=True), tn.tensor(weight, requires_grad=True)
    with kernels.use(forward_setting):
        y = F.conv2d(xt, wt, padding=1)
    with kernels.use(backward_setting):
        y.backward(grad_y)
    np.testing.assert_allclose(xt.grad, want_x, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(wt.grad, want_w, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("tiles, threads", [(1, 1), (3, 2), (1024, 2)])
def test_bias_gradient_is_summed_in_the_weight_pass(tiles, threads, rng, monkeypatch):
    """dL/db comes out of dL/dW's pass (each dL/dy tile summed as it is transformed): the
    plain sum of dL/dy, for odd sizes, any block size and thread count; and F.conv2d with
    bias under Winograd makes no separate bias pass."""
    monkeypatch.setattr(winograd_weight, "TILES_PER_WEIGHT_BLOCK", tiles)
    monkeypatch.setattr(winograd.numba_threads, "THREADS", threads)
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    for width in (9, 37):        # 37: rows of 19 tiles, 16 of them eight at a time
        x, weight = rng.standard_normal((3, 4, 7, width)), rng.standard_normal((5, 4, 3, 3))
        grad_y = rng.standard_normal((3, 5, 7, width))
        grad_x, grad_w, grad_b = winograd.conv2d_backward(grad_y, x, weight, *geometry,
                                                          need_b=True)
        np.testing.assert_allclose(grad_b, grad_y.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            grad_w, reference.conv2d_backward_weight(grad_y, x, weight.shape, *geometry),
            rtol=1e-10, atol=1e-10)
    assert winograd.conv2d_backward(grad_y, x, weight, *geometry)[2] is None
    passes = []
    monkeypatch.setattr(kernels, "bias_grad", lambda *a: passes.append(a))
    xt, wt, bt = (tn.tensor(a, requires_grad=True)
                  for a in (x, weight, rng.standard_normal(5)))
    with kernels.use("winograd"):
        F.conv2d(xt, wt, bt, padding=1).backward(grad_y)
    assert passes == []
    np.testing.assert_allclose(bt.grad, grad_y.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)


def _bt_model(d0, d1, d2, d3):
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 45),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       tiles=st.integers(1, 300), dtype=st.sampled_from([np.float32, np.float64]))
def test_input_transform_is_bt_d_b_bitwise(n, h, w, padding, tiles, dtype):
    """_input_tiles (eight tiles at a time, the rest one by one) writes exactly B^T d B as
    NumPy computes it in the same order (per column, then per row), for any plane width and
    block, in float32 and float64."""
    if h + 2 * padding[0] < 3 or w + 2 * padding[1] < 3:
        return
    x = np.random.default_rng(h * 100 + w).standard_normal((n, 2, h, w)).astype(dtype)
    oh, ow, th, tw = winograd._tiles(x.shape, padding)
    x_pad = np.zeros((n, 2, 2 * th + 2, 2 * tw + 2), dtype)
    x_pad[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w] = x
    tile_rows = [x_pad[:, :, 2 * i:2 * i + 4] for i in range(th)]        # (n, 2, 4, W_pad)
    want = np.empty((16, 2, n * th * tw), dtype)
    for i, rows in enumerate(tile_rows):
        columns = np.stack([rows[..., 2 * j:2 * j + 4] for j in range(tw)], axis=2)
        by_column = _bt_model(*(columns[..., r, :] for r in range(4)))   # B^T d: rows a
        for a, row in enumerate(by_column):
            for k, value in enumerate(_bt_model(*(row[..., b] for b in range(4)))):
                cells = want[4 * a + k].reshape(2, n, th, tw)
                cells[:, :, i] = value.transpose(1, 0, 2)
    for r0, r1 in winograd._blocks(n, th, tw, tiles):
        v = winograd._slabs(2, (r1 - r0) * tw, dtype)
        winograd_tiles._input_tiles(x, *padding, th, tw, r0, r1, v)
        np.testing.assert_array_equal(v, want[:, :, r0 * tw:r1 * tw])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), oh=st.integers(1, 12), ow=st.integers(1, 45),
       tiles=st.integers(1, 300), dtype=st.sampled_from([np.float32, np.float64]))
def test_output_transform_eight_at_a_time_is_the_one_by_one_loop_bitwise(n, oh, ow, tiles,
                                                                         dtype):
    rng = np.random.default_rng(oh * 100 + ow)
    th, tw = -(-oh // 2), -(-ow // 2)
    bias = rng.standard_normal(3).astype(dtype)
    y_fast, y_one = np.full((2, n, 3, oh, ow), np.nan, dtype)
    for r0, r1 in winograd._blocks(n, th, tw, tiles):
        m = winograd._slabs(3, (r1 - r0) * tw, dtype)
        m[...] = rng.standard_normal(m.shape)
        winograd_tiles._output_tiles(m, th, tw, r0, r1, bias, y_fast)
        winograd_tiles._output_tiles_one_by_one(m, th, tw, r0, r1, bias, y_one)
    assert not np.isnan(y_one).any()               # every output written, nothing past y
    np.testing.assert_array_equal(y_fast, y_one)
