"""The kernel layer: every implementation equals the reference loops, and the dispatch.

``IMPLEMENTATIONS`` lists the kernel modules that import here (im2col always; numba and
cupy where available); each property test runs for each of them against
``kernels/reference.py`` on random shapes, strides, paddings, dilations and groups, in
float32 and float64, with contiguous and non-contiguous inputs."""
import subprocess
import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet import backend, kernels
from tinynet import geometry as geometry_module
from tinynet.kernels import reference

# 'numpy-on-gpu' is the array-generic im2col module run on CuPy arrays.
GPU = backend.cuda_available()
IMPLEMENTATIONS = [name for name in kernels.available() if name != "reference"]
IMPLEMENTATIONS += ["numpy-on-gpu"] if GPU else []

PROPERTY = settings(max_examples=30, deadline=None)


def module(name):
    return kernels.implementation("numpy" if name == "numpy-on-gpu" else name)


def to_impl(name, array):
    """Put a host array where implementation ``name`` wants it (the GPU for 'cupy')."""
    return backend.to_gpu(array) if name in ("cupy", "numpy-on-gpu") else array


def to_host(array):
    return backend.to_cpu(array)


def all_implementations():
    return [("reference", reference)] + [(n, module(n)) for n in IMPLEMENTATIONS]


def layout(array, kind):
    """The same values as ``array`` in a different memory layout."""
    if kind == "transposed":          # stored NHWC, viewed NCHW
        return np.ascontiguousarray(array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if kind == "sliced":              # every other element of a wider array
        wide = np.repeat(array, 2, axis=-1)
        return wide[..., ::2]
    return array


def assert_close(actual, expected, dtype):
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(to_host(actual), expected, rtol=tol, atol=tol)


# ---- strategies ------------------------------------------------------------------------------

@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 3))
    c_per_group = draw(st.integers(1, 3))
    o_per_group = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    size = []
    for k, p, d in zip(kernel, padding, dilation):
        smallest = max(1, d * (k - 1) + 1 - 2 * p)       # the dilated kernel must fit
        size.append(draw(st.integers(smallest, smallest + 5)))
    n = draw(st.integers(1, 2))
    return dict(n=n, c=groups * c_per_group, o=groups * o_per_group, size=tuple(size),
                kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                groups=groups, dtype=draw(st.sampled_from([np.float32, np.float64])),
                layout=draw(st.sampled_from(["plain", "transposed", "sliced"])),
                seed=draw(st.integers(0, 2**16)))


@st.composite
def pool_cases(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    size = tuple(draw(st.integers(max(1, k - 2 * p), 7)) for k, p in zip(kernel, padding))
    return dict(n=draw(st.integers(1, 2)), c=draw(st.integers(1, 3)), size=size,
                kernel=kernel, stride=stride, padding=padding,
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                layout=draw(st.sampled_from(["plain", "transposed", "sliced"])),
                seed=draw(st.integers(0, 2**16)))


def conv_arrays(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["c"]) + case["size"])
    w = rng.standard_normal((case["o"], case["c"] // case["groups"]) + case["kernel"])
    geometry = (case["stride"], case["padding"], case["dilation"], case["groups"])
    y_shape = reference.conv2d_forward(x, w, *geometry)[0].shape
    grad_y = rng.standard_normal(y_shape)
    return x, w, grad_y, geometry


# ---- property tests: each implementation equals the reference --------------------------

@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@PROPERTY
@given(case=conv_cases())
def test_conv2d_equals_reference(name, case):
    impl, dtype = module(name), case["dtype"]
    x, w, grad_y, geometry = conv_arrays(case)
    expected_y = reference.conv2d_forward(x, w, *geometry)[0]         # float64 oracle
    expected_gx = reference.conv2d_backward_input(grad_y, w, x.shape, *geometry)
    expected_gw = reference.conv2d_backward_weight(grad_y, x, w.shape, *geometry)

    def put(a):
        return to_impl(name, layout(a.astype(dtype), case["layout"]))
    y = impl.conv2d_forward(put(x), put(w), *geometry)[0]
    gx = impl.conv2d_backward_input(put(grad_y), put(w), x.shape, *geometry)
    gw = impl.conv2d_backward_weight(put(grad_y), put(x), w.shape, *geometry)
    for actual, expected in ((y, expected_y), (gx, expected_gx), (gw, expected_gw)):
        assert actual.dtype == dtype
        assert actual.shape == expected.shape
        assert_close(actual, expected, dtype)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@PROPERTY
@given(case=pool_cases(), ties=st.booleans())
def test_pooling_equals_reference(name, case, ties):
    impl, dtype = module(name), case["dtype"]
    rng = np.random.default_rng(case["seed"])
    shape = (case["n"], case["c"]) + case["size"]
    if ties:      # few distinct values: many ties, where the first maximum must win
        x = rng.integers(-2, 3, size=shape).astype(np.float64)
    else:
        x = rng.permutation(int(np.prod(shape))).reshape(shape) - 0.5 * np.prod(shape)
    geometry = (case["kernel"], case["stride"], case["padding"])
    y_ref, arg_ref = reference.max_pool2d_forward(x, *geometry)
    grad_y = rng.standard_normal(y_ref.shape)
    avg_ref = reference.avg_pool2d_forward(x, *geometry)

    def put(a):
        return to_impl(name, layout(a.astype(dtype), case["layout"]))
    y, argmax = impl.max_pool2d_forward(put(x), *geometry)
    assert y.dtype == dtype and argmax.dtype == np.int64
    assert_close(y, y_ref, dtype)
    np.testing.assert_array_equal(to_host(argmax), arg_ref)
    gx = impl.max_pool2d_backward(put(grad_y), to_impl(name, arg_ref), x.shape)
    assert gx.dtype == dtype
    assert_close(gx, reference.max_pool2d_backward(grad_y, arg_ref, x.shape), dtype)

    avg = impl.avg_pool2d_forward(put(x), *geometry)
    assert avg.dtype == dtype
    assert_close(avg, avg_ref, dtype)
    gx = impl.avg_pool2d_backward(put(grad_y), x.shape, *geometry)
    assert gx.dtype == dtype and gx.shape == x.shape
    assert_close(gx, reference.avg_pool2d_backward(grad_y, x.shape, *geometry), dtype)


DEPTHWISE = [  # (C, O, kernel, stride, padding, dilation): groups = C
    (4, 4, (3, 3), (1, 1), (1, 1), (1, 1)),
    (3, 3, (3, 3), (2, 2), (1, 1), (1, 1)),
    (3, 6, (3, 2), (1, 2), (2, 0), (2, 1)),     # channel multiplier 2
    (2, 2, (5, 5), (2, 1), (2, 2), (1, 1)),
]


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
@pytest.mark.parametrize("c, o, kernel, stride, padding, dilation", DEPTHWISE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_equals_reference(name, c, o, kernel, stride, padding, dilation, dtype, rng):
    impl = module(name)
    x = rng.standard_normal((2, c, 9, 8))
    w = rng.standard_normal((o, 1) + kernel)
    geometry = (stride, padding, dilation, c)
    y = reference.conv2d_forward(x, w, *geometry)[0]
    grad_y = rng.standard_normal(y.shape)
    put = lambda a: to_impl(name, a.astype(dtype))
    assert_close(impl.conv2d_forward(put(x), put(w), *geometry)[0], y, dtype)
    assert_close(impl.conv2d_backward_input(put(grad_y), put(w), x.shape, *geometry),
                 reference.conv2d_backward_input(grad_y, w, x.shape, *geometry), dtype)
    assert_close(impl.conv2d_backward_weight(put(grad_y), put(x), w.shape, *geometry),
                 reference.conv2d_backward_weight(grad_y, x, w.shape, *geometry), dtype)


@pytest.mark.skipif(not GPU, reason="needs CuPy and an NVIDIA GPU: the GPU kernels "
                    "(gpu_cupy, and im2col on CuPy arrays) are not tested here")
def test_gpu_implementations_are_tested():
    assert "numpy-on-gpu" in IMPLEMENTATIONS


# ---- the reference itself --------------------------------------------------------------------

def test_reference_lecture_example():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.arange(4.0).reshape(1, 1, 2, 2)
    y = reference.conv2d_forward(x, w, (1, 1), (0, 0), (1, 1), 1)[0]
    np.testing.assert_array_equal(y[0, 0], [[19, 25], [37, 43]])


def test_reference_conv_is_the_formula(rng):
    """One output pixel written out as the sum in the docstring, with padding, stride,
    dilation and groups all at once."""
    x = rng.standard_normal((1, 4, 6, 7))
    w = rng.standard_normal((6, 2, 2, 3))
    (sh, sw), (ph, pw), (dh, dw), groups = (2, 1), (1, 2), (2, 1), 2
    y = reference.conv2d_forward(x, w, (sh, sw), (ph, pw), (dh, dw), groups)[0]
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    for o, i, j in [(0, 0, 0), (4, 1, 3), (5, 2, 6)]:
        g = o // 3
        total = sum(x_pad[0, g * 2 + c, i * sh + u * dh, j * sw + v * dw] * w[o, c, u, v]
                    for c in range(2) for u in range(2) for v in range(3))
        assert y[0, o, i, j] == pytest.approx(total)


def test_reference_backward_is_the_adjoint(rng):
    """<conv(x), g> = <x, conv_backward_input(g)> and = <w, conv_backward_weight(g)>: the
    backward kernels are the transposes of the forward's linear maps."""
    x = rng.standard_normal((2, 4, 7, 6))
    w = rng.standard_normal((2, 2, 3, 2))
    geometry = ((2, 1), (1, 0), (1, 2), 2)
    y = reference.conv2d_forward(x, w, *geometry)[0]
    g = rng.standard_normal(y.shape)
    inner = np.sum(y * g)
    assert np.sum(x * reference.conv2d_backward_input(g, w, x.shape, *geometry)) == pytest.approx(inner)
    assert np.sum(w * reference.conv2d_backward_weight(g, x, w.shape, *geometry)) == pytest.approx(inner)


def test_max_pool_argmax_and_ties():
    x = np.array([[[[1.0, 5.0, 5.0, 0.0],
                    [2.0, 5.0, 3.0, 4.0],
                    [7.0, 7.0, 1.0, 1.0],
                    [7.0, 0.0, 1.0, 1.0]]]])
    for name, impl in all_implementations():
        y, argmax = impl.max_pool2d_forward(to_impl(name, x), (2, 2), (2, 2), (0, 0))
        np.testing.assert_array_equal(to_host(y)[0, 0], [[5, 5], [7, 1]])
        # the first maximum in row-major window order wins: (0,1), (0,2), (2,0), (2,2)
        np.testing.assert_array_equal(to_host(argmax)[0, 0], [[1, 2], [8, 10]])


def test_max_pool_padding_never_wins():
    x = -np.ones((1, 1, 2, 2))                     # all values below the zero a pad would be
    for name, impl in all_implementations():
        y, argmax = impl.max_pool2d_forward(to_impl(name, x), (3, 3), (1, 1), (1, 1))
        np.testing.assert_array_equal(to_host(y), -np.ones((1, 1, 2, 2)))
        assert ((to_host(argmax) >= 0) & (to_host(argmax) < 4)).all()


# ---- output size and argument helpers -----------------------------------------------------

@pytest.mark.parametrize("size, kernel, stride, padding, dilation, expected", [
    (3, 2, 1, 0, 1, 2),          # the lecture's example
    (7, 3, 2, 1, 1, 4),          # floor((7 + 2 - 2 - 1) / 2) + 1
    (8, 3, 2, 1, 1, 4),          # floor(7 / 2) + 1
    (10, 3, 1, 0, 2, 6),         # dilated span 5
    (5, 5, 1, 2, 1, 5),          # 'same'
    (224, 7, 2, 3, 1, 112),
    (6, 4, 3, 0, 1, 1),
])
def test_conv_output_size(size, kernel, stride, padding, dilation, expected):
    assert kernels.conv_output_size(size, kernel, stride, padding, dilation) == expected


def test_pair():
    assert kernels.pair(3) == (3, 3)
    assert kernels.pair((2, 5)) == (2, 5)
    assert kernels.pair([np.int64(1), 2]) == (1, 2)
    for bad in [1.5, (1, 2, 3), "2", True, (1, 2.0), None]:
        with pytest.raises(TypeError, match="stride must be an int or a pair of ints"):
            kernels.pair(bad, "stride")


# ---- dispatch ------------------------------------------------------------------------------

def test_use_as_function_and_context_manager():
    start = kernels.current()
    with kernels.use("reference"):
        assert kernels.current() == "reference"
        assert kernels.choose("conv2d_forward", np.zeros(1)) is reference.conv2d_forward
        with kernels.use("numpy"):
            assert kernels.choose("max_pool2d_forward", np.zeros(1)) is \
                kernels.implementation("numpy").max_pool2d_forward
        assert kernels.current() == "reference"
    assert kernels.current() == start
    try:
        kernels.use("numpy")
        assert kernels.current() == "numpy"
    finally:
        kernels.use(start)


def test_use_rejects_unknown_names():
    with pytest.raises(ValueError, match="must be one of .*got 'fast'"):
        kernels.use("fast")
    with pytest.raises(ValueError, match="unknown kernel implementation 'fast'"):
        kernels.implementation("fast")


def test_fast_module_missing_a_function_falls_back_to_im2col(monkeypatch):
    partial = types.SimpleNamespace(conv2d_forward=lambda *args: "fast")
    monkeypatch.setitem(kernels._loaded, "cpu_numba", partial)
    monkeypatch.setattr(kernels, "_numba_found", True)
    x = np.zeros((1, 1, 2, 2))
    with kernels.use("auto"):
        assert kernels.choose("conv2d_forward", x)() == "fast"
        assert kernels.choose("avg_pool2d_forward", x) is \
            kernels.implementation("numpy").avg_pool2d_forward
        # numba kernels are compiled for float32/float64 only
        assert kernels.choose("conv2d_forward", x.astype(np.float16)) is \
            kernels.implementation("numpy").conv2d_forward
    monkeypatch.setitem(kernels._loaded, "cpu_numba", None)      # module failed to import
    with kernels.use("auto"):
        assert kernels.choose("conv2d_forward", x) is kernels.implementation("numpy").conv2d_forward


def _run(code, **env):
    import os
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_compiles_nothing_and_env_var_sets_default():
    out = _run("import sys, tinynet, tinynet.functional; "
               "print('numba' in sys.modules, 'tinynet.kernels.cpu_numba' in sys.modules, "
               "tinynet.kernels.current())", TINYNET_KERNELS="reference")
    assert out == "False False reference"


def test_im2col_in_batch_slices_equals_one_pass(monkeypatch, rng):
    """A large batch is processed in slices that bound the memory of ``col``."""
    im2col = kernels.implementation("numpy")
    monkeypatch.setattr(geometry_module, "MAX_COL_BYTES", 2000)   # about one example per slice
    x, w = rng.standard_normal((5, 4, 7, 6)), rng.standard_normal((6, 2, 3, 2))
    geometry = ((2, 1), (1, 1), (1, 2), 2)
    assert len(im2col._batch_slices(x.shape, w.shape, (4, 6), 8)) == 5
    y = reference.conv2d_forward(x, w, *geometry)[0]
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(im2col.conv2d_forward(x, w, *geometry)[0], y, rtol=1e-12)
    np.testing.assert_allclose(im2col.conv2d_backward_input(g, w, x.shape, *geometry),
                               reference.conv2d_backward_input(g, w, x.shape, *geometry),
                               rtol=1e-12)
    np.testing.assert_allclose(im2col.conv2d_backward_weight(g, x, w.shape, *geometry),
                               reference.conv2d_backward_weight(g, x, w.shape, *geometry),
                               rtol=1e-12)


def test_im2col_col2im_are_adjoint(rng):
    """<im2col(x), c> = <x, col2im(c)>: col2im is the transpose of im2col."""
    im2col = kernels.implementation("numpy")
    x = rng.standard_normal((2, 3, 7, 5))
    geometry = ((2, 1), (1, 2), (2, 1))
    col = im2col.im2col(x, (3, 2), *geometry)
    c = rng.standard_normal(col.shape)
    assert np.sum(col * c) == pytest.approx(np.sum(x * im2col.col2im(c, x.shape, *geometry)))
