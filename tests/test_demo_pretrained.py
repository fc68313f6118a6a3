"""python -m demos.imagenet_subset --pretrained: finding the weights, and an end-to-end run of
the smallest MobileNet on a slice of the shared Imagenette."""
import functools
import http.server
import json
import os
import socket
import threading

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

import tinynet as tn                                    # noqa: E402
from tinynet import models                              # noqa: E402
from demos import imagenet_pretrained, imagenet_subset  # noqa: E402

NAME = "mobilenet_v1_0.25_128"
FILE = models.PRETRAINED[NAME]["file"]


def _is_png(path):
    with open(path, "rb") as f:
        return os.path.getsize(path) > 1000 and f.read(8) == b"\x89PNG\r\n\x1a\n"


def _shared_model(shared_data, file=FILE):
    path = shared_data / "models" / file
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- finding the weights ------------------------------------------------------------------------

def test_a_name_resolves_to_the_shared_file(shared_data):
    path = _shared_model(shared_data)
    assert os.path.samefile(imagenet_pretrained.resolve_weights(NAME), path)
    v2 = _shared_model(shared_data, models.PRETRAINED["mobilenet_v2_1.0_224"]["file"])
    assert os.path.samefile(imagenet_pretrained.resolve_weights("mobilenet_v2"), v2)
    assert imagenet_pretrained.resolve_weights(str(path)) == str(path)      # a path as it is


def test_an_unknown_name_lists_the_known_ones(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown model 'mobilenet_v3'") as err:
        imagenet_pretrained.resolve_weights("mobilenet_v3")
    for name in list(models.PRETRAINED) + ["mobilenet_v2"]:
        assert name in str(err.value)
    with pytest.raises(SystemExit, match="known names: mobilenet_v1_0.25_128"):
        imagenet_subset.main(["--pretrained", "mobilenet_v3", "--out", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="no file at 'nowhere/model.tflite'"):
        imagenet_pretrained.resolve_weights("nowhere/model.tflite")


def test_offline_fetch_fails_clearly_and_leaves_nothing(monkeypatch, tmp_path):
    """Not in the models folder, not in the cache, and the URL unreachable (a closed local
    port, never the internet): the error says so and how to pass a local file."""
    monkeypatch.setenv("TINYNET_CACHE", str(tmp_path / "cache"))
    url = f"http://127.0.0.1:{_closed_port()}/{FILE}"
    monkeypatch.setitem(models.PRETRAINED, NAME, {**models.PRETRAINED[NAME], "url": url})
    empty = tmp_path / "models"
    empty.mkdir()
    with pytest.raises(ConnectionError, match=f"No network.*--pretrained PATH/{FILE}"):
        imagenet_pretrained.resolve_weights(NAME, models_dir=str(empty), progress=False)
    assert os.listdir(tmp_path / "cache" / "models") == []
    monkeypatch.setattr(imagenet_pretrained, "SHARED_MODELS", str(empty))
    with pytest.raises(SystemExit, match="cannot download .*--pretrained PATH"):
        imagenet_subset.main(["--pretrained", NAME, "--out", str(tmp_path / "out")])


def test_a_name_not_on_disk_is_downloaded_checked_and_cached(shared_data, monkeypatch, tmp_path):
    """Served from a local HTTP server (the shared copy), as from its public URL."""
    source = _shared_model(shared_data)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=source.parent)
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{FILE}"
        monkeypatch.setenv("TINYNET_CACHE", str(tmp_path / "cache"))
        monkeypatch.setitem(models.PRETRAINED, NAME, {**models.PRETRAINED[NAME], "url": url})
        got = imagenet_pretrained.resolve_weights(NAME, models_dir=str(tmp_path), progress=False)
        assert got == str(tmp_path / "cache" / "models" / FILE)
        assert open(got, "rb").read() == source.read_bytes()
        httpd.shutdown()                                  # the second time: from the cache
        assert imagenet_pretrained.resolve_weights(NAME, models_dir=str(tmp_path)) == got
    finally:
        httpd.server_close()


def test_imagenet_indices_match_classes_tsv(shared_data):
    rows = (shared_data / "imagenette10" / "classes.tsv").read_text().splitlines()[1:]
    assert {r.split("\t")[0]: int(r.split("\t")[1]) for r in rows} == \
        imagenet_pretrained.IMAGENET_INDEX
    labels = models.read_labels(shared_data / "models" / "imagenet_labels.txt")
    names = [r.split("\t")[2] for r in rows]
    assert [labels[i + 1].split(",")[0] for i in imagenet_pretrained.IMAGENET_INDEX.values()] \
        == names


def test_tflite_input_is_mobilenet_input(rng):
    images = rng.integers(0, 256, size=(2, 3, 5, 4), dtype=np.uint8)
    expected = models.mobilenet_input(images.transpose(0, 2, 3, 1)).numpy()
    to_input = imagenet_pretrained.TFLiteInput()
    np.testing.assert_array_equal(to_input(images), expected)
    # [0, 1] images (activation maximization's) through the BatchNormalize mean and std
    np.testing.assert_allclose(to_input(images / 255.0), expected, atol=1e-6)


# ---- the demo, end to end ------------------------------------------------------------------------

@pytest.mark.slow
def test_pretrained_demo_end_to_end_on_a_slice(shared_data, tmp_path, capsys):
    model_path = _shared_model(shared_data)
    out = tmp_path / "out"
    metrics = imagenet_subset.main([
        "--pretrained", NAME, "--out", str(out), "--classes", "2", "--val-per-class", "4",
        "--explain-images", "3", "--smoothgrad-samples", "3", "--actmax-steps", "3",
        "--tcav-randoms", "3", "--tcav-images", "20"])
    printed = capsys.readouterr().out
    assert "1000-way top-1" in printed and str(out) in printed
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["val_top1"] == metrics["val_top1"] and saved["device"] == "cpu"
    assert set(saved["figures"]) == {"grid", "gradcam_two_classes", "actmax", "tcav",
                                     "sanity_randomization", "sanity_deletion_insertion"}
    for name in saved["figures"].values():
        assert _is_png(out / name), name

    # top-1 computed independently: Pillow bilinear to 128 px, (x - 128) / 128, argmax over
    # logits 1..1000 against the ImageNet index of classes.tsv
    rows = (shared_data / "imagenette10" / "classes.tsv").read_text().splitlines()[1:]
    index = {r.split("\t")[0]: int(r.split("\t")[1]) for r in rows}
    val = shared_data / "imagenette10" / "128" / "val"
    photos = [(val / w / f, index[w]) for w in sorted(os.listdir(val))[:2]
              for f in sorted(os.listdir(val / w))[:4]]
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((128, 128),
                                                                      Image.BILINEAR))
                       for p, _ in photos])
    model = models.load_tflite(model_path)
    with tn.no_grad():
        pred = model(models.mobilenet_input(images)).numpy()[:, 1:].argmax(axis=1)
    truth = np.array([i for _, i in photos])
    assert saved["val_images"] == 8
    assert saved["val_correct"] == int((pred == truth).sum())
    assert saved["val_top1"] == pytest.approx((pred == truth).mean())
    labels = models.read_labels(shared_data / "models" / "imagenet_labels.txt")
    for shown in saved["grid_images"]:              # titles name the ImageNet classes
        i = shown["index"]
        assert shown["pred"] == labels[pred[i] + 1].split(",")[0]
        assert shown["true"] == labels[truth[i] + 1].split(",")[0]
    assert set(saved["per_class_top1"]) == {"tench", "English springer"}
    assert saved["layers"]["grad_cam"] == "features.13"

    tcav = saved["tcav"]                                # class -> concept -> layer
    assert set(tcav) == {"tench", "English springer"}
    for per_concept in tcav.values():
        assert set(per_concept) == {"striped", "dotted", "zigzagged"}
        for per_layer in per_concept.values():
            assert set(per_layer) == {"features.13", "pool"}
            for r in per_layer.values():
                assert 0 <= r["score"] <= 1 and len(r["scores"]) == 3
    randomization = saved["sanity"]["randomization"]["Grad-CAM"]
    assert randomization["layers"][0] == "classifier" and len(randomization["layers"]) == 15
