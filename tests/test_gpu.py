"""The GPU path.

Without CuPy and a GPU the GPU tests skip (with the reason), and what the GPU path shares
with the CPU (the array-generic im2col convolution and average pooling, the array-generic
max-pool backward of gpu_cupy.py) is run here with NumPy against the reference loops.

With a GPU: every op's output and gradients on 'cuda' equal the CPU's in float64, the
max-pool CUDA kernel equals the reference, and a training step moves nothing between host
and device (counted by wrapping backend.to_cpu / backend.to_gpu)."""
import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import backend, nn, optim
from tinynet.kernels import gpu_cupy, reference as ref

needs_gpu = pytest.mark.skipif(not tn.cuda_available(),
                               reason="needs CuPy and an NVIDIA GPU (pip install -e '.[gpu]')")


# ---- runs everywhere: the code the GPU path shares, with NumPy --------------------------------

def test_gpu_module_imports_without_cupy():
    """Importing the GPU kernels must not need CuPy (the dispatch imports them lazily)."""
    assert callable(gpu_cupy.max_pool2d_forward)


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, dilation, groups", [
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((2, 4, 8, 7), (6, 2, 3, 2), (2, 1), (1, 0), (1, 2), 2),
    ((2, 4, 6, 6), (8, 1, 3, 3), (1, 2), (1, 1), (1, 1), 4),     # depthwise, multiplier 2
])
def test_shared_conv_code_with_numpy(x_shape, w_shape, stride, padding, dilation, groups):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    geometry = (stride, padding, dilation, groups)
    y = gpu_cupy.conv2d_forward(x, w, *geometry)[0]
    np.testing.assert_allclose(y, ref.conv2d_forward(x, w, *geometry)[0], atol=1e-12)
    gy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(gpu_cupy.conv2d_backward_input(gy, w, x_shape, *geometry),
                               ref.conv2d_backward_input(gy, w, x_shape, *geometry), atol=1e-12)
    np.testing.assert_allclose(gpu_cupy.conv2d_backward_weight(gy, x, w_shape, *geometry),
                               ref.conv2d_backward_weight(gy, x, w_shape, *geometry), atol=1e-12)


@pytest.mark.parametrize("kernel, stride, padding", [
    ((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (1, 1)), ((3, 2), (2, 1), (1, 0))])
def test_shared_pool_code_with_numpy(kernel, stride, padding):
    """Overlapping windows (stride < kernel) make the scatter-add sum repeated targets."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 6))
    y_ref, argmax = ref.max_pool2d_forward(x, kernel, stride, padding)
    gy = rng.standard_normal(y_ref.shape)
    np.testing.assert_allclose(gpu_cupy.max_pool2d_backward(gy, argmax, x.shape),
                               ref.max_pool2d_backward(gy, argmax, x.shape), atol=1e-12)
    np.testing.assert_allclose(gpu_cupy.avg_pool2d_forward(x, kernel, stride, padding),
                               ref.avg_pool2d_forward(x, kernel, stride, padding), atol=1e-12)
    np.testing.assert_allclose(gpu_cupy.avg_pool2d_backward(gy, x.shape, kernel, stride, padding),
                               ref.avg_pool2d_backward(gy, x.shape, kernel, stride, padding),
                               atol=1e-12)


def test_cuda_without_gpu_says_what_to_install():
    if tn.cuda_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="install"):
        tn.tensor(np.ones(3)).to("cuda")
    with pytest.raises(RuntimeError, match="install"):
        nn.Linear(2, 2).to("cuda")


# ---- with a GPU ---------------------------------------------------------------------------------

def _rng_arrays(rng, *shapes):
    return [rng.standard_normal(s) for s in shapes]


# name -> (function of tensors, input shapes); inputs kept away from kinks by random floats
OPS = {
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1),
               [(2, 3, 6, 6), (4, 3, 3, 3), (4,)]),
    "conv2d_strided_dilated_groups": (
        lambda x, w: F.conv2d(x, w, stride=2, padding=1, dilation=2, groups=2),
        [(2, 4, 7, 7), (6, 2, 3, 3)]),
    "conv2d_depthwise": (lambda x, w: F.conv2d(x, w, padding=1, groups=4),
                         [(2, 4, 5, 5), (4, 1, 3, 3)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), [(2, 3, 6, 6)]),
    "max_pool2d_overlapping": (lambda x: F.max_pool2d(x, 3, stride=1, padding=1),
                               [(2, 3, 5, 5)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, stride=2, padding=1), [(2, 3, 6, 6)]),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (2, 3)), [(2, 3, 5, 7)]),
    "global_avg_pool2d": (lambda x: F.global_avg_pool2d(x), [(2, 3, 4, 4)]),
    "linear": (lambda x, w, b: F.linear(x, w, b), [(3, 4), (5, 4), (5,)]),
    "relu": (lambda x: F.relu(x), [(3, 4)]),
    "sigmoid": (lambda x: F.sigmoid(x), [(3, 4)]),
    "tanh": (lambda x: F.tanh(x), [(3, 4)]),
    "softmax": (lambda x: F.softmax(x, axis=-1), [(3, 4)]),
    "log_softmax": (lambda x: F.log_softmax(x, axis=-1), [(3, 4)]),
    "mse_loss": (lambda a, b: F.mse_loss(a, b), [(3, 4), (3, 4)]),
    "math": (lambda a, b: (F.exp(a) * b + a / (1 + b * b)).sum(axis=1), [(3, 4), (3, 4)]),
}


@needs_gpu
@pytest.mark.parametrize("name", sorted(OPS))
def test_gpu_op_matches_cpu(name):
    fn, shapes = OPS[name]
    rng = np.random.default_rng(2)
    arrays = _rng_arrays(rng, *shapes)
    results = {}
    for device in ("cpu", "cuda"):
        inputs = [tn.tensor(a, requires_grad=True, device=device) for a in arrays]
        out = fn(*inputs)
        upstream = tn.tensor(np.random.default_rng(3).standard_normal(out.shape),
                             device=device)
        out.backward(upstream.data)
        results[device] = [out.numpy()] + [t.grad if device == "cpu" else
                                           backend.to_cpu(t.grad) for t in inputs]
        assert out.device == device
    for cpu, gpu in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-9, atol=1e-10)


@needs_gpu
def test_cross_entropy_on_gpu_matches_cpu():
    rng = np.random.default_rng(4)
    logits, labels = rng.standard_normal((5, 4)), np.array([0, 3, 1, 1, 2])
    grads = {}
    for device in ("cpu", "cuda"):
        x = tn.tensor(logits, requires_grad=True, device=device)
        loss = F.cross_entropy(x, backend.move(labels, device))
        loss.backward()
        grads[device] = (loss.item(), backend.to_cpu(x.grad))
    assert grads["cuda"][0] == pytest.approx(grads["cpu"][0], rel=1e-12)
    np.testing.assert_allclose(grads["cuda"][1], grads["cpu"][1], atol=1e-12)


@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_cuda_kernel_matches_reference(dtype):
    rng = np.random.default_rng(5)
    for kernel, stride, padding in [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 1), (1, 1))]:
        x = rng.integers(-2, 3, size=(2, 3, 7, 8)).astype(dtype)       # many ties
        y, argmax = gpu_cupy.max_pool2d_forward(backend.to_gpu(x), kernel, stride, padding)
        y_ref, argmax_ref = ref.max_pool2d_forward(x, kernel, stride, padding)
        np.testing.assert_array_equal(backend.to_cpu(argmax), argmax_ref)
        np.testing.assert_array_equal(backend.to_cpu(y), y_ref)


@needs_gpu
def test_training_step_makes_no_host_device_copy(monkeypatch):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 3)).to("cuda")
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(6)
    x = tn.tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32), device="cuda")
    labels = backend.to_gpu(np.array([0, 1, 2, 1]))
    copies = []
    for name in ("to_cpu", "to_gpu"):
        real = getattr(backend, name)
        monkeypatch.setattr(backend, name,
                            lambda array, real=real, name=name: copies.append(name) or real(array))
    for _ in range(2):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
    assert copies == []
    assert all(p.device == "cuda" and p.grad is not None and backend.is_cupy_array(p.grad)
               for p in model.parameters())
