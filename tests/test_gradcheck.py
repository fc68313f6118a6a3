"""tn.gradcheck itself: it passes correct ops and, above all, it fails wrong ones with a
report that says where (input, worst index), by how much and against which tolerance."""
import re

import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import GradcheckError, KinkError


# ---- deliberately wrong ops -------------------------------------------------------------

class BadTranspose(tn.Function):
    """Permutes axes; backward applies the permutation again instead of its inverse.
    For a 2-D transpose the two coincide, for a 3-axis rotation they do not."""

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, grad):
        return grad.transpose(self.axes)          # bug: should be np.argsort(self.axes)


class WrongScale(tn.Function):
    """y = c * x, whose backward uses a slightly different c."""

    def __init__(self, c, c_backward):
        self.c, self.c_backward = c, c_backward

    def forward(self, x):
        return self.c * x

    def backward(self, grad):
        return grad * self.c_backward


def sum_of_outputs_check(fn, x, eps=1e-6):
    """The naive check (upstream gradient = ones) that gradcheck deliberately avoids."""
    t = tn.tensor(x, requires_grad=True)
    fn(t).sum().backward()
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = eps
        numeric[idx] = (fn(tn.tensor(x + step)).numpy().sum()
                        - fn(tn.tensor(x - step)).numpy().sum()) / (2 * eps)
    return np.allclose(t.grad, numeric, atol=1e-5, rtol=1e-4)


# ---- passes on correct ops --------------------------------------------------------------

def test_passes_on_correct_ops(rng):
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    assert tn.gradcheck(lambda a, b: (a @ b).exp().sum(axis=0), x, w) is True
    assert tn.gradcheck(lambda a: F.transpose(a, (1, 2, 0)), rng.standard_normal((3, 3, 3)))


def test_float32_inputs_are_checked_in_float64_and_left_untouched(rng):
    x32 = rng.standard_normal((3, 4)).astype(np.float32)
    t = tn.tensor(x32.copy(), requires_grad=True)
    seen = []

    def fn(a):
        seen.append(a.dtype)
        return a * a

    assert tn.gradcheck(fn, t)
    assert set(seen) == {np.dtype(np.float64)}
    assert t.dtype == np.float32 and t.grad is None
    np.testing.assert_array_equal(t.data, x32)


def test_integer_inputs_are_passed_through_unchecked(rng):
    x = rng.standard_normal((4, 3))
    labels = np.array([2, 0, 1, 1])
    assert tn.gradcheck(lambda a, y: a[np.arange(4), y.data], x, labels)


def test_several_outputs(rng):
    x = rng.standard_normal((2, 3))
    assert tn.gradcheck(lambda a: (a * 2, a.exp().sum(axis=1)), x)


def test_needs_something_to_check():
    with pytest.raises(ValueError, match="no floating-point input"):
        tn.gradcheck(lambda y: y * 1, np.array([1, 2]))


# ---- fails on wrong ones ----------------------------------------------------------------

def test_random_upstream_catches_a_transposition_bug_that_ones_miss(rng):
    x = rng.standard_normal((3, 3, 3))
    bad = lambda a: BadTranspose((1, 2, 0))(a)
    # With ones as the upstream gradient every permutation of ones is ones: the bug hides.
    assert sum_of_outputs_check(bad, x)
    # gradcheck's random upstream gradient exposes it.
    with pytest.raises(GradcheckError) as info:
        tn.gradcheck(bad, x)
    assert not isinstance(info.value, KinkError)
    message = str(info.value)
    assert "input 0" in message and "(3, 3, 3)" in message
    assert re.search(r"index \(\d, \d, \d\)", message)
    assert "analytic" in message and "numeric" in message and "tolerance" in message


def test_report_names_the_worst_index_and_both_values():
    c = np.ones((2, 3))
    c_backward = c.copy()
    c_backward[0, 0] += 1e-2           # small error, found first
    c_backward[1, 2] += 1e3            # the worst one
    x = np.arange(6.0).reshape(2, 3)
    with pytest.raises(GradcheckError) as info:
        tn.gradcheck(lambda a: WrongScale(c, c_backward)(a), x)
    message = str(info.value)
    assert "input 0" in message and "index (1, 2)" in message
    assert "2 of 6 checks failed" in message
    # analytic = u * (1 + 1e3), numeric = u: recover u from the message and check both.
    analytic, numeric = map(float, re.search(r"analytic (\S+) vs numeric (\S+),", message).groups())
    np.testing.assert_allclose(analytic, 1001 * numeric, rtol=1e-6)
    tolerance = float(re.search(r"> tolerance (\S+) ", message).group(1))
    np.testing.assert_allclose(tolerance, 1e-5 + 1e-4 * abs(numeric), rtol=1e-2)


def test_the_second_input_is_named_when_it_is_wrong(rng):
    class HalfWrongMul(tn.Function):
        def forward(self, a, b):
            self.a, self.b = a, b
            return a * b

        def backward(self, grad):
            return grad * self.b, grad * self.a * 1.01     # 1% off for b

    with pytest.raises(GradcheckError, match="input 1"):
        tn.gradcheck(lambda a, b: HalfWrongMul()(a, b), rng.standard_normal(3),
                     rng.standard_normal(3))


def test_tolerances_are_respected():
    c = np.ones(4)
    slightly = c * (1 + 1e-3)
    with pytest.raises(GradcheckError):
        tn.gradcheck(lambda a: WrongScale(c, slightly)(a), np.ones(4))
    assert tn.gradcheck(lambda a: WrongScale(c, slightly)(a), np.ones(4), atol=1e-2, rtol=1e-2)


def test_random_directions_catch_a_wrong_gradient_in_a_large_input(rng):
    x = rng.standard_normal((12, 12))
    assert tn.gradcheck(lambda a: a * a, x, max_elements=100)
    c_backward = np.ones((12, 12))
    c_backward[7, 3] = 3.0                     # one wrong element among 144
    # 144 elements > max_elements: 20 random elements (missing (7, 3)) and random directions
    with pytest.raises(GradcheckError, match="a random direction"):
        tn.gradcheck(lambda a: WrongScale(np.ones((12, 12)), c_backward)(a), x,
                     max_elements=100, n_random_elements=0)
    # The same input checked element by element finds the exact index.
    with pytest.raises(GradcheckError, match=r"index \(7, 3\)"):
        tn.gradcheck(lambda a: WrongScale(np.ones((12, 12)), c_backward)(a), x)


@pytest.mark.parametrize("position", [(0, 0), (7, 13), (19, 19)])
@pytest.mark.parametrize("relative_error", [1e-3, 1e-2])
def test_a_small_error_in_one_element_of_a_20x20_input_is_found(position, relative_error):
    # once missed: above 64 elements only 6 random directions were checked, and 0.1 % of
    # one element among 400 hid below the tolerance of their sum
    x = np.random.default_rng(3).standard_normal((20, 20))
    c = np.full((20, 20), 1.5)
    c_backward = c.copy()
    c_backward[position] *= 1 + relative_error
    with pytest.raises(GradcheckError, match=rf"index \({position[0]}, {position[1]}\)"):
        tn.gradcheck(lambda a: WrongScale(c, c_backward)(a), x)
    assert tn.gradcheck(lambda a: WrongScale(c, c)(a), x)


def test_large_inputs_check_random_elements_too():
    # 2,000 elements > max_elements: a wrong element is found among the drawn ones
    x = np.random.default_rng(4).standard_normal(2000)
    c_backward = np.ones(2000)
    c_backward[::2] = 1.01                     # half the elements 1 % off
    with pytest.raises(GradcheckError, match="index"):
        tn.gradcheck(lambda a: WrongScale(np.ones(2000), c_backward)(a), x, n_directions=0)


class SteepSquare(tn.Function):
    """y = 1e6 x^2 whose backward is 10 % too large: a real bug on a smooth function."""

    def forward(self, x):
        self.x = x
        return 1e6 * x * x

    def backward(self, grad):
        return grad * 2.2e6 * self.x


def test_a_bug_on_a_steep_smooth_function_is_not_called_a_kink():
    # once a KinkError: at 1e-4 the one-sided slopes of 1e6 x^2 differ by 2e6 eps = 2
    with pytest.raises(GradcheckError) as info:
        tn.gradcheck(lambda a: SteepSquare()(a), np.array([1e-4, -3e-4]))
    assert not isinstance(info.value, KinkError)
    assert tn.gradcheck(lambda a: 1e6 * a * a, np.array([1e-4, -3e-4]))


def test_large_outputs_use_a_tolerance_above_their_rounding():
    # once failed: 1e7 + 2 x moves by 2e-6 for eps = 1e-6, close to float64's spacing at 1e7
    x = np.random.default_rng(5).standard_normal(5)
    assert tn.gradcheck(lambda a: a * 2 + 1e7, x)
    with pytest.raises(GradcheckError):                  # a 25 % error is still seen there
        tn.gradcheck(lambda a: WrongScale(np.full(5, 2.0), np.full(5, 2.5))(a) + 1e7, x)


# ---- kinks -------------------------------------------------------------------------------

def relu(x):
    return F.relu(x) if hasattr(F, "relu") else F.clip(x, 0.0, None)


def test_kink_at_a_relu_zero_is_reported_as_such():
    x = np.array([-1.0, 0.0, 2.0])
    with pytest.raises(KinkError, match="kink") as info:
        tn.gradcheck(relu, x)
    assert "index (1,)" in str(info.value) and "left slope" in str(info.value)
    assert tn.gradcheck(relu, np.array([-1.0, 0.3, 2.0]))      # away from 0 it passes


def test_kink_at_a_max_tie_is_reported_as_such():
    x = np.array([[2.0, 2.0, 2.0, -1.0]])        # three-way tie: analytic 1/3, numeric 1/2
    with pytest.raises(KinkError):
        tn.gradcheck(lambda a: F.max(a, axis=1), x)
    with pytest.raises(KinkError):                # relu at 0: analytic 0, central 1/2
        tn.gradcheck(F.relu, np.array([0.0, 2.0]))
    # maximum at a tie gives each side 1/2 (PyTorch's choice), which is exactly the central
    # difference, so there is nothing to report
    assert tn.gradcheck(F.maximum, np.array([1.0, 2.0]), np.array([1.0, 0.0]))


def test_a_real_bug_is_not_hidden_behind_a_kink():
    c_backward = np.array([1.0, 1.0, 5.0])

    def fn(a):
        return WrongScale(np.ones(3), c_backward)(relu(a))
    with pytest.raises(GradcheckError) as info:
        tn.gradcheck(fn, np.array([0.0, 1.0, 1.5]))   # index 0 is a kink, index 2 a bug
    assert not isinstance(info.value, KinkError)
    assert "index (2,)" in str(info.value) and "crossed a kink" in str(info.value)


# ---- modules -----------------------------------------------------------------------------

class TinyAffine:
    """The least a Module must offer gradcheck: named_parameters() and double()."""

    def __init__(self, rng, wrong=False):
        self.weight = tn.tensor(rng.standard_normal((3, 2)).astype(np.float32), requires_grad=True)
        self.bias = tn.tensor(np.zeros(2, dtype=np.float32), requires_grad=True)
        self.wrong = wrong

    def named_parameters(self):
        return [("weight", self.weight), ("bias", self.bias)]

    def double(self):
        for _, p in self.named_parameters():
            p.data = p.data.astype(np.float64)
        return self

    def __call__(self, x):
        bias = self.bias
        if self.wrong:       # a constant that leaks into the gradient but not the value
            bias = WrongScale(np.ones(2), np.array([1.0, 1.5]))(bias)
        return x @ self.weight + bias


def test_module_parameters_are_checked_in_float64(rng):
    model = TinyAffine(rng)
    assert tn.gradcheck(model, rng.standard_normal((4, 3)))
    assert model.weight.dtype == np.float64            # cast in place, as documented
    with pytest.raises(GradcheckError, match="parameter 'bias'"):
        tn.gradcheck(TinyAffine(rng, wrong=True), rng.standard_normal((4, 3)))


def test_real_nn_module(rng):
    nn = pytest.importorskip("tinynet.nn")
    if not hasattr(nn, "Linear"):
        pytest.skip("nn.Linear not written yet")
    model = nn.Linear(3, 2)
    assert tn.gradcheck(model, rng.standard_normal((4, 3)))
    assert tn.gradcheck(model, rng.standard_normal((4, 3)), check_params=False)


def test_gradcheck_of_a_training_batchnorm_leaves_its_running_stats_alone(rng):
    from tinynet import nn
    bn = nn.BatchNorm1d(3)
    before = {k: v.copy() for k, v in bn.state_dict().items()}
    assert tn.gradcheck(bn, rng.standard_normal((5, 3)))
    for key, value in bn.state_dict().items():
        if key.startswith("running") or key == "num_batches_tracked":
            np.testing.assert_array_equal(value, before[key])
