"""DataLoader batching, shuffling and drop_last; ImageFolder; transforms."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import data


def numbers(n=10):
    return data.TensorDataset(np.arange(n * 2, dtype=np.float32).reshape(n, 2), np.arange(n))


def test_tensor_dataset():
    ds = numbers()
    assert len(ds) == 10
    x, y = ds[3]
    np.testing.assert_array_equal(x, [6.0, 7.0])
    assert y == 3
    with pytest.raises(ValueError, match="same length"):
        data.TensorDataset(np.zeros(3), np.zeros(4))


def test_batches_in_order_with_last_partial_batch():
    loader = data.DataLoader(numbers(), batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    xs, ys = batches[0]
    assert xs.shape == (4, 2) and xs.dtype == np.float32 and ys.dtype == np.int64
    np.testing.assert_array_equal(ys, [0, 1, 2, 3])
    np.testing.assert_array_equal(batches[2][1], [8, 9])


def test_drop_last():
    loader = data.DataLoader(numbers(), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(y) for _, y in loader] == [4, 4]


def test_shuffle_is_a_permutation_new_each_epoch_and_repeatable_with_seed():
    def epochs(loader, n=3):
        return [np.concatenate([y for _, y in loader]) for _ in range(n)]
    a = epochs(data.DataLoader(numbers(), batch_size=3, shuffle=True, seed=7))
    b = epochs(data.DataLoader(numbers(), batch_size=3, shuffle=True, seed=7))
    for e in a:
        assert sorted(e) == list(range(10))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))      # same seed, same orders
    assert not np.array_equal(a[0], a[1])                         # a new order each epoch
    assert not np.array_equal(a[0], np.arange(10))
    tn.manual_seed(3)                                      # without seed: manual_seed
    c = epochs(data.DataLoader(numbers(), batch_size=3, shuffle=True), 1)
    tn.manual_seed(3)
    d = epochs(data.DataLoader(numbers(), batch_size=3, shuffle=True), 1)
    assert np.array_equal(c[0], d[0])


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        data.DataLoader(numbers(), batch_size=0)


def write_png(path, color, size=(6, 5)):
    from PIL import Image
    array = np.zeros(size + (3,), np.uint8)
    array[...] = color
    Image.fromarray(array).save(path)


def test_image_folder(tmp_path):
    for cls, color in (("dog", (200, 10, 10)), ("cat", (10, 200, 10))):
        (tmp_path / cls).mkdir()
        for i in range(2):
            write_png(tmp_path / cls / f"{i}.png", color)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    ds = data.ImageFolder(tmp_path)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert [(p.split("/")[-2:], t) for p, t in
            [(str(p), t) for p, t in ds.samples]] == [(["cat", "0.png"], 0), (["cat", "1.png"], 0),
                                                       (["dog", "0.png"], 1), (["dog", "1.png"], 1)]
    image, label = ds[2]
    assert image.shape == (6, 5, 3) and image.dtype == np.uint8 and label == 1
    assert tuple(image[0, 0]) == (200, 10, 10)
    ds = data.ImageFolder(tmp_path, transform=data.Compose([data.ToArray(),
                                                            data.Normalize([0.5] * 3, [0.5] * 3)]))
    images, labels = next(iter(data.DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 3, 6, 5) and images.dtype == np.float32
    np.testing.assert_allclose(images[0, :, 0, 0], (np.array([10, 200, 10]) / 255 - 0.5) / 0.5,
                               rtol=1e-6)
    np.testing.assert_array_equal(labels, [0, 0, 1, 1])


def test_image_folder_missing_or_empty_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        data.ImageFolder(tmp_path / "nothing_here")
    with pytest.raises(ValueError, match=str(tmp_path)):
        data.ImageFolder(tmp_path)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="no images"):
        data.ImageFolder(tmp_path)


def test_transforms():
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    assert data.Resize(2)(image).shape == (2, 3, 3)               # shorter side to 2
    assert data.Resize((5, 7))(image).shape == (5, 7, 3)
    np.testing.assert_array_equal(data.CenterCrop(2)(image), image[1:3, 2:4])
    flipped = data.RandomHorizontalFlip(p=1.0)(image)
    np.testing.assert_array_equal(flipped, image[:, ::-1])
    np.testing.assert_array_equal(data.RandomHorizontalFlip(p=0.0)(image), image)
    tn.manual_seed(0)
    crops = [data.RandomCrop(4, padding=2)(image) for _ in range(20)]
    assert all(c.shape == (4, 4, 3) for c in crops)
    assert any(c.min() == 0 and c.max() > 0 for c in crops)        # some padding shows
    chw = data.ToArray()(image)
    assert chw.shape == (3, 4, 6) and chw.dtype == np.float32
    assert chw[2, 0, 0] == pytest.approx(2 / 255)
    with pytest.raises(ValueError, match="larger"):
        data.CenterCrop(10)(image)
    with pytest.raises(ValueError, match="channels"):
        data.Normalize([0.5] * 3, [0.2] * 3)(np.zeros((2, 4, 4), np.float32))


def test_imagenette_val(shared_data):
    root = shared_data / "imagenette10" / "64" / "val"
    ds = data.ImageFolder(root, transform=data.Compose([data.CenterCrop(56), data.ToArray()]))
    assert len(ds.classes) == 10 and ds.classes[0] == "n01440764"
    assert len(ds) == 3925
    loader = data.DataLoader(ds, batch_size=8, shuffle=True, seed=0)
    images, labels = next(iter(loader))
    assert images.shape == (8, 3, 56, 56) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0 and images.std() > 0.05
    assert labels.dtype == np.int64 and set(labels) <= set(range(10))
