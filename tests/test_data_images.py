"""ImageFolder on awkward files, the decoded cache, ArrayDataset and the batch augmentations."""
import warnings

import numpy as np
import pytest

import tinynet as tn
from tinynet import data


@pytest.fixture
def folder(tmp_path):
    """root/a: an RGB JPEG, a grayscale PNG, a truncated JPEG, a text file named .jpg;
    root/b: an RGBA PNG and a CMYK JPEG; root/empty: nothing."""
    from PIL import Image
    rng = np.random.default_rng(0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "empty").mkdir()
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a" / "1_rgb.png")
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "a" / "2_gray.png")
    Image.fromarray(rgb).save(tmp_path / "a" / "3_full.jpg", quality=95)
    whole = (tmp_path / "a" / "3_full.jpg").read_bytes()
    (tmp_path / "a" / "4_truncated.jpg").write_bytes(whole[:len(whole) // 2])
    (tmp_path / "a" / "5_not_an_image.jpg").write_text("hello")
    rgba = np.dstack([rgb, np.r_[np.zeros((4, 8)), np.full((4, 8), 255)].astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b" / "1_alpha.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "b" / "2_cmyk.jpg")
    return tmp_path, rgb


def test_bad_files_are_skipped_with_their_names(folder):
    root, rgb = folder
    with pytest.warns(UserWarning) as caught:
        ds = data.ImageFolder(root, cache=True)
    messages = [str(w.message) for w in caught]
    assert any("empty" in m and "without images" in m for m in messages)
    assert any("4_truncated.jpg" in m for m in messages)
    assert any("5_not_an_image.jpg" in m for m in messages)
    assert any("skipped 2 unreadable" in m for m in messages)
    assert ds.classes == ["a", "b", "empty"]
    assert len(ds) == 5 and ds.images.shape == (5, 8, 8, 3) and ds.images.dtype == np.uint8
    assert [t for _, t in ds.samples] == ds.targets == [0, 0, 0, 1, 1]
    np.testing.assert_array_equal(ds.images[0], rgb)
    gray = ds.images[1]                                   # grayscale: three equal channels
    np.testing.assert_array_equal(gray[:, :, 0], rgb[:, :, 0])
    np.testing.assert_array_equal(gray[:, :, 1], gray[:, :, 2])
    alpha = ds.images[3]                                  # transparent top half over white
    assert (alpha[:4] == 255).all()
    np.testing.assert_array_equal(alpha[4:], rgb[4:])
    assert abs(ds.images[4].astype(int) - rgb).mean() < 30   # CMYK JPEG back to RGB


def test_uncached_reads_replace_a_bad_file_by_the_next(folder):
    root, _ = folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = data.ImageFolder(root)
    assert len(ds) == 7
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image, label = ds[3]
    named = " ".join(str(w.message) for w in caught)
    assert "4_truncated.jpg" in named and "5_not_an_image.jpg" in named
    assert image.shape == (8, 8, 3) and label == 1        # 5 is bad too: b/1_alpha.png


def test_cached_equals_decoded_and_array_dataset(folder):
    root, _ = folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cached = data.ImageFolder(root, cache=True)
        plain = data.ImageFolder(root)
    good = [i for i, (p, _) in enumerate(plain.samples) if p not in cached.skipped]
    for i, j in enumerate(good):
        image, label = plain[j]
        np.testing.assert_array_equal(cached[i][0], image)
        assert cached[i][1] == label
    arrays = cached.to_array_dataset()
    x, y = arrays.get_batch([0, 3])
    assert x.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(x[1], cached.images[3].transpose(2, 0, 1))
    np.testing.assert_array_equal(y, [0, 1])


def test_resize_while_caching_and_mixed_sizes(tmp_path):
    from PIL import Image
    (tmp_path / "c").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "c" / "1.png")
    Image.new("RGB", (6, 10)).save(tmp_path / "c" / "2.png")
    with pytest.raises(ValueError, match="2.png.*size=\\(h, w\\)"):
        data.ImageFolder(tmp_path, cache=True)
    assert data.ImageFolder(tmp_path, cache=True, size=4).images.shape == (2, 4, 4, 3)


def test_missing_and_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        data.ImageFolder(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no class folders"):
        data.ImageFolder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="no images"):
        data.ImageFolder(tmp_path)


def test_batch_crop_matches_per_image_crop_and_is_seeded():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 3, 8, 8), dtype=np.uint8)
    crop = data.BatchRandomCrop(6, padding=2, padding_mode="reflect")
    tn.manual_seed(1)
    a = crop(x)
    tn.manual_seed(1)
    b = crop(x)
    assert a.shape == (5, 3, 6, 6) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)                      # same seed, same crops
    # each crop is a window of the reflect-padded image at the drawn offsets
    tn.manual_seed(1)
    g = tn.random.get_generator()
    top, left = g.integers(0, 12 - 6 + 1, size=5), g.integers(0, 12 - 6 + 1, size=5)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    for i in range(5):
        np.testing.assert_array_equal(a[i], padded[i, :, top[i]:top[i] + 6, left[i]:left[i] + 6])
    zeros = data.BatchRandomCrop(12, padding=2, padding_mode="constant")(x.astype(np.float32))
    assert zeros.dtype == np.float32 and (zeros[:, :, 0] == 0).all()  # the zero border
    with pytest.raises(ValueError, match="larger than"):
        data.BatchRandomCrop(9)(x)


def test_random_resized_crop_boxes_follow_scale_and_ratio():
    crop = data.BatchRandomResizedCrop(8, scale=(0.3, 0.7), ratio=(0.5, 2.0))
    tn.manual_seed(0)
    top, left, bh, bw = crop.boxes(2000, 40, 50, tn.random.get_generator())
    area = bh * bw / (40 * 50)
    # rounding the sides moves the area and ratio a little; the whole-image fallback is rare
    assert ((area > 0.3 - 0.05) & (area < 0.7 + 0.05)).mean() > 0.99
    assert ((bw / bh > 0.5 * 0.9) & (bw / bh < 2.0 * 1.1)).mean() > 0.99
    assert (top >= 0).all() and (top + bh <= 40).all() and (left >= 0).all()
    assert (left + bw <= 50).all()
    assert 0.45 < area.mean() < 0.55                           # uniform in [0.3, 0.7]
    # log-uniform ratio: symmetric about 1 on a square image (on 40x50 wide boxes fit more
    # often, so the accepted draws lean wide, as torchvision's)
    _, _, bh, bw = crop.boxes(2000, 40, 40, tn.random.get_generator())
    assert np.mean(np.log(bw / bh)) == pytest.approx(0, abs=0.04)


def test_random_resized_crop_is_bilinear_inside_the_box():
    # the whole 2x2 image upsampled to 4x4: source rows at (i + 0.5) / 2 - 0.5, clamped:
    # 0, 0.25, 0.75, 1 -> by hand, rows [a, .75a + .25b, .25a + .75b, b]
    x = np.array([[0.0, 4.0], [8.0, 12.0]], dtype=np.float32).reshape(1, 1, 2, 2)
    up = data.BatchRandomResizedCrop(4, scale=(1, 1), ratio=(1, 1))(x)
    line = np.array([0.0, 1.0, 3.0, 4.0])
    np.testing.assert_allclose(up[0, 0], line[None, :] + 2 * line[:, None])
    rng = np.random.default_rng(0)
    same = rng.integers(0, 256, (3, 3, 7, 7), dtype=np.uint8)
    full = data.BatchRandomResizedCrop(7, scale=(1, 1), ratio=(1, 1))
    np.testing.assert_array_equal(full(same), same)             # box = image, same size
    assert full(same).dtype == np.uint8


def test_random_resized_crop_equals_torch_interpolate_on_each_box():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).uniform(0, 255, (16, 3, 24, 20)).astype(np.float32)
    crop = data.BatchRandomResizedCrop((12, 10), scale=(0.2, 1.0))
    tn.manual_seed(3)
    out = crop(x)
    tn.manual_seed(3)
    top, left, bh, bw = crop.boxes(16, 24, 20, tn.random.get_generator())
    for i in range(16):
        box = torch.from_numpy(x[i:i + 1, :, top[i]:top[i] + bh[i], left[i]:left[i] + bw[i]])
        ref = torch.nn.functional.interpolate(box, size=(12, 10), mode="bilinear",
                                              align_corners=False).numpy()
        np.testing.assert_allclose(out[i:i + 1], ref, rtol=1e-5, atol=1e-3)
    tn.manual_seed(3)
    np.testing.assert_array_equal(crop(x), out)                  # seeded: the same crops


def test_random_resized_crop_rejects_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        data.BatchRandomResizedCrop(8, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="ratio"):
        data.BatchRandomResizedCrop(8, ratio=(0, 1))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        data.BatchRandomResizedCrop(8)(np.zeros((3, 8, 8), np.uint8))


def test_batch_flip_and_normalize():
    x = np.arange(2 * 3 * 2 * 4, dtype=np.uint8).reshape(2, 3, 2, 4)
    np.testing.assert_array_equal(data.BatchRandomFlip(p=1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(data.BatchRandomFlip(p=0.0)(x), x)
    tn.manual_seed(0)
    flipped = data.BatchRandomFlip()(np.repeat(x[:1], 64, axis=0))
    mirrored = [(f == x[0, ..., ::-1]).all() for f in flipped]
    assert 16 < sum(mirrored) < 48                           # about half
    mean, std = data.channel_mean_std(x)
    ref = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, ref.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, ref.std(axis=(0, 2, 3)), rtol=1e-5)
    z = data.BatchNormalize(mean, std)(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_loader_uses_whole_batches():
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    ds = data.ArrayDataset(x, np.arange(10), transform=lambda b: b.astype(np.float32) * 2)
    batches = list(data.DataLoader(ds, batch_size=4))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(batches[1][0].ravel(), [8, 10, 12, 14])
    with pytest.raises(ValueError, match="labels must have shape"):
        data.ArrayDataset(x, np.arange(9))
