"""models.imagenette_cnn: the same model in tinynet and in torch.nn, weights interchangeable."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import models


def test_shapes_and_names():
    model = models.imagenette_cnn(num_classes=7, channels=(4, 8, 8, 16))
    names = dict(model.named_modules())
    assert [type(names[f"features.{i}"]).__name__ for i in (0, 1, 2, 3, 12, 13, 14)] == [
        "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "BatchNorm2d", "ReLU"]
    for size in (56, 64):                       # fully convolutional: crops and full photos
        out = model(tn.tensor(np.zeros((2, 3, size, size), np.float32)))
        assert out.shape == (2, 7)


def test_equals_pytorch_with_the_same_weights():
    torch = pytest.importorskip("torch")
    tn.manual_seed(0)
    ours = models.imagenette_cnn(num_classes=5, channels=(4, 8, 8, 16))
    theirs = models.imagenette_cnn(num_classes=5, channels=(4, 8, 8, 16), layers=torch.nn)
    ours_sd = ours.state_dict()
    assert {k: tuple(v.shape) for k, v in theirs.state_dict().items()} == \
        {k: tuple(np.shape(v)) for k, v in ours_sd.items()}
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    ours.train(), theirs.train()
    ours(tn.tensor(x)), theirs(torch.from_numpy(x))     # move the running statistics
    theirs.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in ours.state_dict().items()})
    ours.eval(), theirs.eval()
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(tn.tensor(x)).numpy(), want, rtol=1e-4, atol=1e-5)
