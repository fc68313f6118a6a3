"""Each plot writes a PNG (Agg backend; matplotlib is imported only by explain.plot)."""
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from explain import plot
from explain.sanity import Curve
from explain.tcav import TCAVResult


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_every_plot_writes_a_png(tmp_path, rng):
    images = rng.random((3, 3, 16, 16))
    signed = rng.standard_normal((3, 3, 16, 16))
    cam = rng.random((3, 16, 16))
    paths = [
        plot.overlay(images[0], cam[0], tmp_path / "overlay.png", title="cat (93%)"),
        plot.diverging(signed[0], tmp_path / "diverging.png", title="signed"),
        plot.method_grid(images, {"Vanilla": signed, "SmoothGrad": signed, "Grad-CAM": cam},
                         tmp_path / "grid.png", titles=["a (35%)", "b (50%)", "c (70%)"]),
        plot.actmax_strip({0: images[0], 4: images[1], 48: images[2]}, tmp_path / "strip.png",
                          title="channel 3"),
        plot.curves({"vanilla": Curve(np.linspace(0, 1, 5), rng.random((3, 5)), rng.random(3))},
                    tmp_path / "curves.png"),
    ]
    results = [TCAVResult(concept=c, layer=l, target=0, score=s, scores=np.array([s, s - 0.1]),
                          random_scores=np.array([0.5, 0.4]), p_value=p, significant=p < 0.05,
                          alpha=0.05, n_tests=4, cav_accuracies=np.array([0.9, 0.8]))
               for c, s, p in [("striped", 0.9, 0.001), ("dotted", 0.5, 0.4)]
               for l in ["mixed4c", "mixed5b"]]
    paths.append(plot.tcav_bars(results, tmp_path / "tcav.png"))
    for p in paths:
        assert _is_png(p)


def test_only_plot_imports_matplotlib():
    code = ("import sys, explain, numpy as np; from tinynet import nn; "
            "explain.vanilla_gradient(nn.Linear(2, 2), np.zeros((1, 2), np.float32), 0); "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plots_leave_pyplot_alone(tmp_path):
    """Figures are drawn without pyplot: no backend switch, no global figure state."""
    code = ("import sys, numpy as np; from explain import plot; "
            f"plot.diverging(np.ones((4, 4)) - 0.5, r'{tmp_path / 'd.png'}'); "
            "print('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tcav_stars_mark_the_significant_bars_and_half_is_drawn():
    from matplotlib.figure import Figure
    results = [TCAVResult(concept=c, layer="features.14", target=0, score=s,
                          scores=np.array([s, s]), random_scores=np.array([0.5, 0.5]),
                          p_value=p, significant=sig, alpha=0.05, n_tests=2,
                          cav_accuracies=np.array([0.9, 0.9]))
               for c, s, p, sig in [("striped", 0.9, 0.001, True), ("dotted", 0.5, 0.6, False)]]
    ax = Figure().subplots()
    plot._draw_tcav(ax, results, {"features.14": "block 4"}, ["C0", "C1"])
    stars = [t.get_position()[0] for t in ax.texts if t.get_text() == "*"]
    bars = [p.get_x() + p.get_width() / 2 for p in ax.patches]
    assert len(stars) == 1 and abs(stars[0] - bars[0]) < 1e-9      # on 'striped' only
    assert any(np.allclose(line.get_ydata(), 0.5) for line in ax.get_lines())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["block 4"]


def test_stretch_shows_a_nearly_saturated_snapshot():
    rng = np.random.default_rng(0)
    nearly_white = 1 - 10 ** rng.uniform(-5, -3, size=(1, 16, 16))   # all within 0.001 of 1
    shown = plot._stretch(nearly_white)
    assert shown.std() > 0.15                         # not one flat colour any more
    order = np.argsort(nearly_white.ravel())
    assert np.all(np.diff(shown.ravel()[order]) >= 0)   # brighter stays brighter
