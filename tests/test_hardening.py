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
        assert F.clip(t, -scalar, scalar).dtype == np.float32
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


# ---- the version counter: a graph refuses to use values changed after its forward pass ----

def test_optimizer_step_between_forward_and_backward_is_an_error():
    # the classic mistake: once it silently gave gradients computed with the new weights
    from tinynet import nn, optim
    tn.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = tn.tensor(np.ones((4, 3), dtype=np.float32))
    loss = (model(x) ** 2).sum()
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation: input 1 of "
                                           r"Linear \(tensor of shape \(2, 3\), now at "
                                           r"version \d+\) was changed after the forward"):
        loss.backward()
    # the right order works, step after step
    for _ in range(2):
        opt.zero_grad()
        loss = (model(x) ** 2).sum()
        loss.backward()
        opt.step()


def test_each_in_place_change_bumps_the_version():
    from tinynet import nn, optim
    model = nn.Linear(2, 2)
    w = model.weight
    start = w._version
    nn.init.constant_(w, 0.5)
    assert w._version == start + 1
    model.load_state_dict(model.state_dict())
    assert w._version == start + 2
    model.double()
    assert w._version == start + 3
    w.grad = np.ones(w.shape)
    optim.Adam([w]).step()
    assert w._version == start + 4
    t = tn.tensor([1.0, 2.0])
    t[0] = 3.0
    assert t._version == 1


def test_changing_a_saved_input_names_the_tensor():
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    scale = tn.tensor([3.0, 4.0])
    scale.name = "scale"
    y = (x * scale).sum()
    scale[1] = 0.0
    with pytest.raises(RuntimeError, match=r"input 1 of Mul \(tensor 'scale' of shape "
                                           r"\(2,\), now at version 1\)"):
        y.backward()


def test_changing_an_input_that_backward_does_not_read_is_fine():
    # as PyTorch: Add keeps no input values, so editing its constant input changes nothing
    x = tn.tensor([1.0, 2.0], requires_grad=True)
    shift = tn.tensor([3.0, 4.0])
    y = (x + shift).sum()
    shift[0] = 10.0
    y.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


# ---- x[index] = value ----------------------------------------------------------------------

def test_setitem_as_pytorch(rng):
    torch = pytest.importorskip("torch")
    a = rng.standard_normal((3, 4, 5))
    for index, value in [((0, slice(None), np.array([0, 2])), 7.0),
                         ((slice(1, 3), 2), np.arange(5.0)),
                         ((0, slice(None), np.array([4, 1, 0])), np.arange(12.0).reshape(4, 3)),
                         (np.array([True, False, True]), -1.0),
                         ((Ellipsis, 1), tn.tensor(np.ones((3, 4))))]:
        t, expected = tn.tensor(a), torch.tensor(a)
        t[index] = value
        torch_index = tuple(torch.tensor(i) if isinstance(i, np.ndarray) else i
                            for i in (index if isinstance(index, tuple) else (index,)))
        expected[torch_index] = torch.tensor(np.asarray(value))
        np.testing.assert_array_equal(t.numpy(), expected.numpy())
    assert t.dtype == np.float64


def test_setitem_on_a_tensor_in_a_graph_is_a_clear_error():
    leaf = tn.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        leaf[0] = 5.0
    hidden = leaf * 2
    with pytest.raises(RuntimeError, match="tensor in a graph"):
        hidden[0] = 5.0
    np.testing.assert_array_equal(leaf.numpy(), [1.0, 2.0])      # nothing changed
    with tn.no_grad():                                           # as PyTorch: allowed here
        leaf[0] = 5.0
    np.testing.assert_array_equal(leaf.numpy(), [5.0, 2.0])


# ---- bad arguments: a clear error from the constructor, naming the argument --------------

def _param():
    return tn.tensor([1.0], requires_grad=True)


BAD_ARGUMENTS = [   # (call, error, message): each once failed late or with a foreign error
    (lambda: tn.nn.Conv2d(1, 1, 0), ValueError, "Conv2d: kernel_size must be >= 1, got 0"),
    (lambda: tn.nn.Conv2d(1, 1, -1), ValueError, "Conv2d: kernel_size must be >= 1, got -1"),
    (lambda: tn.nn.Conv2d(1, 1, 2.5), TypeError, "Conv2d: kernel_size must be an int or a "
                                                 "pair of ints, got 2.5"),
    (lambda: tn.nn.Conv2d(1, 1, 3, stride=0), ValueError, "stride must be >= 1, got 0"),
    (lambda: tn.nn.Conv2d(1, 1, 3, dilation=(1, 0)), ValueError, r"dilation must be >= 1, "
                                                                 r"got \(1, 0\)"),
    (lambda: tn.nn.Conv2d(1, 1, 3, padding=-1), ValueError, "padding must be >= 0, got -1"),
    (lambda: tn.nn.Dropout("a"), TypeError, "Dropout: p must be a real number, got 'a'"),
    (lambda: tn.nn.Dropout(1.5), ValueError, r"Dropout: p must be in \[0.0, 1.0\], got 1.5"),
    (lambda: tn.optim.SGD([_param()], lr="0.1"), TypeError, "SGD: lr must be a real number, "
                                                            "got '0.1'"),
    (lambda: tn.optim.SGD([_param()], lr=0.1, momentum="a"), TypeError, "SGD: momentum"),
    (lambda: tn.optim.Adam([_param()], lr="1e-3"), TypeError, "Adam: lr must be a real"),
    (lambda: tn.optim.Adam([_param()], betas=0.9), TypeError, "Adam: betas must be a pair"),
    (lambda: tn.nn.BatchNorm2d(2, momentum=2), ValueError, r"BatchNorm2d: momentum must be "
                                                           r"in \[0.0, 1.0\], got 2"),
    (lambda: tn.nn.BatchNorm1d(2, eps="a"), TypeError, "BatchNorm1d: eps must be a real"),
    (lambda: tn.nn.MaxPool2d(0), ValueError, r"MaxPool2d: kernel_size must be >= 1, "
                                             r"got \(0, 0\)"),
    (lambda: tn.nn.MaxPool2d(2, stride=0), ValueError, "MaxPool2d: stride must be >= 1"),
    (lambda: tn.nn.AvgPool2d(2, padding=5), ValueError, r"AvgPool2d: padding must be between "
                                                        r"0 and half the kernel size"),
    (lambda: tn.nn.AdaptiveAvgPool2d(0), ValueError, r"AdaptiveAvgPool2d: output_size must "
                                                     r"be >= 1, got \(0, 0\)"),
    (lambda: tn.nn.LeakyReLU("a"), TypeError, "LeakyReLU: negative_slope must be a real"),
    (lambda: tn.nn.Softmax("x"), TypeError, "Softmax: dim must be an int, got 'x'"),
    (lambda: tn.nn.Flatten(1.5), TypeError, "Flatten: start_dim must be an int, got 1.5"),
    (lambda: tn.optim.StepLR(tn.optim.SGD([_param()], lr=0.1), 2, gamma="x"), TypeError,
     "StepLR: gamma must be a real number"),
    (lambda: F.linear([[1.0, 2.0]], tn.tensor(np.ones((2, 2)))), TypeError,
     "linear: input must be a tensor or array, got list"),
    (lambda: F.concat([]), ValueError, "concat: tensors must hold at least one tensor"),
    (lambda: F.stack(()), ValueError, "stack: tensors must hold at least one tensor"),
    (lambda: F.where(np.array([0.5, 0.0]), _param(), _param()), TypeError,
     "where: condition must be a boolean array or tensor, got dtype float64"),
    (lambda: tn.tensor([1.0], dtype=str), TypeError, "dtype must be a numeric dtype"),
]


@pytest.mark.parametrize("call, error, message", BAD_ARGUMENTS,
                         ids=[m[:40] for _, _, m in BAD_ARGUMENTS])
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_good_adaptive_size_with_none_is_accepted():
    layer = tn.nn.AdaptiveAvgPool2d((2, None))
    assert layer(tn.tensor(np.ones((1, 1, 4, 3)))).shape == (1, 1, 2, 3)
