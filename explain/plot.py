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


def actmax_strip(snapshots, path, title=None):
    """Activation-maximization snapshots side by side, titled "Step k" (the lecture's figure).

    snapshots  {step: image (C, H, W)} (ActMaxResult.snapshots), or a list of such dicts to
               draw one row each"""
    plt = _plt()
    rows = snapshots if isinstance(snapshots, (list, tuple)) else [snapshots]
    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.8 * cols, 1.9 * len(rows)),
                             squeeze=False)
    for i, snaps in enumerate(rows):
        for j, (step, img) in enumerate(sorted(snaps.items())):
            axes[i, j].imshow(_hwc(img), cmap="gray")
            axes[i, j].set_title(f"Step {step}", fontsize=8)
            axes[i, j].set_axis_off()
        for j in range(len(snaps), cols):
            axes[i, j].set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def tcav_bars(results, path, title=None):
    """TCAV scores as bars (mean over the random sets) with error bars (their std), grouped
    by layer; a star marks bars that are not statistically significant, as in the lecture.

    results  a TCAVResult, a list of them, or the dict returned by ``explain.tcav``"""
    plt = _plt()
    if isinstance(results, dict):
        results = list(results.values())
    elif not isinstance(results, (list, tuple)):
        results = [results]
    layers = list(dict.fromkeys(r.layer for r in results))
    concepts = list(dict.fromkeys(r.concept for r in results))
    width = 0.8 / max(1, len(concepts))
    fig, ax = plt.subplots(figsize=(1.2 + 1.4 * len(layers) * max(1, len(concepts)) / 2, 3))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ci, concept in enumerate(concepts):
        for li, layer in enumerate(layers):
            r = next((r for r in results if r.concept == concept and r.layer == layer), None)
            if r is None:
                continue
            x = li + (ci - (len(concepts) - 1) / 2) * width
            ax.bar(x, r.score, width * 0.9, yerr=np.std(r.scores), capsize=3,
                   color=colors[ci % len(colors)], label=concept if li == 0 else None)
            if not r.significant:
                ax.text(x, min(r.score + np.std(r.scores) + 0.03, 1.02), "*",
                        ha="center", fontsize=14)
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels([f"layer {l}" for l in layers])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("TCAV score")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or "TCAV (* = not significant)", fontsize=9)
    return _save(fig, path)


def curves(named_curves, path, title=None):
    """Deletion or insertion curves of several methods: P(target) against the fraction of
    pixels removed/added, mean over images, with the area in the legend."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4, 3))
    for name, c in named_curves.items():
        ax.plot(c.fractions, c.probabilities.mean(axis=0), label=f"{name} (AUC {c.auc.mean():.2f})")
    ax.set_xlabel("fraction of pixels")
    ax.set_ylabel("P(target)")
    ax.legend(fontsize=7, frameon=False)
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
