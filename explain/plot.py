"""Pictures of explanations; the only module of explain that imports matplotlib.

Every function draws one figure, writes it as a PNG to ``path`` and returns the path.
Images are (C, H, W) or (H, W) arrays in [0, 1] (or any range: they are min-max scaled).
Figures are made with ``matplotlib.figure.Figure`` directly, not pyplot, so plotting here
neither needs a display nor changes the backend or figures of the caller's session.
"""
import numpy as np


class _Figures:
    """The two pyplot calls used below, without pyplot's global state."""

    @staticmethod
    def subplots(nrows=1, ncols=1, figsize=None, squeeze=True):
        from matplotlib.figure import Figure
        fig = Figure(figsize=figsize)
        return fig, fig.subplots(nrows, ncols, squeeze=squeeze)

    @property
    def rcParams(self):
        import matplotlib
        return matplotlib.rcParams


def _plt():
    return _Figures()


def _hwc(image):
    """(C, H, W) or (H, W) -> displayable (H, W, 3) or (H, W) in [0, 1]."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3:
        a = a.transpose(1, 2, 0)
        if a.shape[2] == 1:
            a = a[:, :, 0]
    low, high = a.min(), a.max()
    if low < 0 or high > 1:
        a = (a - low) / (high - low) if high > low else np.zeros_like(a)
    return a


def _save(fig, path, dpi=100):
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def _heat(attribution):
    """(C, H, W) -> |.| max over channels; (H, W) unchanged."""
    a = np.asarray(attribution, dtype=np.float64)
    return np.abs(a).max(axis=0) if a.ndim == 3 else a


def overlay(image, heatmap, path, alpha=0.5, cmap="jet", title=None, ax=None):
    """The heatmap (e.g. Grad-CAM, (H, W) in [0, 1]) drawn over the image."""
    plt = _plt()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(_hwc(image), cmap="gray")
    ax.imshow(_heat(heatmap), cmap=cmap, alpha=alpha)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    return _save(fig, path) if fig is not None else ax


def diverging(attribution, path, title=None, ax=None):
    """A signed map (summed over channels) in red (positive) and blue (negative), centred
    at zero: the lecture's "highlight negative and positive contributions separately"."""
    plt = _plt()
    a = np.asarray(attribution, dtype=np.float64)
    a = a.sum(axis=0) if a.ndim == 3 else a
    bound = np.abs(a).max() or 1.0
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.4, 3))
    im = ax.imshow(a, cmap="bwr", vmin=-bound, vmax=bound)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    if fig is not None:
        fig.colorbar(im, ax=ax, fraction=0.046)
        return _save(fig, path)
    return ax


def method_grid(images, rows, path, titles=None, overlay_rows=("Grad-CAM",)):
    """The lecture's grid: one column per image, the first row the images (titled with
    class and probability), then one row per method.

    images  (N, C, H, W)
    rows    {method name: maps (N, ...)}; maps of rows named in ``overlay_rows`` are drawn
            over the image, others as |map| (max over channels) in grey
    titles  one string per image, e.g. "greyhound (35%)"
    """
    plt = _plt()
    n = len(images)
    fig, axes = plt.subplots(len(rows) + 1, n, figsize=(1.9 * n, 1.9 * (len(rows) + 1)),
                             squeeze=False)
    for j in range(n):
        axes[0, j].imshow(_hwc(images[j]), cmap="gray")     # (colour images ignore cmap)
        axes[0, j].set_axis_off()
        if titles is not None:
            axes[0, j].set_title(titles[j], fontsize=8)
        for i, (name, maps) in enumerate(rows.items(), start=1):
            ax = axes[i, j]
            if name in overlay_rows:
                ax.imshow(_hwc(images[j]), cmap="gray")
                ax.imshow(_heat(maps[j]), cmap="jet", alpha=0.5)
            else:
                ax.imshow(_heat(maps[j]), cmap="gray")
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
    return _save(fig, path)


def _stretch(image, low=1, high=99):
    """An optimized image for display.  Activation maximization pushes pixels towards 0 and
    1 (the image goes through a sigmoid, which keeps it in range), so a plain display of a
    late snapshot is often one flat white or black field, its pattern hidden in differences
    like 0.9990 vs 0.9999.  Here the sigmoid is undone first (logit, log(a / (1 - a))),
    then the image is scaled on its own so that its ``low``-th and ``high``-th percentiles
    become black and white (clipped).  Pixel order is kept; only the contrast changes."""
    a = np.clip(_hwc(image), 1e-6, 1 - 1e-6)
    a = np.log(a / (1 - a))
    lo, hi = np.percentile(a, [low, high])
    if hi <= lo:
        lo, hi = a.min(), a.max()
    return np.clip((a - lo) / (hi - lo), 0, 1) if hi > lo else np.full_like(a, 0.5)


def actmax_strip(snapshots, path, title=None, row_labels=None):
    """Activation-maximization snapshots side by side, titled "Step k" (the lecture's figure).

    snapshots   {step: image (C, H, W)} (ActMaxResult.snapshots), or a list of such dicts to
                draw one row each
    row_labels  one label per row (e.g. "maximized", "minimized"), drawn at the left
    Each snapshot is contrast-stretched on its own (see ``_stretch``), so a snapshot whose
    pixels are nearly all saturated still shows its pattern."""
    plt = _plt()
    rows = snapshots if isinstance(snapshots, (list, tuple)) else [snapshots]
    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.8 * cols, 1.9 * len(rows)),
                             squeeze=False)
    for i, snaps in enumerate(rows):
        for j, (step, img) in enumerate(sorted(snaps.items())):
            axes[i, j].imshow(_stretch(img), cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_title(f"Step {step}", fontsize=8)
            axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
        for j in range(len(snaps), cols):
            axes[i, j].set_axis_off()
    fig.suptitle((title + "\n" if title else "") + "(each image contrast-stretched)",
                 fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _draw_tcav(ax, results, layer_labels, colors):
    layers = list(dict.fromkeys(r.layer for r in results))
    concepts = list(dict.fromkeys(r.concept for r in results))
    width = 0.8 / max(1, len(concepts))
    for ci, concept in enumerate(concepts):
        for li, layer in enumerate(layers):
            r = next((r for r in results if r.concept == concept and r.layer == layer), None)
            if r is None:
                continue
            x = li + (ci - (len(concepts) - 1) / 2) * width
            err = float(np.std(r.scores))
            ax.bar(x, r.score, width * 0.9, yerr=err, capsize=3,
                   color=colors[ci % len(colors)], label=concept if li == 0 else None)
            if r.significant:
                ax.text(x, min(r.score + err + 0.02, 1.03), "*", ha="center", fontsize=14)
    ax.axhline(0.5, color="gray", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(layers)))
    labels = layer_labels or {}
    ax.set_xticklabels([labels.get(l, str(l)) for l in layers], fontsize=8)
    ax.set_xlabel("layer")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("TCAV score (mean ± std over random sets)", fontsize=8)


def _as_results(results):
    if isinstance(results, dict):
        return list(results.values())
    return list(results) if isinstance(results, (list, tuple)) else [results]


def tcav_bars(results, path, title=None, layer_labels=None):
    """TCAV scores as bars (mean over the random sets) with error bars (their standard
    deviation), grouped by layer; a star above a bar marks a statistically significant
    score (``result.significant``), and a dashed line marks 0.5, the score of a direction
    unrelated to the class.

    results       a TCAVResult, a list of them, or the dict returned by ``explain.tcav``;
                  or {panel title: such results} for one panel each (e.g. one per class)
    layer_labels  {layer name: label} for the x axis (default: the layer names)"""
    plt = _plt()
    panels = (results if isinstance(results, dict) and results
              and not isinstance(next(iter(results)), tuple)
              and not hasattr(next(iter(results.values())), "concept") else {title: results})
    panels = {k: _as_results(v) for k, v in panels.items()}
    n_bars = max(len(v) for v in panels.values())
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(len(panels) * (1.2 + 0.35 * n_bars) + 1.6, 3.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (name, res) in zip(axes[0], panels.items()):
        _draw_tcav(ax, res, layer_labels, colors)
        if name and len(panels) > 1:
            ax.set_title(name, fontsize=9)
    axes[0, -1].legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    note = "* = significant, dashed line = 0.5"
    fig.suptitle((title + "\n" if title and len(panels) > 1 else
                  (title + "\n" if title else "")) + note, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


_STYLES = [("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-"), ("x", "--")]


def _draw_curves(ax, named_curves, xlabel):
    n = len(named_curves)
    for k, (name, c) in enumerate(named_curves.items()):
        marker, line = _STYLES[k % len(_STYLES)]
        # markers staggered: method k marks points k, k + n, ..., so where curves coincide
        # each still shows its own markers
        ax.plot(c.fractions, c.probabilities.mean(axis=0), linestyle=line, marker=marker,
                markersize=5, markevery=(k % max(1, len(c.fractions)), max(1, n)),
                label=f"{name} (AUC {c.auc.mean():.2f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("P(target), mean over images")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)


def curves(named_curves, path, title=None, xlabel="fraction of pixels"):
    """Deletion or insertion curves of several methods: P(target) against the fraction of
    pixels removed/added, mean over images, with the area in the legend.  Each method has
    its own marker and line style, so curves that coincide can still be told apart."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    _draw_curves(ax, named_curves, xlabel)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def training_curves(history, path, title=None):
    """Two panels over the epochs: training and validation loss; validation accuracy.

    history  tn.fit's return value ({'train_loss', 'val_loss', 'val_accuracy', ...})"""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    left.plot(epochs, history["train_loss"], "o-", label="training (augmented, smoothed labels)")
    if any(v is not None for v in history.get("val_loss", [])):
        left.plot(epochs, history["val_loss"], "s--", label="validation")
    left.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    left.legend(fontsize=7, frameon=False)
    acc = [np.nan if a is None else 100 * a for a in history.get("val_accuracy", [])]
    right.plot(epochs[:len(acc)], acc, "s-", color="C1")
    for e, a in zip(epochs, acc):
        right.annotate(f"{a:.1f}", (e, a), textcoords="offset points", xytext=(0, 5),
                       ha="center", fontsize=7)
    right.set(xlabel="epoch", ylabel="validation top-1 (%)", title="validation accuracy")
    right.set_ylim(0, 100)
    for ax in (left, right):
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def confusion_matrix(counts, class_names, path, title=None):
    """Rows the true class, columns the predicted one; each cell the count, coloured by the
    fraction of its row (so the diagonal is each class's recall)."""
    plt = _plt()
    counts = np.asarray(counts)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * k, 0.6 + 0.5 * k))
    rows = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xticks(range(k))
    ax.set_xticklabels(class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k))
    ax.set_yticklabels(class_names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def two_class_cam(image, maps, path, title=None):
    """The lecture's cat/dog figure: the image, then one Grad-CAM overlay per class.

    image  (C, H, W); maps  {panel title (e.g. "Grad-CAM for 'church'"): (H, W) map}"""
    plt = _plt()
    h, w = np.shape(image)[-2:]
    fig, axes = plt.subplots(1, 1 + len(maps),
                             figsize=(2.6 * (1 + len(maps)), 0.9 + 2.6 * h / w))
    axes[0].imshow(_hwc(image))
    axes[0].set_title("input", fontsize=9)
    axes[0].set_axis_off()
    for ax, (name, m) in zip(axes[1:], maps.items()):
        overlay(image, m, None, title=name, ax=ax)
        ax.title.set_fontsize(9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _mosaic(images, cols=3):
    """(K, C, H, W) images -> one (rows*H, cols*W, C) picture with 1-pixel white gaps."""
    tiles = [_hwc(im) for im in images]
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // cols)
    shape = (rows * (h + 1) - 1, cols * (w + 1) - 1) + tiles[0].shape[2:]
    out = np.ones(shape)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = t
    return out


def actmax_with_examples(rows, path, title=None):
    """Activation maximization beside the dataset's most activating images, one row per unit.

    rows  a list of dicts: {'label': row title, 'snapshots': {step: image},
          'examples': (K, C, H, W) top-activating images or None}
    The snapshots are contrast-stretched one by one (see ``actmax_strip``)."""
    plt = _plt()
    steps = max(len(r["snapshots"]) for r in rows)
    cols = steps + 1
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.55 * cols, 1.75 * len(rows)),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j, (step, img) in enumerate(sorted(row["snapshots"].items())):
            ax = axes[i, j]
            ax.imshow(_stretch(img), vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0 or j == 0:
                ax.set_title(f"step {step}", fontsize=7)
        axes[i, 0].set_ylabel(row["label"], fontsize=7, rotation=0, ha="right", va="center")
        for j in range(len(row["snapshots"]), steps):
            axes[i, j].set_axis_off()
        ax = axes[i, -1]
        if row.get("examples") is not None and len(row["examples"]):
            ax.imshow(_mosaic(row["examples"]))
            ax.set_title(f"top {len(row['examples'])} val photos", fontsize=7)
        ax.set_axis_off()
    if title:
        fig.suptitle(title + "\n(optimized images contrast-stretched one by one)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def randomization_check(results, path, title=None):
    """Adebayo et al.'s cascading randomization: the rank correlation between each method's
    map on the trained model and on the model with the layers up to x randomized (top down).
    A method whose maps depend on the weights falls towards 0.

    results  {method name: RandomizationResult}"""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    first = next(iter(results.values()))
    for k, (name, r) in enumerate(results.items()):
        marker, line = _STYLES[k % len(_STYLES)]
        ax.plot(np.arange(1, len(r.correlations) + 1), r.correlations, marker=marker,
                linestyle=line, label=f"{name} ({'passed' if r.passed else 'FAILED'})")
    ax.axhline(first.threshold, color="gray", linestyle=":", linewidth=1,
               label=f"threshold {first.threshold}")
    ax.set_xticks(np.arange(1, len(first.layers) + 1))
    ax.set_xticklabels(first.layers, rotation=45, ha="right", fontsize=7)
    ax.set_xlabel("randomized down to layer (cascading, from the output)")
    ax.set_ylabel("Spearman rank correlation\nwith the trained model's map", fontsize=8)
    ax.set_ylim(-1.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or "model-parameter randomization check", fontsize=9)
    return _save(fig, path)


def deletion_insertion(deletion, insertion, path, title=None):
    """Deletion (left: lower area = better) and insertion (right: higher = better) curves of
    several methods side by side; each method has its own marker and line style.

    deletion, insertion  {method name: Curve}"""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    _draw_curves(left, deletion, "fraction of pixels removed (most important first)")
    left.set_title("deletion (lower area = better)", fontsize=9)
    _draw_curves(right, insertion, "fraction of pixels put back on a blurred copy")
    right.set_title("insertion (higher area = better)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
