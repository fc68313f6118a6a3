"""tn.save / tn.load: round trips, atomic writes, and clear errors that name the file."""
import os
import pickle

import numpy as np
import pytest

import tinynet as tn
from tinynet import io, nn, optim


def make_model():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_state_dict_round_trip(tmp_path):
    model = make_model()
    path = tmp_path / "model.npz"
    tn.save(model.state_dict(), path)
    loaded = tn.load(path)
    assert list(loaded) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert loaded[k].dtype == v.dtype and np.array_equal(loaded[k], v)
    other = make_model()
    other.load_state_dict(loaded)
    x = tn.tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    model.eval(), other.eval()
    np.testing.assert_array_equal(model(x).numpy(), other(x).numpy())
    with np.load(path, allow_pickle=False) as plain:    # a plain npz anyone can read
        assert set(plain.files) == set(loaded)


def test_checkpoint_round_trip(tmp_path):
    model = make_model()
    opt = optim.Adam(model.parameters(), lr=0.01)
    loss = model(tn.tensor(np.ones((4, 3), np.float32))).sum()
    loss.backward()
    opt.step()
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
            "note": "after epoch 3", "history": [1.5, 0.5], "betas": (0.9, 0.999), "none": None}
    path = tmp_path / "ckpt.npz"
    tn.save(ckpt, path)
    back = tn.load(path)
    assert back["epoch"] == 3 and back["note"] == "after epoch 3" and back["none"] is None
    assert back["history"] == [1.5, 0.5] and back["betas"] == (0.9, 0.999)
    assert list(back["model"]) == list(ckpt["model"])
    assert set(back["optimizer"]["state"]) == set(range(len(list(model.parameters()))))
    restored = optim.Adam(make_model().parameters(), lr=0.01)
    restored.load_state_dict(back["optimizer"])
    assert restored.param_groups[0]["betas"] == (0.9, 0.999)


def test_tensors_are_saved_as_arrays(tmp_path):
    tn.save({"w": tn.tensor(np.arange(3.0))}, tmp_path / "t.npz")
    np.testing.assert_array_equal(tn.load(tmp_path / "t.npz")["w"], np.arange(3.0))


def test_failed_write_leaves_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    tn.save({"w": np.arange(4.0)}, path)
    old_bytes = path.read_bytes()

    def crash(file, arrays):
        file.write(b"PK\x03\x04 half a file")       # some bytes, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(io, "_write_npz", crash)
    with pytest.raises(OSError, match="disk full"):
        tn.save({"w": np.zeros(1000)}, path)
    assert path.read_bytes() == old_bytes
    assert os.listdir(tmp_path) == ["model.npz"]       # no temporary file left behind
    np.testing.assert_array_equal(tn.load(path)["w"], np.arange(4.0))


def test_missing_file_names_it(tmp_path):
    path = tmp_path / "nowhere.npz"
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        tn.load(path)
    with pytest.raises(FileNotFoundError, match="no_folder"):
        tn.save({"w": np.zeros(1)}, tmp_path / "no_folder" / "w.npz")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_file_names_it(tmp_path, keep):
    path = tmp_path / "model.npz"
    tn.save(make_model().state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ValueError, match="model.npz"):
        tn.load(path)


def test_empty_file_names_it(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.npz"):
        tn.load(path)


def test_pickle_file_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"w": np.zeros(2)}))
    with pytest.raises(ValueError, match=r"evil\.npz.*pickle"):
        tn.load(path)


def test_npz_with_object_array_is_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, w=np.zeros(2), obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"objects\.npz.*pickle"):
        tn.load(path)


def test_save_refuses_what_would_need_pickle(tmp_path):
    with pytest.raises(TypeError, match="object"):
        tn.save({"w": np.array([None, 1], dtype=object)}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="set"):
        tn.save({"w": np.zeros(1), "bad": {1, 2}}, tmp_path / "x.npz")
    assert not os.listdir(tmp_path)


def test_npy_file_is_refused_with_its_name(tmp_path):
    path = tmp_path / "single.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError, match=r"single\.npy.*npz"):
        tn.load(path)


def test_load_names_a_text_file_and_a_foreign_zip_member(tmp_path):
    # once: a text file "holds pickled Python objects"; a non-.npy member came back as bytes
    import zipfile
    text = tmp_path / "notes.npz"
    text.write_text("epoch 3, loss 0.12\n")
    with pytest.raises(ValueError, match=r"is a text file \(it starts with 'epoch 3,'\)"):
        tn.load(text)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="is an empty file"):
        tn.load(empty)
    foreign = tmp_path / "foreign.npz"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("readme.txt", b"hello")
    with pytest.raises(ValueError, match="member 'readme.txt' is not a .npy array"):
        tn.load(foreign)
