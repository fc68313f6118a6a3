"""kernels/products.py: the Winograd products as Numba kernels, against np.matmul in float64
over every shape (rows and columns the register blocks leave over, K not a multiple of the
sum's runs, strided operands), accumulating or not; and the choice between them and BLAS."""
import numpy as np
import pytest

pytest.importorskip("numba")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tinynet.kernels import jit, products, simd  # noqa: E402


def _tolerance(a, b):
    """float32: a sum of K products rounds to about K eps |a| |b|; float64 far below."""
    eps = np.finfo(a.dtype).eps
    return 4 * eps * a.shape[-1] * np.abs(a).max() * np.abs(b).max() + 1e-30


@settings(max_examples=60, deadline=None)
@given(slabs=st.integers(1, 3), m=st.integers(1, 13), k=st.integers(1, 70),
       n=st.integers(1, 80), dtype=st.sampled_from([np.float32, np.float64]),
       a_transposed=st.booleans(), accumulate=st.booleans(), seed=st.integers(0, 2**16))
def test_slab_products_equal_matmul(slabs, m, k, n, dtype, a_transposed, accumulate, seed):
    """out[s] = a[s] b[s] (+ out[s] before), for a read with any strides: a transposed view,
    as dL/dx's flipped kernel transform once was."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((slabs, m, k)).astype(dtype)
    if a_transposed:
        a = np.ascontiguousarray(a.transpose(0, 2, 1)).transpose(0, 2, 1)
    b = rng.standard_normal((slabs, k, n)).astype(dtype)
    before = rng.standard_normal((slabs, m, n)).astype(dtype)
    out = before.copy()
    products.slab_products(a, b, out, accumulate)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    if accumulate:
        want += before
    error = np.abs(out - want).max()
    tolerance = _tolerance(a, b) + (2 * np.finfo(dtype).eps * np.abs(before).max()
                                    if accumulate else 0)     # rounding the final sum
    assert error <= tolerance, (slabs, m, k, n, dtype, error, tolerance)
    assert out.dtype == dtype


@settings(max_examples=40, deadline=None)
@given(slabs=st.integers(1, 3), m=st.integers(1, 11), k=st.integers(1, 40),
       n=st.integers(1, 70), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_slab_products_transposed_equal_matmul(slabs, m, k, n, dtype, seed):
    """out[s] = a[s] b[s]^T, b given (N, K): the forward's products with V channels last."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((slabs, m, k)).astype(dtype)
    b = rng.standard_normal((slabs, n, k)).astype(dtype)
    out = np.full((slabs, m, n), np.nan, dtype)
    products.slab_products_transposed(a, b, out)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64).transpose(0, 2, 1))
    error = np.abs(out - want).max()
    assert error <= _tolerance(a, b), (slabs, m, k, n, dtype, error, _tolerance(a, b))


def test_every_output_is_written_and_nothing_else(rng):
    """Output slabs that are views into a larger buffer (winograd4's staggered slabs): the
    columns beyond them keep their values, every column within is written."""
    a = rng.standard_normal((2, 5, 9)).astype(np.float32)
    b = rng.standard_normal((2, 9, 37)).astype(np.float32)
    buffer = np.full((2, 5, 40), 7.0, np.float32)
    products.slab_products(a, b, buffer[:, :, :37])
    np.testing.assert_allclose(buffer[:, :, :37], a @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(buffer[:, :, 37:], 7.0)


def test_the_sum_runs_keep_float32_error_below_one_long_chain(rng):
    """The sum over k in runs of CHAIN: at K = 4096 (a dL/dW block of many tiles) its float32
    error must be well below that of one sequential chain of additions, which grows with
    K.  Averaged over the outputs, against float64."""
    k = 4096
    a = rng.standard_normal((1, 4, k)).astype(np.float32) + 1      # a mean: a growing sum
    b = rng.standard_normal((1, k, 32)).astype(np.float32) + 1
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64))
    out = np.empty((1, 4, 32), np.float32)
    products.slab_products(a, b, out)
    chain = np.zeros((4, 32), np.float32)                # one chain: k = 0, 1, ..., K - 1
    for i in range(k):
        chain += np.outer(a[0, :, i], b[0, i])
    error_runs = np.abs(out[0] - exact[0]).mean()
    error_chain = np.abs(chain - exact[0]).mean()
    assert error_runs < 0.25 * error_chain, (error_runs, error_chain)


@pytest.mark.parametrize("kernels", [True, False])
def test_multiply_gives_the_product_either_way(kernels, rng, monkeypatch):
    """The dispatch: the Numba kernels or np.matmul, the same products."""
    monkeypatch.setattr(products, "KERNELS", kernels)
    a = rng.standard_normal((3, 6, 10))
    b = rng.standard_normal((3, 10, 21))
    out = np.ones((3, 6, 21))
    products.multiply(a, b, out, accumulate=True)
    np.testing.assert_allclose(out, 1 + a @ b, rtol=1e-12, atol=1e-12)
    bt = rng.standard_normal((3, 21, 10))
    products.multiply_transposed(a, bt, out)
    np.testing.assert_allclose(out, a @ bt.transpose(0, 2, 1), rtol=1e-12, atol=1e-12)
    products.multiply_transposed(a, bt, out, accumulate=True)
    np.testing.assert_allclose(out, 2 * a @ bt.transpose(0, 2, 1), rtol=1e-12, atol=1e-12)


def test_the_kernels_run_only_where_they_are_the_faster(monkeypatch):
    """Compiled for AVX-512 and OpenBLAS on a narrower kernel set: the kernels; OpenBLAS's
    own AVX-512 kernels, AVX2-only code, or a BLAS that is not OpenBLAS: np.matmul."""
    from tinynet.kernels import numba_threads
    cases = [(64, "Haswell", True), (64, "SkylakeX", False), (32, "Haswell", False),
             (64, None, False), (64, "Zen", True)]
    for register_bytes, kernel_set, want in cases:
        monkeypatch.setattr(simd, "REGISTER_BYTES", register_bytes)
        monkeypatch.setattr(numba_threads, "openblas_kernels", lambda: kernel_set)
        assert products._kernels_faster() == want, (register_bytes, kernel_set)


def test_register_width_from_the_features_numba_compiles_for():
    """64 bytes where NUMBA_CPU_FEATURES has +avx512f, 32 where it has -avx512f or a portable
    CPU name is set: the vectors' width follows what the code is compiled for."""
    assert jit.vector_register_bytes({"NUMBA_CPU_FEATURES": "+avx2,+avx512f,+fma"}) == 64
    assert jit.vector_register_bytes({"NUMBA_CPU_FEATURES": "+avx2,-avx512f,+fma"}) == 32
    assert jit.vector_register_bytes({"NUMBA_CPU_NAME": "generic"}) == 32
    assert jit.vector_register_bytes({}) in (32, 64)        # the host's own


def test_wide_vectors_fill_one_register():
    """simd.wide_lanes: 16 float32 or 8 float64 with AVX-512's 64-byte registers."""
    from tinynet.kernels.jit import njit

    @njit
    def lanes(row):
        return simd.wide_lanes(row)
    assert lanes(np.zeros(4, np.float32)) == simd.REGISTER_BYTES // 4
    assert lanes(np.zeros(4, np.float64)) == simd.REGISTER_BYTES // 8


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("c, size", [(8, 16), (9, 8), (16, 6)])   # V plain; channels last
def test_every_winograd_direction_is_right_with_either_products(kernels, c, size, rng,
                                                                 monkeypatch):
    """F(2x2), F(4x4) and F(4x2) (forward, dL/dx, dL/dW with dL/db), float64, against the
    reference loops, with products.py's kernels and with np.matmul: the machine the suite
    runs on takes only one of the two in its convolutions, and F(4x2)'s dL/dW lays V out
    differently for each."""
    from tinynet.kernels import reference, winograd, winograd4, winograd42
    monkeypatch.setattr(products, "KERNELS", kernels)
    geometry = ((1, 1), (1, 1), (1, 1), 1)
    x = rng.standard_normal((2, c, size, size))
    weight = rng.standard_normal((5, c, 3, 3))
    grad_y = rng.standard_normal((2, 5, size, size))
    want_y = reference.conv2d_forward(x, weight, *geometry)[0]
    want_x = reference.conv2d_backward_input(grad_y, weight, x.shape, *geometry)
    want_w = reference.conv2d_backward_weight(grad_y, x, weight.shape, *geometry)

    def close(got, want):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    for module in (winograd, winograd4, winograd42):
        close(module.conv2d_forward(x, weight, *geometry)[0], want_y)
    for module in (winograd, winograd42):
        grad_x, grad_w, grad_b = module.conv2d_backward(grad_y, x, weight, *geometry, None,
                                                        True, True, True)
        close(grad_x, want_x)
        close(grad_w, want_w)
        close(grad_b, grad_y.sum(axis=(0, 2, 3)))


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("x_shape, w_shape, stride, padding, groups", [
    ((1, 6, 31, 33), (4, 6, 1, 1), (1, 1), (0, 0), 1),     # one example, P = 1023 columns
    ((3, 3, 64, 64), (5, 3, 3, 3), (2, 2), (1, 1), 1),     # a first layer at stride 2
    ((1, 8, 20, 20), (6, 4, 3, 3), (1, 1), (1, 1), 2),     # groups
    ((4, 16, 15, 15), (8, 16, 3, 3), (2, 2), (1, 1), 1),   # one product for the batch
    ((5, 8, 16, 16), (6, 8, 3, 3), (1, 1), (1, 1), 1),     # dL/dW: 1280 pixels, 5 chunks
    ((3, 8, 12, 12), (6, 4, 3, 3), (1, 1), (1, 1), 2)])    # ... per group
def test_im2col_products_are_right_either_way(kernels, x_shape, w_shape, stride, padding,
                                              groups, rng, monkeypatch):
    """cpu_numba's products (per example: one example, or a first layer's small K; else one
    per group for the batch) through products.py's kernels, the columns (dL/dW: the
    pixels) split over the threads, or through np.matmul: the reference loops' y, dL/dx
    and dL/dW."""
    from tinynet.kernels import cpu_numba, reference
    monkeypatch.setattr(products, "KERNELS", kernels)
    x, weight = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    geometry = (stride, padding, (1, 1), groups)
    got = cpu_numba.conv2d_forward(x, weight, *geometry)[0]
    want = reference.conv2d_forward(x, weight, *geometry)[0]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    grad_y = rng.standard_normal(want.shape)
    got = cpu_numba.conv2d_backward_input(grad_y, weight, x.shape, *geometry)
    want = reference.conv2d_backward_input(grad_y, weight, x.shape, *geometry)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    got = cpu_numba.conv2d_backward_weight(grad_y, x, weight.shape, *geometry)
    want = reference.conv2d_backward_weight(grad_y, x, weight.shape, *geometry)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
