"""python -m demos.imagenet_subset end to end on a small slice of the shared Imagenette."""
import json
import os

import pytest

pytest.importorskip("matplotlib")


def _is_png(path):
    with open(path, "rb") as f:
        return os.path.getsize(path) > 1000 and f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_demo_end_to_end_on_a_slice(shared_data, tmp_path, capsys):
    from demos import imagenet_subset
    out = tmp_path / "out"
    metrics = imagenet_subset.main([
        "--data", str(shared_data / "imagenette10" / "64"), "--out", str(out),
        "--classes", "2", "--train-per-class", "150", "--val-per-class", "40",
        "--epochs", "2", "--batch-size", "32", "--lr", "0.05", "--actmax-steps", "4",
        "--tcav-randoms", "3", "--smoothgrad-samples", "4", "--explain-images", "3"])
    printed = capsys.readouterr().out
    assert "validation top-1" in printed and str(out) in printed
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["val_accuracy"] == metrics["val_accuracy"]
    assert saved["val_accuracy"] > 0.6                      # chance is 0.5
    assert set(saved["per_class_accuracy"]) == {"tench", "English springer"}
    assert saved["epochs"] == 2 and saved["train_seconds"] > 0 and saved["device"] == "cpu"
    assert set(saved["figures"]) == {"training_curves", "confusion_matrix", "grid",
                                     "gradcam_two_classes", "actmax", "tcav",
                                     "sanity_randomization", "sanity_deletion_insertion"}
    for name in saved["figures"].values():
        assert _is_png(out / name), name
    assert set(saved["method_seconds_per_image"]) == {"vanilla_gradient", "smoothgrad",
                                                      "grad_cam", "occlusion"}
    tcav = saved["tcav"]                                     # class -> concept -> layer
    assert set(tcav) == {"tench", "English springer"}
    for per_concept in tcav.values():
        assert set(per_concept) == {"striped", "dotted", "zigzagged"}
        for per_layer in per_concept.values():
            assert len(per_layer) == 2
            for r in per_layer.values():
                assert 0 <= r["score"] <= 1 and 0 <= r["p_value"] <= 1
                assert isinstance(r["significant"], bool) and len(r["scores"]) == 3
    assert set(saved["sanity"]["deletion_auc"]) >= {"vanilla gradient", "Grad-CAM", "occlusion"}
