"""AdamW, RMSprop and the MultiStepLR / ExponentialLR / LambdaLR / ReduceLROnPlateau
schedulers: against PyTorch, by hand, through state_dict and tn.fit checkpoints."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import data, nn, optim

# AdamW and RMSprop against torch.optim: in test_optim.py's test_matches_torch_optim.


def test_adamw_and_rmsprop_one_step_by_hand():
    # AdamW, first step: m_hat = g, v_hat = g^2, so p = p (1 - lr wd) - lr g / (|g| + eps)
    p = nn.Parameter(np.array([2.0, -1.0]))
    p.grad = np.array([0.5, -4.0])
    optim.AdamW([p], lr=0.1, weight_decay=0.5).step()
    np.testing.assert_allclose(p.data, [2.0 * 0.95 - 0.1, -1.0 * 0.95 + 0.1], rtol=1e-7)
    # RMSprop, first step: s = (1 - alpha) g^2, p = p - lr g / (sqrt(s) + eps)
    p = nn.Parameter(np.array([1.0]))
    p.grad = np.array([2.0])
    optim.RMSprop([p], lr=0.01, alpha=0.75).step()
    np.testing.assert_allclose(p.data, [1.0 - 0.01 * 2.0 / (np.sqrt(0.25 * 4.0) + 1e-8)])
    # centered: a = (1 - alpha) g, d = sqrt(s - a^2) = sqrt(0.25*4 - 0.25) ; with momentum
    p = nn.Parameter(np.array([1.0]))
    p.grad = np.array([2.0])
    optim.RMSprop([p], lr=0.01, alpha=0.75, centered=True, momentum=0.9).step()
    np.testing.assert_allclose(p.data, [1.0 - 0.01 * 2.0 / (np.sqrt(1.0 - 0.25) + 1e-8)])
    with pytest.raises(ValueError, match="alpha must be in"):
        optim.RMSprop([p], alpha=1.5)


def _schedulers(lib, opt):
    return {
        "multistep": lambda: lib.MultiStepLR(opt, milestones=[2, 5, 5, 7], gamma=0.5),
        "exponential": lambda: lib.ExponentialLR(opt, gamma=0.8),
        "lambda": lambda: lib.LambdaLR(opt, lambda e: 1.0 / (1 + e)),
    }


@pytest.mark.parametrize("kind", ["multistep", "exponential", "lambda"])
def test_epoch_schedulers_match_torch_and_by_hand(kind):
    torch = pytest.importorskip("torch")
    p_ours, p_theirs = nn.Parameter(np.zeros(1)), torch.zeros(1, requires_grad=True)
    opt_o, opt_t = optim.SGD([p_ours], lr=0.1), torch.optim.SGD([p_theirs], lr=0.1)
    ours = _schedulers(optim, opt_o)[kind]()
    theirs = _schedulers(torch.optim.lr_scheduler, opt_t)[kind]()
    for _ in range(10):
        assert ours.get_last_lr()[0] == pytest.approx(theirs.get_last_lr()[0], rel=1e-12)
        opt_o.step(), opt_t.step(), ours.step(), theirs.step()


def test_epoch_schedulers_by_hand():
    opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    lrs = []
    sched = optim.MultiStepLR(opt, [2, 4], gamma=0.1)
    for _ in range(6):
        lrs.append(sched.get_last_lr()[0])
        sched.step()
    np.testing.assert_allclose(lrs, [1, 1, 0.1, 0.1, 0.01, 0.01])
    opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=2.0)
    sched = optim.ExponentialLR(opt, 0.5)
    sched.step(), sched.step()
    assert opt.param_groups[0]["lr"] == 0.5


PLATEAU_METRICS = [5.0, 4.0, 4.0, 4.0, 3.9999, 4.5, 4.5, 4.5, 1.0, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("kwargs", [
    dict(patience=1), dict(patience=0, cooldown=2, factor=0.5),
    dict(mode="max", patience=1, threshold_mode="abs", threshold=0.1, min_lr=0.02)], ids=str)
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    opt_o = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    opt_t = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ours = optim.ReduceLROnPlateau(opt_o, **kwargs)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(opt_t, **kwargs)
    for metric in PLATEAU_METRICS:
        ours.step(metric)
        theirs.step(metric)
        assert opt_o.param_groups[0]["lr"] == pytest.approx(opt_t.param_groups[0]["lr"])


def test_reduce_lr_on_plateau_by_hand():
    opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    lrs = []
    for metric in [3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0]:
        sched.step(metric)
        lrs.append(opt.param_groups[0]["lr"])
    # bad epochs after 2.0: 1, 2 (> patience: halve, reset), 1, 2 (halve), then better
    assert lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


@pytest.mark.parametrize("make", [
    lambda o: optim.MultiStepLR(o, [1, 3]), lambda o: optim.ExponentialLR(o, 0.7),
    lambda o: optim.LambdaLR(o, lambda e: 0.9 ** e),
    lambda o: optim.ReduceLROnPlateau(o, patience=0, factor=0.5)])
def test_scheduler_state_dict_through_save_equals_uninterrupted(make, tmp_path):
    metrics = [3.0, 3.0, 2.0, 2.0, 2.0, 2.0]

    def advance(sched, values):
        for v in values:
            sched.step(v) if isinstance(sched, optim.ReduceLROnPlateau) else sched.step()

    opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    full = make(opt)
    advance(full, metrics)
    opt2 = optim.SGD([nn.Parameter(np.zeros(1))], lr=1.0)
    first = make(opt2)
    advance(first, metrics[:3])
    tn.save({"opt": opt2.state_dict(), "sched": first.state_dict()}, tmp_path / "s.npz")
    saved = tn.load(tmp_path / "s.npz")
    opt3 = optim.SGD([nn.Parameter(np.zeros(1))], lr=5.0)
    opt3.load_state_dict(saved["opt"])
    resumed = make(opt3)
    resumed.load_state_dict(saved["sched"])
    advance(resumed, metrics[3:])
    assert opt3.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert resumed.get_last_lr() == full.get_last_lr()


def _fit_setup():
    tn.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=1e-3)
    sched = optim.ReduceLROnPlateau(opt, patience=0, factor=0.5, threshold=0.5)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=16)
    return model, opt, sched, loader


def test_fit_steps_reduce_lr_on_plateau_with_the_validation_loss(tmp_path):
    model, opt, sched, loader = _fit_setup()
    # threshold 0.5: no epoch improves on the first by half, so lr halves after every
    # epoch from the second on (the first sets best); history["lr"] is the lr at the start
    history = tn.fit(model, loader, F.cross_entropy, opt, 4, scheduler=sched,
                     val_loader=loader, progress=False)
    assert history["lr"] == [1e-3, 1e-3, 5e-4, 2.5e-4]
    assert sched.best == history["val_loss"][0]            # it saw the validation losses
    # resumed from a checkpoint after 2 epochs: the same history
    model, opt, sched, loader = _fit_setup()
    tn.fit(model, loader, F.cross_entropy, opt, 2, scheduler=sched, val_loader=loader,
           progress=False, checkpoint=tmp_path / "run.npz")
    model, opt, sched, loader = _fit_setup()
    resumed = tn.fit(model, loader, F.cross_entropy, opt, 4, scheduler=sched,
                     val_loader=loader, progress=False, checkpoint=tmp_path / "run.npz")
    assert resumed == history
    with pytest.raises(ValueError, match="ReduceLROnPlateau .* pass val_loader"):
        tn.fit(model, loader, F.cross_entropy, opt, 1, scheduler=sched, progress=False)
