"""kernels/simd.py: eight numbers as one value, against NumPy slicing; bad operands are
typing errors, not wrong answers."""
import numpy as np
import pytest

pytest.importorskip("numba")
from numba.core.errors import TypingError  # noqa: E402

from tinynet.kernels import simd  # noqa: E402
from tinynet.kernels.jit import njit  # noqa: E402


@njit
def _every_operation(a, b, out, i, j):
    """out[0:8] = a[i:i+8] + even(b[j:j+16]) - (-odd(b[j:j+16])); out[8:24] = a[i:i+8] and
    2.5 interleaved; out[24:32] = a[i:i+8] - 1."""
    va = simd.load(a, i)
    even, odd = simd.load_even_odd(b, j)
    simd.store(out, 0, va + even - (-odd))
    simd.store_even_odd(out, 8, va, simd.splat(2.5, va))
    simd.store(out, 24, va - simd.splat(1, va))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("i, j", [(0, 0), (1, 3), (5, 7)])
def test_each_operation_against_numpy(dtype, i, j, rng):
    a = rng.standard_normal(20).astype(dtype)
    b = rng.standard_normal(40).astype(dtype)
    out = np.full(40, np.nan, dtype)
    _every_operation(a, b, out, i, j)
    want = np.full(40, np.nan, dtype)
    want[:8] = a[i:i + 8] + b[j:j + 16:2] - (-b[j + 1:j + 17:2])
    want[8:24:2], want[9:24:2] = a[i:i + 8], 2.5
    want[24:32] = a[i:i + 8] - 1
    np.testing.assert_array_equal(out, want)           # lane by lane: NumPy's rounding too
    assert out.dtype == dtype


def test_rows_of_a_strided_array(rng):
    """Rows of a 2-D view (its last axis contiguous) are valid operands; nothing else in the
    array changes."""
    grid = rng.standard_normal((4, 40)).astype(np.float32)
    view = grid[1:, 3:]                            # rows of 37
    before = grid.copy()
    _every_operation(view[0], view[1], view[2], 2, 4)
    want = before.copy()
    a, b, out = before[1, 3:], before[2, 3:], want[3, 3:]
    out[:8] = a[2:10] + b[4:20:2] + b[5:21:2]
    out[8:24:2], out[9:24:2] = a[2:10], 2.5
    out[24:32] = a[2:10] - 1
    np.testing.assert_array_equal(grid, want)


@njit
def _add_mixed(a, b):
    return simd.load(a, 0) + simd.load(b, 0)


@njit
def _load_from_2d(a):
    return simd.load(a, 0)


def test_mixed_element_types_and_2d_arrays_do_not_compile():
    with pytest.raises(TypingError):
        _add_mixed(np.zeros(8, np.float32), np.zeros(8, np.float64))
    with pytest.raises(TypingError):
        _load_from_2d(np.zeros((2, 8), np.float32))


@njit
def _widened_sum(a):
    return simd.lane_sum(simd.widen(simd.load(a, 0)) + simd.widen(simd.load(a, 8)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_widen_and_lane_sum_in_lane_order(dtype, rng):
    a = (rng.standard_normal(16) * 10.0 ** rng.integers(-8, 8, 16)).astype(dtype)
    pairs = a[:8].astype(np.float64) + a[8:].astype(np.float64)
    want = pairs[0]
    for value in pairs[1:]:                        # lane 0 first, then one lane at a time
        want += value
    got = _widened_sum(a)
    assert isinstance(got, float) and got == want


@njit
def _fourths(a, out, i):
    p0, p1, p2, p3 = simd.load_fourths(a, i)
    simd.store(out, 0, p3)
    simd.store(out, 8, p2 - p1)
    simd.store(out, 16, p0 * p1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_load_fourths_and_multiply_against_numpy(dtype, rng):
    a = rng.standard_normal(40).astype(dtype)
    out = np.full(40, np.nan, dtype)
    _fourths(a, out, 3)
    want = np.full(40, np.nan, dtype)
    p = [a[3 + k:35:4] for k in range(4)]
    want[:8], want[8:16], want[16:24] = p[3], p[2] - p[1], p[0] * p[1]
    np.testing.assert_array_equal(out, want)


@njit
def _halves(a, i, b, j, out_a, k, out_b, q):
    """load_even_odd_halves of a[i:i+8], b[j:j+8]; stored back, doubled, by
    store_even_odd_halves into out_a[k:k+8], out_b[q:q+8]; the two loaded vectors returned
    in lanes as out_a[16:24], out_a[24:32]."""
    even, odd = simd.load_even_odd_halves(a, i, b, j)
    simd.store(out_a, 16, even)
    simd.store(out_a, 24, odd)
    simd.store_even_odd_halves(out_a, k, out_b, q, even + even, odd + odd)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_halves_two_rows_of_four_pairs(dtype, rng):
    """Lanes 0-3 come from (and go back to) the first row, lanes 4-7 the second: even and
    odd elements of each."""
    a, b = rng.standard_normal(12).astype(dtype), rng.standard_normal(12).astype(dtype)
    out_a, out_b = np.full(32, np.nan, dtype), np.full(12, np.nan, dtype)
    _halves(a, 3, b, 1, out_a, 2, out_b, 4)
    want_a, want_b = np.full(32, np.nan, dtype), np.full(12, np.nan, dtype)
    want_a[16:20], want_a[20:24] = a[3:11:2], b[1:9:2]         # even: a's, then b's
    want_a[24:28], want_a[28:32] = a[4:12:2], b[2:10:2]        # odd
    want_a[2:10], want_b[4:12] = 2 * a[3:11], 2 * b[1:9]       # interleaved back
    np.testing.assert_array_equal(out_a, want_a)
    np.testing.assert_array_equal(out_b, want_b)


@njit
def _fourths_round_trip(row, i, out, j):
    a, b, c, d = simd.load_fourths(row, i)
    simd.store_fourths(out, j, a, b, c, d)
    simd.store(out, j + 32, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_store_fourths_interleaves_four_vectors(dtype, rng):
    """store_fourths puts back what load_fourths dealt: a0 b0 c0 d0 a1 ..."""
    row = rng.standard_normal(40).astype(dtype)
    out = np.full(48, np.nan, dtype)
    _fourths_round_trip(row, 5, out, 3)
    want = np.full(48, np.nan, dtype)
    want[3:35] = row[5:37]
    want[35:43] = row[7:37:4]                   # the third vector: row[i + 2], row[i + 6], ...
    np.testing.assert_array_equal(out, want)
