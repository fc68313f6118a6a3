"""tn.fit / tn.evaluate: learning, checkpoints every epoch, exact resume after an interrupt,
clear errors for corrupt checkpoints and bad arguments."""
import os

import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import data, nn, optim


def dataset(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return data.TensorDataset(x, y)


def setup(kind="sgd", seed=0, hidden=16):
    """Model (with dropout and batch norm, so randomness and buffers matter), optimizer,
    scheduler, all made from ``seed``."""
    tn.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                          nn.Dropout(0.2), nn.Linear(hidden, 2))
    if kind == "sgd":
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    else:                                         # Adam with a per-batch OneCycleLR
        opt = optim.Adam(model.parameters(), lr=0.01)
        sched = optim.OneCycleLR(opt, max_lr=0.05, total_steps=4 * 4)
    return model, opt, sched


def loaders(seeded=True):
    train = data.DataLoader(dataset(), batch_size=16, shuffle=True,
                            seed=5 if seeded else None)
    return train, data.DataLoader(dataset(32, seed=1), batch_size=16)


class InterruptingLoader:
    """Wraps a loader and raises KeyboardInterrupt when batch number ``at`` (counting over
    all epochs) is requested, as Ctrl-C in the middle of an epoch would."""

    def __init__(self, loader, at):
        self.loader, self.at, self.seen = loader, at, 0

    def __len__(self):
        return len(self.loader)

    def set_epoch(self, epoch):
        self.loader.set_epoch(epoch)

    def __iter__(self):
        for batch in self.loader:
            if self.seen == self.at:
                raise KeyboardInterrupt
            self.seen += 1
            yield batch


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def parameters(model):           # the learned weights only (a forward pass moves BN's stats)
    return {k: p.numpy().copy() for k, p in model.named_parameters()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def test_loss_falls_and_history_has_one_entry_per_epoch():
    model, opt, sched = setup()
    train, val = loaders()
    history = tn.fit(model, train, F.cross_entropy, opt, 4, scheduler=sched, val_loader=val,
                     progress=False)
    assert set(history) == {"train_loss", "val_loss", "val_accuracy", "lr"}
    assert all(len(v) == 4 for v in history.values())
    assert history["train_loss"][-1] < 0.6 * history["train_loss"][0]
    assert history["val_accuracy"][-1] >= 0.85
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05])        # StepLR per epoch
    assert model.training                                                 # mode restored
    result = tn.evaluate(model, val, F.cross_entropy)
    assert result["loss"] == pytest.approx(history["val_loss"][-1])
    assert result["accuracy"] == history["val_accuracy"][-1]


def test_without_val_loader_val_entries_are_none_and_tensors_are_accepted():
    model, opt, _ = setup()
    ds = dataset(32)
    batches = [(tn.tensor(ds.arrays[0][i:i + 8]), tn.tensor(ds.arrays[1][i:i + 8]))
               for i in range(0, 32, 8)]
    history = tn.fit(model, batches, F.cross_entropy, opt, 2, progress=False, device="cpu")
    assert history["val_loss"] == [None, None] and history["val_accuracy"] == [None, None]


def test_checkpoint_is_written_before_training_and_after_every_epoch(tmp_path):
    path = tmp_path / "run.npz"
    model, opt, sched = setup()
    train, _ = loaders()
    seen = []

    def check(epoch, history):
        state = tn.load(path)
        assert state["epoch"] == epoch == len(history["train_loss"])
        assert_same_weights(state["model"], model.state_dict())
        assert state["history"] == history
        seen.append(epoch)

    class Loader(InterruptingLoader):
        def __iter__(self):
            if not seen:
                assert tn.load(path)["epoch"] == 0        # the starting point is on disk
            return iter(self.loader)

    tn.fit(model, Loader(train, None), F.cross_entropy, opt, 3, scheduler=sched,
           checkpoint=path, progress=False, on_epoch_end=check)
    assert seen == [1, 2, 3]
    assert not [f for f in os.listdir(tmp_path) if f != "run.npz"]    # no temporary files left


@pytest.mark.parametrize("kind", ["sgd", "adam_onecycle"])
@pytest.mark.parametrize("seeded", [True, False])
@pytest.mark.parametrize("where", ["after_epoch_2", "mid_epoch_3", "mid_epoch_1"])
def test_interrupted_then_resumed_run_equals_uninterrupted_run(tmp_path, capsys, kind,
                                                               seeded, where):
    model, opt, sched = setup(kind)
    train, val = loaders(seeded)
    expected = tn.fit(model, train, F.cross_entropy, opt, 4, scheduler=sched, val_loader=val,
                      progress=False)
    expected_weights, expected_opt = weights(model), opt.state_dict()

    path = tmp_path / "run.npz"
    model, opt, sched = setup(kind)
    train, val = loaders(seeded)
    stop = {"after_epoch_2": None, "mid_epoch_3": 2 * 4 + 1, "mid_epoch_1": 2}[where]

    def interrupt(epoch, history):
        if where == "after_epoch_2" and epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tn.fit(model, InterruptingLoader(train, stop), F.cross_entropy, opt, 4, scheduler=sched,
               val_loader=val, checkpoint=path, progress=False, on_epoch_end=interrupt)
    finished = {"after_epoch_2": 2, "mid_epoch_3": 2, "mid_epoch_1": 0}[where]
    err = capsys.readouterr().err
    assert f"holds the state after epoch {finished} of 4" in err and "again to resume" in err
    assert tn.load(path)["epoch"] == finished                 # the checkpoint is intact

    # Resume in a fresh "process": new objects, the generator drawn on in between.
    model, opt, sched = setup(kind, seed=123)
    train, val = loaders(seeded)
    tn.manual_seed(999)
    history = tn.fit(model, train, F.cross_entropy, opt, 4, scheduler=sched, val_loader=val,
                     checkpoint=path, progress=False)
    assert f"resumed from '{path}' after epoch {finished} of 4" in capsys.readouterr().err
    assert history == expected
    assert_same_weights(weights(model), expected_weights)
    resumed_opt = opt.state_dict()
    for i, state in expected_opt["state"].items():
        for name, value in state.items():
            assert np.array_equal(resumed_opt["state"][i][name], value), (i, name)


def test_finished_run_is_not_trained_again(tmp_path, capsys):
    path = tmp_path / "run.npz"
    model, opt, _ = setup()
    train, _ = loaders()
    first = tn.fit(model, train, F.cross_entropy, opt, 2, checkpoint=path, progress=False)
    before = weights(model)
    again = tn.fit(model, train, F.cross_entropy, opt, 2, checkpoint=path, progress=False)
    assert again == first
    assert_same_weights(weights(model), before)
    assert "nothing left to do" in capsys.readouterr().err


def test_corrupt_or_foreign_checkpoint_is_an_error_not_a_silent_restart(tmp_path):
    path = tmp_path / "run.npz"
    model, opt, _ = setup()
    train, _ = loaders()
    tn.fit(model, train, F.cross_entropy, opt, 1, checkpoint=path, progress=False)
    raw = path.read_bytes()
    path.write_bytes(raw[:len(raw) // 2])                     # truncated, as by a full disk
    before = weights(model)
    with pytest.raises(ValueError, match="cannot resume from checkpoint.*run.npz"):
        tn.fit(model, train, F.cross_entropy, opt, 3, checkpoint=path, progress=False)
    assert path.read_bytes() == raw[:len(raw) // 2]           # left as it was
    assert_same_weights(weights(model), before)

    tn.save(model.state_dict(), path)                         # plain weights, not from fit
    with pytest.raises(ValueError, match="not a checkpoint written by fit"):
        tn.fit(model, train, F.cross_entropy, opt, 3, checkpoint=path, progress=False)


def test_checkpoint_of_another_model_changes_nothing(tmp_path):
    path = tmp_path / "run.npz"
    model, opt, sched = setup()
    train, _ = loaders()
    tn.fit(model, train, F.cross_entropy, opt, 1, scheduler=sched, checkpoint=path,
           progress=False)
    other, other_opt, other_sched = setup(hidden=8)
    before = weights(other)
    with pytest.raises(ValueError, match="does not match this model"):
        tn.fit(other, train, F.cross_entropy, other_opt, 2, scheduler=other_sched,
               checkpoint=path, progress=False)
    assert_same_weights(weights(other), before)
    with pytest.raises(ValueError, match="scheduler"):
        tn.fit(model, train, F.cross_entropy, opt, 2, checkpoint=path, progress=False)


def test_progress_bar_only_when_asked(capsys):
    model, opt, _ = setup()
    train, _ = loaders()
    tn.fit(model, train, F.cross_entropy, opt, 1, progress=False)
    assert capsys.readouterr() == ("", "")
    tn.fit(model, train, F.cross_entropy, opt, 2)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "loss=" in err


def test_bad_arguments_raise_before_anything_changes(tmp_path):
    model, opt, _ = setup()
    train, _ = loaders()
    before = weights(model)
    path = tmp_path / "run.npz"
    for epochs in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="epochs must be an int >= 1"):
            tn.fit(model, train, F.cross_entropy, opt, epochs, checkpoint=path)
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        tn.fit(model, train, None, opt, 1)
    with pytest.raises(TypeError, match="optimizer must be"):
        tn.fit(model, train, F.cross_entropy, model.parameters(), 1)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        tn.fit(lambda x: x, train, F.cross_entropy, opt, 1)
    with pytest.raises(TypeError, match="loader must be iterable"):
        tn.fit(model, 42, F.cross_entropy, opt, 1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tn.fit(model, train, F.cross_entropy, opt, 1, checkpoint=tmp_path / "no" / "run.npz")
    assert not path.exists()
    assert_same_weights(weights(model), before)

    before = parameters(model)
    x = np.zeros((4, 4), np.float32)
    with pytest.raises(TypeError, match=r"\(inputs, labels\) pairs; batch 0 is a 3-tuple"):
        tn.fit(model, [(x, np.zeros(4, np.int64), x)], F.cross_entropy, opt, 1, progress=False)
    with pytest.raises(ValueError, match=r"batch 0: inputs of shape \(4, 4\) and labels of "
                                         r"shape \(3,\)"):
        tn.fit(model, [(x, np.zeros(3, np.int64))], F.cross_entropy, opt, 1, progress=False)
    with pytest.raises(ValueError, match="no batches"):
        tn.fit(model, [], F.cross_entropy, opt, 1, progress=False)
    with pytest.raises(ValueError, match="scalar"):
        tn.fit(model, [(x, np.zeros(4, np.int64))],
               lambda out, y: F.cross_entropy(out, y, reduction="none"), opt, 1, progress=False)
    assert_same_weights(parameters(model), before)


def test_non_finite_loss_stops_before_updating(tmp_path):
    path = tmp_path / "run.npz"
    model, opt, _ = setup()
    train, _ = loaders()
    tn.fit(model, train, F.cross_entropy, opt, 1, checkpoint=path, progress=False)
    before = parameters(model)
    with pytest.raises(FloatingPointError, match="loss is nan in epoch 2, batch 0"):
        tn.fit(model, train, lambda out, y: F.cross_entropy(out, y) * float("nan"), opt, 2,
               checkpoint=path, progress=False)
    assert_same_weights(parameters(model), before)
    assert tn.load(path)["epoch"] == 1


def test_evaluate_loss_and_accuracy_by_hand():
    model = nn.Linear(2, 2)
    model.weight.data = np.eye(2, dtype=np.float32)
    model.bias.data = np.zeros(2, np.float32)
    x = np.array([[2, 0], [0, 2], [3, 1], [1, 3]], np.float32)    # predicted classes 0, 1, 0, 1
    y = np.array([0, 1, 1, 1])
    loader = [(x[:3], y[:3]), (x[3:], y[3:])]
    model.train()
    result = tn.evaluate(model, loader, F.cross_entropy)
    assert result["accuracy"] == 0.75
    assert result["loss"] == pytest.approx(F.cross_entropy(model(tn.tensor(x)), y).item())
    assert model.training                                      # mode restored
    assert tn.evaluate(model, loader)["loss"] is None
    regression = [(x, np.zeros((4, 2), np.float32))]
    assert tn.evaluate(model, regression, F.mse_loss)["accuracy"] is None


def test_dataloader_set_epoch_reproduces_the_order_of_that_epoch():
    def orders(loader, k):
        return [np.concatenate([b[0] for b in loader]) for _ in range(k)]

    ds = data.TensorDataset(np.arange(10))
    plain = orders(data.DataLoader(ds, batch_size=3, shuffle=True, seed=4), 4)
    rng = np.random.default_rng(4)                             # unchanged: one stream
    assert all(np.array_equal(o, rng.permutation(10)) for o in plain)
    loader = data.DataLoader(ds, batch_size=3, shuffle=True, seed=4)
    next(iter(loader))                                         # an epoch cut short
    loader.set_epoch(2)
    assert np.array_equal(orders(loader, 1)[0], plain[2])
    loader.set_epoch(3)                                        # already there: no replay
    assert np.array_equal(orders(loader, 1)[0], plain[3])
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        loader.set_epoch(-1)
