"""End to end: a small model learns, and a long training loop does not grow memory."""
import gc
import tracemalloc

import numpy as np

import tinynet as tn
import tinynet.functional as F
from tinynet import data, nn, optim

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_Y = np.array([0, 1, 1, 0])


def mlp():
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))


def train_step(model, opt, x, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def test_mlp_learns_xor():
    tn.manual_seed(0)
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    x = tn.tensor(XOR_X)
    losses = [train_step(model, opt, x, XOR_Y) for _ in range(300)]
    assert losses[-1] < 0.05 < losses[0]
    assert np.array_equal(model(x).numpy().argmax(axis=1), XOR_Y)


def test_small_cnn_loss_falls_with_adam_and_loader():
    rng = np.random.default_rng(0)
    # Two classes of 6x6 images: a bright vertical or a bright horizontal bar, plus noise.
    images = rng.normal(0, 0.3, (64, 1, 6, 6)).astype(np.float32)
    labels = np.arange(64) % 2
    images[labels == 0, 0, :, 2] += 2.0
    images[labels == 1, 0, 2, :] += 2.0
    tn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 2))
    opt = optim.Adam(model.parameters(), lr=0.01)
    loader = data.DataLoader(data.TensorDataset(images, labels), batch_size=16, shuffle=True, seed=0)
    epoch_losses = []
    for _ in range(6):
        losses = [train_step(model, opt, tn.tensor(x), y) for x, y in loader]
        epoch_losses.append(np.mean(losses))
    assert epoch_losses[-1] < 0.5 * epoch_losses[0]
    model.eval()
    accuracy = (model(tn.tensor(images)).numpy().argmax(axis=1) == labels).mean()
    assert accuracy > 0.9


def live_graph_objects():
    gc.collect()
    # issubclass(type(o)) rather than isinstance: no attribute access on foreign objects
    return sum(issubclass(type(o), (tn.Tensor, tn.Function)) for o in gc.get_objects())


def test_one_thousand_steps_do_not_grow_memory():
    tn.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))
    opt = optim.Adam(model.parameters(), lr=0.01)
    x = tn.tensor(XOR_X)
    for _ in range(20):                         # warm up: optimizer state, caches
        train_step(model, opt, x, XOR_Y)
    objects_before = live_graph_objects()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(1000):
            train_step(model, opt, x, XOR_Y)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert live_graph_objects() <= objects_before
    assert grown < 100_000, f"memory grew by {grown} bytes over 1,000 steps"
