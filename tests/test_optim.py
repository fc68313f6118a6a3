"""Optimizers against hand-computed updates (and torch.optim where installed); schedulers
against their closed forms; state_dict for resuming."""
import math

import numpy as np
import pytest

import tinynet as tn
from tinynet import nn, optim

GRADS = [np.array([0.5, -1.0]), np.array([-0.25, 2.0]), np.array([1.0, 0.5])]


def run(make_opt, grads=GRADS, start=(1.0, -2.0)):
    """Apply ``grads`` one per step to p = start; return p after each step."""
    p = nn.Parameter(np.array(start, dtype=np.float64))
    opt = make_opt([p])
    history = []
    for g in grads:
        p.grad = g.copy()
        opt.step()
        history.append(p.data.copy())
    return history


def test_sgd_plain():
    hist = run(lambda ps: optim.SGD(ps, lr=0.1))
    np.testing.assert_allclose(hist[0], [1.0 - 0.05, -2.0 + 0.1])
    np.testing.assert_allclose(hist[1], [0.95 + 0.025, -1.9 - 0.2])


def test_sgd_momentum_first_step_copies_the_gradient():
    # b1 = g1;  b2 = 0.9 b1 + g2;  b3 = 0.9 b2 + g3;  p -= lr * b
    hist = run(lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9))
    b1 = np.array([0.5, -1.0])
    b2 = 0.9 * b1 + np.array([-0.25, 2.0])          # [0.2, 1.1]
    b3 = 0.9 * b2 + np.array([1.0, 0.5])            # [1.18, 1.49]
    np.testing.assert_allclose(hist[0], [0.95, -1.9])
    np.testing.assert_allclose(hist[1], [0.95 - 0.02, -1.9 - 0.11])
    np.testing.assert_allclose(hist[2], np.array([0.93, -2.01]) - 0.1 * b3)


def test_sgd_dampening():
    hist = run(lambda ps: optim.SGD(ps, lr=0.1, momentum=0.5, dampening=0.5), GRADS[:2])
    # b1 = g1 (no dampening on the first step), b2 = 0.5 b1 + 0.5 g2 = [0.125, 0.5]
    np.testing.assert_allclose(hist[1], [0.95 - 0.0125, -1.9 - 0.05])


def test_sgd_nesterov_with_weight_decay():
    hist = run(lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
               GRADS[:2])
    # step 1: g = [0.5, -1] + 0.1*[1, -2] = [0.6, -1.2]; b = g; step g + 0.9 b = 1.9 g
    p1 = np.array([1.0, -2.0]) - 0.1 * 1.9 * np.array([0.6, -1.2])       # [0.886, -1.772]
    np.testing.assert_allclose(hist[0], p1)
    g2 = np.array([-0.25, 2.0]) + 0.1 * p1
    b2 = 0.9 * np.array([0.6, -1.2]) + g2
    np.testing.assert_allclose(hist[1], p1 - 0.1 * (g2 + 0.9 * b2))


def test_adam_two_steps_by_hand():
    p0, lr, b1, b2, eps = 1.0, 0.1, 0.9, 0.999, 1e-8
    hist = run(lambda ps: optim.Adam(ps, lr=lr), [np.array([0.5]), np.array([-1.0])], start=[p0])
    # step 1: m = 0.05, v = 0.00025; m_hat = 0.5, v_hat = 0.25 -> p = 1 - 0.1 * 0.5/0.5
    assert hist[0][0] == pytest.approx(1.0 - lr * 0.5 / (0.5 + eps), rel=1e-12)
    m = 0.9 * 0.05 + 0.1 * -1.0                      # -0.055
    v = 0.999 * 0.00025 + 0.001 * 1.0                 # 0.00124975
    m_hat, v_hat = m / (1 - b1 ** 2), v / (1 - b2 ** 2)
    assert hist[1][0] == pytest.approx(hist[0][0] - lr * m_hat / (math.sqrt(v_hat) + eps), rel=1e-12)


def test_adam_weight_decay_and_amsgrad_by_hand():
    grads = [np.array([1.0]), np.array([0.1])]
    hist = run(lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.5, amsgrad=True), grads, start=[2.0])
    p, m, v, vmax = 2.0, 0.0, 0.0, 0.0
    for t, g in enumerate([1.0, 0.1], start=1):
        g = g + 0.5 * p
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        vmax = max(vmax, v)
        p = p - 0.01 / (1 - 0.9 ** t) * m / (math.sqrt(vmax) / math.sqrt(1 - 0.999 ** t) + 1e-8)
        assert hist[t - 1][0] == pytest.approx(p, rel=1e-12)


def test_step_never_touches_grad_and_skips_missing_grads():
    p, q = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    for opt in (optim.SGD([p, q], lr=0.1, momentum=0.9, weight_decay=0.1),
                optim.Adam([p, q], weight_decay=0.1)):
        grad = np.array([1.0, 2.0, 3.0])
        p.grad, q.grad = grad, None
        for _ in range(2):
            opt.step()
        np.testing.assert_array_equal(grad, [1.0, 2.0, 3.0])
        assert np.all(q.data == 1.0)


def test_keeps_float32():
    p = nn.Parameter(np.ones(3, np.float32))
    for opt in (optim.SGD([p], lr=0.1, momentum=0.9), optim.Adam([p])):
        p.grad = np.ones(3, np.float32)
        opt.step()
        opt.step()
        assert p.dtype == np.float32


def test_param_groups_have_their_own_lr():
    a, b = nn.Parameter(np.zeros(1)), nn.Parameter(np.zeros(1))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad = b.grad = np.ones(1)
    opt.step()
    assert a.data[0] == pytest.approx(-0.1) and b.data[0] == pytest.approx(-1.0)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_bad_arguments():
    p = nn.Parameter(np.zeros(1))
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1.0)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(TypeError, match="Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="more than one"):
        optim.SGD([p, p], lr=0.1)


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict()), ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict()), ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.003, alpha=0.9, eps=1e-6, momentum=0.5, centered=True,
                     weight_decay=0.01)),
])
def test_matches_torch_optim(name, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    start = [rng.standard_normal((3, 2)), rng.standard_normal(3)]
    ours = [nn.Parameter(s.copy()) for s in start]
    theirs = [torch.tensor(s.copy(), requires_grad=True) for s in start]
    opt_ours = getattr(optim, name)(ours, **kwargs)
    opt_theirs = getattr(torch.optim, name)(theirs, **kwargs)
    for _ in range(5):
        grads = [rng.standard_normal(s.shape) for s in start]
        for p, q, g in zip(ours, theirs, grads):
            p.grad, q.grad = g.copy(), torch.tensor(g.copy())
        opt_ours.step()
        opt_theirs.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.05, amsgrad=True)])
def test_state_dict_resume_equals_uninterrupted(make, tmp_path):
    grads = [np.array([0.3, -0.7]) * k for k in (1, -2, 3, 1, -1)]
    full = run(make, grads)
    p = nn.Parameter(np.array([1.0, -2.0]))
    opt = make([p])
    for g in grads[:2]:
        p.grad = g
        opt.step()
    tn.save({"p": p.data, "optimizer": opt.state_dict()}, tmp_path / "ckpt.npz")
    ckpt = tn.load(tmp_path / "ckpt.npz")
    p2 = nn.Parameter(ckpt["p"])
    opt2 = make([p2])
    opt2.load_state_dict(ckpt["optimizer"])
    for g in grads[2:]:
        p2.grad = g
        opt2.step()
    np.testing.assert_array_equal(p2.data, full[-1])


def test_load_state_dict_checks_before_changing():
    p = nn.Parameter(np.zeros(2))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones(2)
    opt.step()
    sd = opt.state_dict()
    sd["state"][0]["momentum_buffer"] = np.zeros(3)
    sd["param_groups"][0]["lr"] = 5.0
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(sd)
    assert opt.param_groups[0]["lr"] == 0.1
    np.testing.assert_array_equal(opt.state[p]["momentum_buffer"], np.ones(2))


# ---- schedulers ---------------------------------------------------------------------------

def lrs(scheduler, n):
    out = []
    for _ in range(n):
        out.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def make_sgd(lr=0.1, momentum=0.0):
    return optim.SGD([nn.Parameter(np.zeros(1))], lr=lr, momentum=momentum)


def test_step_lr():
    got = lrs(optim.StepLR(make_sgd(), step_size=3, gamma=0.5), 8)
    np.testing.assert_allclose(got, [0.1 * 0.5 ** (e // 3) for e in range(8)])


def test_cosine_annealing_lr():
    got = lrs(optim.CosineAnnealingLR(make_sgd(), T_max=10, eta_min=0.01), 11)
    expected = [0.01 + 0.09 * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(11)]
    np.testing.assert_allclose(got, expected)
    assert got[0] == pytest.approx(0.1) and got[10] == pytest.approx(0.01)


def test_one_cycle_lr_closed_form():
    total, max_lr = 10, 1.0
    sched = optim.OneCycleLR(make_sgd(momentum=0.9), max_lr=max_lr, total_steps=total)
    initial, final = max_lr / 25, max_lr / 25 / 1e4
    up = 0.3 * total - 1                          # the step where the lr peaks
    cos = lambda a, b, t: b + (a - b) * (1 + math.cos(math.pi * t)) / 2
    expected = [cos(initial, max_lr, s / up) if s <= up else
                cos(max_lr, final, (s - up) / (total - 1 - up)) for s in range(total)]
    momenta = []
    got = []
    for _ in range(total):
        got.append(sched.get_last_lr()[0])
        momenta.append(sched.optimizer.param_groups[0]["momentum"])
        sched.step() if len(got) < total else None
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got[0] == pytest.approx(initial) and max(got) == pytest.approx(max_lr)
    assert momenta[0] == pytest.approx(0.95) and min(momenta) == pytest.approx(0.85)
    with pytest.raises(ValueError, match="total_steps"):
        for _ in range(3):
            sched.step()


@pytest.mark.parametrize("kind", ["step", "cos", "onecycle", "onecycle3", "onecycle_adam"])
def test_schedulers_match_torch(kind):
    torch = pytest.importorskip("torch")

    def build(lib, opt_lib):
        p = [torch.zeros(1, requires_grad=True)] if opt_lib is torch.optim else \
            [nn.Parameter(np.zeros(1))]
        if kind == "onecycle_adam":
            opt = opt_lib.Adam(p, lr=0.1)
        else:
            opt = opt_lib.SGD(p, lr=0.1, momentum=0.9)
        s = lib
        if kind == "step":
            return opt, s.StepLR(opt, step_size=4, gamma=0.3)
        if kind == "cos":
            return opt, s.CosineAnnealingLR(opt, T_max=7, eta_min=0.001)
        return opt, s.OneCycleLR(opt, max_lr=0.5, total_steps=20, three_phase=kind == "onecycle3",
                                 anneal_strategy="linear" if kind == "onecycle3" else "cos")

    opt_o, ours = build(optim, optim)
    opt_t, theirs = build(torch.optim.lr_scheduler, torch.optim)
    n = 19 if kind.startswith("onecycle") else 15
    for _ in range(n):
        assert ours.get_last_lr()[0] == pytest.approx(theirs.get_last_lr()[0], rel=1e-9, abs=1e-15)
        key = "betas" if kind == "onecycle_adam" else "momentum"
        assert np.allclose(opt_o.param_groups[0][key], opt_t.param_groups[0][key])
        opt_o.step()
        opt_t.step()
        ours.step()
        theirs.step()


def test_a_bad_gradient_updates_no_parameter():
    good = tn.tensor(np.ones(3), requires_grad=True)
    bad = tn.tensor(np.ones(2), requires_grad=True)
    good.grad, bad.grad = np.ones(3), np.ones(5)
    opt = optim.SGD([good, bad], lr=0.1)
    with pytest.raises(ValueError, match="gradient of shape"):
        opt.step()
    np.testing.assert_array_equal(good.data, np.ones(3))
