"""benchmarks/winograd_error.py: the NumPy model of Winograd F(m x n, 3x3) behind #13's error
table.  Its figures mean something only if the model is exact in float64 (the float32 error
is then rounding, not a bug) and really runs in float32."""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")        # im2col (cpu_numba) is the script's reference
from tinynet.kernels import cpu_numba  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GEOMETRY = ((1, 1), (1, 1), (1, 1), 1)


@pytest.fixture
def model(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))          # benchmarks/ is not an installed package
    import benchmarks.winograd_error as model
    return model


@pytest.mark.parametrize("variant", ["F(2x2)", "F(4x2)", "F(2x4)", "F(4x4)", "F(3x3), 2",
                                     "F(3x3), -1/2"])
@pytest.mark.parametrize("shape", [(2, 3, 7, 5, 4), (1, 2, 9, 10, 3), (3, 4, 4, 6, 2)])
def test_the_model_is_exact_in_float64(model, variant, shape, rng):
    """Odd sizes and tiles cut by the output's edge, each direction against im2col."""
    n, c, h, w, o = shape
    points = model.VARIANTS[variant]
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((o, c, 3, 3))
    grad_y = rng.standard_normal((n, o, h, w))                  # padding 1: the same size
    expected = {"y": cpu_numba.conv2d_forward(x, weight, *GEOMETRY)[0],
                "dx": cpu_numba.conv2d_backward_input(grad_y, weight, x.shape, *GEOMETRY),
                "dw": cpu_numba.conv2d_backward_weight(grad_y, x, weight.shape, *GEOMETRY)}
    got = {"y": model.forward(x, weight, points),
           "dx": model.input_grad_flipped(grad_y, weight, points),
           "dx transposed": model.input_grad_transposed(grad_y, weight, points),
           "dw": model.weight_grad(grad_y, x, points)}
    for name, value in got.items():
        reference = expected[name.split()[0]]
        assert value.shape == reference.shape, name
        np.testing.assert_allclose(value, reference, rtol=1e-11, atol=1e-11, err_msg=name)


def test_float32_errors_are_float32_sized(model):
    """F(2x2)'s error is near im2col's (the kernels' tests allow 4x), neither float64's
    (the model would not be running in float32) nor far past it (a wrong transform)."""
    ratios = model.error_ratios(*model.problem(2, 16, 12, 24, seed=0),
                                variants={"F(2x2)": model.VARIANTS["F(2x2)"]})
    assert len(ratios) == 4
    for key, ratio in ratios.items():
        assert 0.05 < ratio < 4.0, (key, ratio)
