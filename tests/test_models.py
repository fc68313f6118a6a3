"""Ready architectures: shapes, module names, and the PyTorch twin built from the same code."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import models, nn


def test_reference_cnn_shapes_and_names():
    tn.manual_seed(0)
    model = models.reference_cnn(num_classes=7)
    x = tn.tensor(np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32))
    assert model(x).shape == (2, 7)
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert convs == ["0", "3", "6", "9"]
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes["9.weight"] == (256, 128, 3, 3) and shapes["13.weight"] == (7, 256)


def test_reference_cnn_twin_in_torch_gives_the_same_logits():
    torch = pytest.importorskip("torch")
    tn.manual_seed(0)
    ours = models.reference_cnn()
    theirs = models.reference_cnn(layers=torch.nn)
    state = ours.state_dict()
    assert list(state) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    x = np.random.default_rng(1).random((2, 3, 64, 64), dtype=np.float32)
    with tn.no_grad():
        mine = ours(tn.tensor(x)).numpy()
    np.testing.assert_allclose(mine, theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
