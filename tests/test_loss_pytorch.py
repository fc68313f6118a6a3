"""cross_entropy's weight / ignore_index / label_smoothing / probability targets,
binary_cross_entropy and binary_cross_entropy_with_logits(weight, pos_weight): against
PyTorch's formulas (float64, random upstream gradients), a hand-computed value, and finite
differences."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F

RNG = np.random.default_rng(7)
N, C = 5, 4
LOGITS = RNG.standard_normal((N, C)) * 2
LABELS = np.array([0, 3, 1, 3, 2])
PROBS = RNG.dirichlet(np.ones(C), size=N)
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])

CE_OPTIONS = [
    dict(), dict(weight=WEIGHT), dict(ignore_index=3), dict(label_smoothing=0.2),
    dict(weight=WEIGHT, ignore_index=1, label_smoothing=0.1),
]


def _compare(ours, theirs, arrays, reduction, grad_inputs):
    torch = pytest.importorskip("torch")
    tn_in = [tn.tensor(a, requires_grad=g) for a, g in zip(arrays, grad_inputs)]
    th_in = [torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grad_inputs)]
    y, yt = ours(*tn_in, reduction=reduction), theirs(*th_in, reduction=reduction)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    u = RNG.standard_normal(y.shape)
    y.backward(u)
    yt.backward(torch.tensor(u))
    for a, b, g in zip(tn_in, th_in, grad_inputs):
        if g:
            np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-9, atol=1e-12)


def _cross_entropy_vs_torch(labels, options, reduction):
    torch = pytest.importorskip("torch")
    th_opts = {k: torch.tensor(v) if k == "weight" else v for k, v in options.items()}
    _compare(lambda x, y, reduction: F.cross_entropy(x, y, reduction, **options),
             lambda x, y, reduction: torch.nn.functional.cross_entropy(
                 x, y, reduction=reduction, **th_opts),
             [LOGITS, labels], reduction, [True, labels.dtype.kind == "f"])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", CE_OPTIONS, ids=str)
def test_cross_entropy_class_indices_match_torch(options, reduction):
    _cross_entropy_vs_torch(LABELS, options, reduction)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", [dict(), dict(weight=WEIGHT), dict(label_smoothing=0.3),
                                     dict(weight=WEIGHT, label_smoothing=0.1)], ids=str)
def test_cross_entropy_probability_targets_match_torch(options, reduction):
    _cross_entropy_vs_torch(PROBS, options, reduction)


def test_cross_entropy_weighted_mean_by_hand():
    # two rows, labels 0 and 1, weights 1 and 3: mean = (1 l0 + 3 l1) / (1 + 3)
    x = np.array([[1.0, 0.0], [0.0, 2.0]])
    log_p = x - np.log(np.exp(x).sum(1, keepdims=True))
    expected = (-1 * log_p[0, 0] - 3 * log_p[1, 1]) / 4
    got = F.cross_entropy(tn.tensor(x), [0, 1], weight=[1.0, 3.0]).item()
    assert got == pytest.approx(expected, rel=1e-12)
    # an ignored row contributes neither loss nor weight
    got = F.cross_entropy(tn.tensor(x), [0, -100], weight=[1.0, 3.0]).item()
    assert got == pytest.approx(-log_p[0, 0], rel=1e-12)
    # label smoothing 0.5 over 2 classes of row 0: (0.75, 0.25) as a probability target
    got = F.cross_entropy(tn.tensor(x[:1]), [0], label_smoothing=0.5).item()
    assert got == pytest.approx(-(0.75 * log_p[0, 0] + 0.25 * log_p[0, 1]), rel=1e-12)


@pytest.mark.parametrize("options", CE_OPTIONS[1:], ids=str)
def test_cross_entropy_options_gradcheck(options):
    assert tn.gradcheck(lambda x: F.cross_entropy(x, LABELS, "none", **options), LOGITS)
    assert tn.gradcheck(lambda x: F.cross_entropy(x, LABELS, **options), LOGITS)


def test_cross_entropy_probability_targets_gradcheck():
    assert tn.gradcheck(lambda x, t: F.cross_entropy(x, t, weight=WEIGHT, label_smoothing=0.1),
                        LOGITS, PROBS)


def test_cross_entropy_option_errors():
    x = tn.tensor(LOGITS)
    with pytest.raises(ValueError, match=r"weight must have one entry per class, shape \(4,\)"):
        F.cross_entropy(x, LABELS, weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        F.cross_entropy(x, LABELS, label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 3\]"):
        F.cross_entropy(x, [0, 1, 2, 3, -100], ignore_index=-1)


P = RNG.uniform(0.05, 0.95, (3, 4))
T = RNG.uniform(0, 1, (3, 4))
X = RNG.standard_normal((3, 4)) * 3
W = RNG.uniform(0.5, 2, (3, 4))
POS = np.array([0.5, 1.0, 2.0, 4.0])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_weight", [False, True])
def test_binary_cross_entropy_matches_torch(reduction, with_weight):
    torch = pytest.importorskip("torch")
    _compare(lambda p, t, reduction: F.binary_cross_entropy(
                 p, t, reduction, weight=W if with_weight else None),
             lambda p, t, reduction: torch.nn.functional.binary_cross_entropy(
                 p, t, reduction=reduction, weight=torch.tensor(W) if with_weight else None),
             [P, T], reduction, [True, True])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight, pos_weight", [(None, POS), (W, None), (W, POS)])
def test_bce_with_logits_weights_match_torch(reduction, weight, pos_weight):
    torch = pytest.importorskip("torch")
    as_t = lambda a: None if a is None else torch.tensor(a)   # noqa: E731
    _compare(lambda x, t, reduction: F.binary_cross_entropy_with_logits(
                 x, t, reduction, weight=weight, pos_weight=pos_weight),
             lambda x, t, reduction: torch.nn.functional.binary_cross_entropy_with_logits(
                 x, t, reduction=reduction, weight=as_t(weight), pos_weight=as_t(pos_weight)),
             [X, T], reduction, [True, True])


def test_bce_by_hand_and_gradcheck():
    # -[t log p + (1 - t) log(1 - p)] for p = 0.8, t = 1 and p = 0.25, t = 0
    got = F.binary_cross_entropy(tn.tensor([0.8, 0.25]), [1.0, 0.0], "none").numpy()
    np.testing.assert_allclose(got, [-np.log(0.8), -np.log(0.75)], rtol=1e-6)
    # p = 0 with t = 1: the log is clamped at -100, as PyTorch
    assert F.binary_cross_entropy(tn.tensor([0.0]), [1.0]).item() == pytest.approx(100)
    assert tn.gradcheck(lambda p, t: F.binary_cross_entropy(p, t, weight=W), P, T)
    # pos_weight p multiplies the positive term: t = 1 gives p * softplus(-x)
    got = F.binary_cross_entropy_with_logits(tn.tensor([0.3]), [1.0], pos_weight=[4.0]).item()
    assert got == pytest.approx(4 * np.log1p(np.exp(-0.3)), rel=1e-6)
    assert tn.gradcheck(lambda x, t: F.binary_cross_entropy_with_logits(
        x, t, weight=W, pos_weight=POS), X, T)
    with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\]"):
        F.binary_cross_entropy(tn.tensor([1.5]), [1.0])
    with pytest.raises(ValueError, match="pos_weight of shape"):
        F.binary_cross_entropy_with_logits(tn.tensor(X), T, pos_weight=[1.0, 2.0])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", [dict(weight=WEIGHT), dict(ignore_index=3),
                                     dict(weight=WEIGHT, ignore_index=0)], ids=str)
def test_nll_loss_weight_and_ignore_index_match_torch(options, reduction):
    torch = pytest.importorskip("torch")
    th_opts = {k: torch.tensor(v) if k == "weight" else v for k, v in options.items()}
    _compare(lambda x, y, reduction: F.nll_loss(x, y, reduction, **options),
             lambda x, y, reduction: torch.nn.functional.nll_loss(
                 x, y, reduction=reduction, **th_opts),
             [LOGITS, LABELS], reduction, [True, False])


def test_nll_loss_weighted_by_hand_and_gradcheck():
    log_p = np.log(np.array([[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]]))
    # rows 0 and 1 (labels 0, 1; weights 1, 3), row 2 ignored
    got = F.nll_loss(tn.tensor(log_p), [0, 1, -100], weight=[1.0, 3.0]).item()
    assert got == pytest.approx(-(log_p[0, 0] + 3 * log_p[1, 1]) / 4, rel=1e-12)
    assert tn.gradcheck(lambda x: F.nll_loss(x, LABELS, weight=WEIGHT, ignore_index=1), LOGITS)
