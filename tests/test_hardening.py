"""PyTorch's rules where tinynet once silently differed (issue 12): scalar dtype promotion,
Python conversions and elementwise comparisons, the version counter behind in-place changes,
and ``__setitem__``."""
import operator

import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F

# ---- a scalar never promotes a tensor's float dtype ---------------------------------------

SCALARS = [2, 2.5, True, np.int64(4), np.int32(3), np.float64(2.5), np.float16(1.5),
           np.array(2.0), np.array(3), np.array([2, 3, 4])]
BINARY_OPS = [operator.add, operator.sub, operator.mul, operator.truediv, F.maximum,
              lambda a, b: F.where(np.array([True, False, True]), a, b)]
COMPARISONS = [operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne]


@pytest.mark.parametrize("scalar", SCALARS, ids=repr)
def test_a_scalar_keeps_float32(scalar):
    # once t / np.int64(4) and t * np.array(2.0) became float64, as NumPy promotes
    t = tn.tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32), requires_grad=True)
    for op in BINARY_OPS:
        assert op(t, scalar).dtype == np.float32, (op, scalar)
        assert op(scalar, t).dtype == np.float32, (op, scalar)
    assert (t ** scalar).dtype == np.float32
    if np.ndim(scalar) == 0:
        assert (scalar ** t).dtype == np.float32
    for compare in COMPARISONS:
        assert compare(t, scalar).dtype == np.bool_


@pytest.mark.parametrize("compare", COMPARISONS)
def test_comparisons_are_elementwise_bool_tensors_as_pytorch(compare, rng):
    torch = pytest.importorskip("torch")
    a = np.array([0.1, 1.0, -2.0, 3.0], dtype=np.float32)
    b = np.array([0.1, 2.0, -2.0, -1.0], dtype=np.float32)
    expected = compare(torch.tensor(a), torch.tensor(b)).numpy()
    result = compare(tn.tensor(a), tn.tensor(b))
    assert isinstance(result, tn.Tensor) and result.dtype == np.bool_
    np.testing.assert_array_equal(result.numpy(), expected)
    # a float64 scalar is rounded to the tensor's float32 first, as PyTorch does
    for scalar in (0.1, np.float64(0.1), np.array(0.1)):
        np.testing.assert_array_equal(compare(tn.tensor(a), scalar).numpy(),
                                      compare(torch.tensor(a), float(scalar)).numpy())


# ---- Python conversions -----------------------------------------------------------------

def test_bool_float_int_as_pytorch():
    assert bool(tn.tensor([0.0])) is False          # once True: every object is truthy
    assert bool(tn.tensor(2.0)) is True             # once raised for a 0-d tensor
    assert bool(tn.tensor(2.0) == 2.0)              # once False: == compared identity
    assert float(tn.tensor([[2.5]])) == 2.5
    assert int(tn.tensor(-3.7)) == -3 and int(tn.tensor([7])) == 7
    for convert in (bool, float, int):
        with pytest.raises(RuntimeError, match="ambiguous"):
            convert(tn.tensor([1.0, 2.0]))


def test_numpy_sees_the_numbers():
    t = tn.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    a = np.asarray(t)
    assert a.dtype == np.float64 and a.shape == (2, 3)          # once an object array
    np.testing.assert_array_equal(a, np.arange(6.0).reshape(2, 3))
    assert np.asarray(t, dtype=np.float32).dtype == np.float32


def test_tensors_hash_by_identity():
    a, b = tn.tensor([1.0]), tn.tensor([1.0])
    assert bool(a == b) and len({a, b}) == 2 and {a: 1, b: 2}[a] == 1
