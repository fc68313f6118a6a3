"""Checks that grade explanations, instead of judging them on anecdotes.

The lecture warns that pixel attributions are "often [evaluated] only with anecdotal
examples" and "can be fragile".  Three checks turn that into numbers:

  model_parameter_randomization  (Adebayo et al. 2018) re-initialize the layers from the top
        down; a map that still looks the same (high rank correlation with the original) does
        not depend on what the model learned, and fails the check.
  deletion_curve / insertion_curve  (Petsiuk et al. 2018) remove (add) pixels in the order
        of their attribution and track the class probability; a good map makes it fall
        (rise) quickly: small deletion area, large insertion area.
  fragility  (Ghorbani et al. 2019) search for a small perturbation that keeps the
        prediction but moves the map: report how many of the top-k pixels stay.
  tcav_calibration  how often TCAV's significance test calls a random "concept" significant
        (should be about alpha) and how often it finds a given concept, over many trials.

Each method passed to these checks is a function ``method(model, x, target) -> map``.
"""
from dataclasses import dataclass

import numpy as np

import tinynet as tn

from ._common import (as_input, batches, check_logits, check_positive_int, check_targets,
                      frozen, progress_bar, softmax_np, to_numpy)


# ---- statistics -------------------------------------------------------------------------

def _pixel_scores(attribution, absolute):
    """One importance per pixel: (N, C, H, W) maps are summed over channels."""
    a = np.asarray(attribution, dtype=np.float64)
    if absolute:
        a = np.abs(a)
    return a.sum(axis=1) if a.ndim == 4 else a


def spearman(a, b, absolute=True):
    """Spearman rank correlation between two maps, one number per example (scipy.stats).

    absolute  compare |a| with |b| (pixel importance regardless of sign), as the "ABS"
              variant of Adebayo et al.; 4-D maps are summed over channels first.

    A constant map has no ranking: two equal constant maps count as the same map (1), a
    constant map against any other map as unrelated (0).  NaN in a map gives NaN."""
    from scipy import stats
    pa = _pixel_scores(a, absolute)
    pb = _pixel_scores(b, absolute)
    if pa.shape != pb.shape:
        raise ValueError(f"maps must have the same shape, got {pa.shape} and {pb.shape}")
    out = np.empty(pa.shape[0])
    for i in range(pa.shape[0]):
        u, v = pa[i].ravel(), pb[i].ravel()
        if np.array_equal(u, v) and np.all(u == u[0]):
            out[i] = 1.0            # e.g. all-zero before and after: the map did not change
        elif np.all(u == u[0]) or np.all(v == v[0]):
            out[i] = 0.0
        else:
            out[i] = stats.spearmanr(u, v).statistic
    return out


def topk_intersection(a, b, k):
    """Fraction of the k most important pixels of ``a`` that are also among those of ``b``."""
    pa = _pixel_scores(a, True).reshape(len(a), -1)
    pb = _pixel_scores(b, True).reshape(len(b), -1)
    k = check_positive_int(k, "k")
    if k > pa.shape[1]:
        raise ValueError(f"k={k} exceeds the number of pixels {pa.shape[1]}")
    top_a = np.argsort(-pa, axis=1, kind="stable")[:, :k]
    top_b = np.argsort(-pb, axis=1, kind="stable")[:, :k]
    return np.array([len(np.intersect1d(s, t)) / k for s, t in zip(top_a, top_b)])


# ---- model-parameter randomization -----------------------------------------------------

@dataclass
class RandomizationResult:
    layers: list                 # layer names, in the order they were randomized (top down)
    correlations: np.ndarray     # mean rank correlation with the original map, per step
    per_example: np.ndarray      # (steps, N)
    maps: list                   # the map after each step
    threshold: float
    passed: bool                 # correlation after the last step below the threshold


def parametrized_layers(model):
    """Names and modules that own parameters directly (leaf modules), input to output."""
    out = []
    for name, m in model.named_modules():
        if not list(m.children()) and list(m.parameters()):
            out.append((name, m))
    return out


def model_parameter_randomization(model, x, target, method, layers=None, cascading=True,
                                  threshold=0.5, absolute=True, seed=0):
    """Adebayo et al.'s cascading randomization test.

    From the top layer down, replace the layer's weights by random ones (Gaussian with the
    std of the trained weights) and recompute the map; with ``cascading=False`` only one
    layer at a time is random.  The model's weights are restored afterwards.

    Returns a ``RandomizationResult``; ``passed`` is True when the rank correlation between
    the original map and the map of the (fully) randomized model is below ``threshold``
    (a NaN correlation, from NaN in a map, fails).
    """
    if not callable(method):
        raise TypeError("method must be a function (model, x, target) -> map")
    all_layers = parametrized_layers(model)
    if not all_layers:
        raise ValueError("the model has no parameters to randomize")
    if layers is None:
        chosen = list(reversed(all_layers))
    else:
        from ._common import resolve_layer
        chosen = [resolve_layer(model, l, default=None) for l in layers]
    rng = np.random.default_rng(seed)
    saved = [(p, p.data.copy()) for p in model.parameters()]
    original = np.asarray(method(model, x, target))
    correlations, maps = [], []
    try:
        for name, module in chosen:
            if not cascading:
                for p, data in saved:
                    p.data[...] = data
            for p in module.parameters():
                std = float(tn.tensor(p.data).numpy().std()) or 0.1
                noise = rng.normal(0.0, std, size=p.shape).astype(p.dtype)
                p.data[...] = tn.tensor(noise, device=p.device).data
            current = np.asarray(method(model, x, target))
            maps.append(current)
            correlations.append(spearman(original, current, absolute))
    finally:
        for p, data in saved:
            p.data[...] = data
    per_example = np.array(correlations)
    means = per_example.mean(axis=1)
    return RandomizationResult(layers=[n for n, _ in chosen], correlations=means,
                               per_example=per_example, maps=maps, threshold=threshold,
                               passed=bool(np.isfinite(means[-1]) and means[-1] < threshold))


# ---- deletion and insertion --------------------------------------------------------------

@dataclass
class Curve:
    fractions: np.ndarray        # share of pixels removed (deletion) or added (insertion)
    probabilities: np.ndarray    # (N, steps + 1) probability of the target class
    auc: np.ndarray              # area under each example's curve (trapezoid over [0, 1])


def _baseline_image(xs, baseline):
    if isinstance(baseline, str):
        if baseline != "blur":
            raise ValueError(f"baseline must be a number, an array or 'blur', got {baseline!r}")
        from scipy import ndimage
        sigma = [0, 0] + [max(1.0, s / 8) for s in xs.shape[2:]]
        return ndimage.gaussian_filter(xs, sigma=sigma[:xs.ndim], mode="nearest").astype(xs.dtype)
    return np.broadcast_to(np.asarray(baseline, dtype=xs.dtype), xs.shape).copy()


def _curve(model, x, target, attribution, steps, baseline, batch_size, insert):
    xt = as_input(x, model, image=True)
    xs = to_numpy(xt)
    n, c, h, w = xs.shape
    steps = check_positive_int(steps, "steps")
    target = check_targets(target, n)
    scores = _pixel_scores(attribution, absolute=False)
    if scores.shape != (n, h, w):
        raise ValueError(f"attribution must be (N, H, W) or (N, C, H, W) for images "
                         f"{xs.shape}, got {np.asarray(attribution).shape}")
    base = _baseline_image(xs, baseline)
    fractions = np.linspace(0, 1, steps + 1)
    counts = np.round(fractions * h * w).astype(int)
    probs = np.empty((n, steps + 1))
    for i in range(n):
        order = np.argsort(-scores[i].ravel(), kind="stable")      # most important first
        rank = np.empty(h * w, dtype=int)
        rank[order] = np.arange(h * w)
        # step j changes the pixels ranked below counts[j]
        changed = (rank[None, :] < counts[:, None]).reshape(steps + 1, 1, h, w)
        start, end = (base[i], xs[i]) if insert else (xs[i], base[i])
        images = np.where(changed, end[None], start[None])
        out = []
        with tn.no_grad(), frozen(model):
            for a, b in batches(steps + 1, batch_size):
                logits = check_logits(model(tn.tensor(images[a:b], device=xt.device)), b - a)
                check_targets(target, n, logits.shape[1])
                out.append(softmax_np(to_numpy(logits).astype(np.float64))[:, target[i]])
        probs[i] = np.concatenate(out)
    auc = np.trapezoid(probs, fractions, axis=1)
    return Curve(fractions=fractions, probabilities=probs, auc=auc)


def deletion_curve(model, x, target, attribution, steps=20, baseline=0.0, batch_size=64):
    """Replace the most important pixels first (by ``attribution``, summed over channels)
    with ``baseline`` (a number, an array, or 'blur') and track P(target).  Lower area =
    the map found the pixels the prediction needs."""
    return _curve(model, x, target, attribution, steps, baseline, batch_size, insert=False)


def insertion_curve(model, x, target, attribution, steps=20, baseline="blur", batch_size=64):
    """Start from ``baseline`` (a blurred copy by default) and put the most important pixels
    back first; higher area = better."""
    return _curve(model, x, target, attribution, steps, baseline, batch_size, insert=True)


def compare_methods(model, x, target, maps, steps=20, deletion_baseline=0.0,
                    insertion_baseline="blur"):
    """Deletion and insertion areas of several maps on the same images.

    maps  {method name: attribution map for x}
    Returns {name: {'deletion_auc': mean, 'insertion_auc': mean}}."""
    table = {}
    for name, m in maps.items():
        d = deletion_curve(model, x, target, m, steps, deletion_baseline)
        i = insertion_curve(model, x, target, m, steps, insertion_baseline)
        table[name] = {"deletion_auc": float(d.auc.mean()),
                       "insertion_auc": float(i.auc.mean())}
    return table


# ---- fragility ------------------------------------------------------------------------------

@dataclass
class FragilityResult:
    topk_intersection: np.ndarray   # (N,) share of the top-k pixels that stayed (1 = robust)
    spearman: np.ndarray            # (N,) rank correlation of the original and perturbed maps
    prediction_kept: np.ndarray     # (N,) the perturbed input keeps the predicted class
    perturbation_linf: np.ndarray   # (N,) max |delta| used
    perturbed: np.ndarray           # the perturbed inputs
    original_maps: np.ndarray
    perturbed_maps: np.ndarray


def fragility(model, x, target, method, epsilon=0.03, k=None, n_candidates=16, n_iter=5,
              clip=None, seed=0, progress=True):
    """Ghorbani et al.'s question: does a small change that keeps the prediction move the map?

    A gradient-free search (the attack of the paper needs second derivatives): start with
    ``n_candidates`` random sign perturbations of size ``epsilon`` (L-infinity, in input
    units), keep the candidates whose predicted class is unchanged, and for ``n_iter``
    rounds refine the best one with random sign steps, keeping a candidate when it lowers
    the top-k intersection.  Candidates are evaluated as one batch per round.

    k      pixels counted as "the explanation" (default: 10% of the pixels)
    clip   (low, high) valid input range, or None
    """
    if not callable(method):
        raise TypeError("method must be a function (model, x, target) -> map")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
    n_candidates = check_positive_int(n_candidates, "n_candidates")
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    xt = as_input(x, model)
    xs = to_numpy(xt)
    n = xs.shape[0]
    target = check_targets(target, n)
    originals = np.asarray(method(model, xs, target))
    pixels = _pixel_scores(originals[:1], True)[0].size
    k = max(1, pixels // 10) if k is None else check_positive_int(k, "k")
    rng = np.random.default_rng(seed)
    with tn.no_grad(), frozen(model):
        predicted = to_numpy(model(xt)).argmax(axis=1)

    def evaluate(i, deltas):
        cand = xs[i][None] + deltas
        if clip is not None:
            cand = np.clip(cand, clip[0], clip[1])
        with tn.no_grad(), frozen(model):
            pred = to_numpy(model(tn.tensor(cand, device=xt.device))).argmax(axis=1)
        maps = np.asarray(method(model, cand, np.full(len(cand), target[i])))
        inter = topk_intersection(np.repeat(originals[i:i + 1], len(cand), 0), maps, k)
        inter = np.where(pred == predicted[i], inter, np.inf)      # must keep the prediction
        return cand, maps, inter

    best_x, best_maps, best_inter = [], [], []
    bar = progress_bar(n * (n_iter + 1), "fragility", progress)
    try:
        for i in range(n):
            deltas = epsilon * rng.choice([-1.0, 1.0], size=(n_candidates,) + xs.shape[1:])
            cand, maps, inter = evaluate(i, deltas.astype(xs.dtype))
            j = int(np.argmin(inter))
            bx, bm, bi, bd = cand[j], maps[j], inter[j], deltas[j]
            bar.update(1)
            for _ in range(n_iter):
                steps = 0.5 * epsilon * rng.choice([-1.0, 1.0],
                                                   size=(n_candidates,) + xs.shape[1:])
                deltas = np.clip(bd[None] + steps, -epsilon, epsilon)
                cand, maps, inter = evaluate(i, deltas.astype(xs.dtype))
                j = int(np.argmin(inter))
                if inter[j] < bi:
                    bx, bm, bi, bd = cand[j], maps[j], inter[j], deltas[j]
                bar.update(1)
            if not np.isfinite(bi):      # no candidate kept the prediction: report no change
                bx, bm, bi = xs[i], originals[i], 1.0
            best_x.append(bx), best_maps.append(bm), best_inter.append(bi)
    finally:
        bar.close()
    perturbed = np.stack(best_x)
    pmaps = np.stack(best_maps)
    with tn.no_grad(), frozen(model):
        kept = to_numpy(model(tn.tensor(perturbed, device=xt.device))).argmax(axis=1) == predicted
    return FragilityResult(
        topk_intersection=np.array(best_inter, dtype=float),
        spearman=spearman(originals, pmaps),
        prediction_kept=kept,
        perturbation_linf=np.abs(perturbed - xs).reshape(n, -1).max(axis=1),
        perturbed=perturbed, original_maps=originals, perturbed_maps=pmaps)


# ---- TCAV calibration ---------------------------------------------------------------------

@dataclass
class TCAVCalibration:
    test: str                       # the tcav test measured ('sets' or 'ttest')
    trials: int
    alpha: float
    false_positives: int            # trials where the random "concept" was significant
    false_positive_rate: float
    false_positive_interval: tuple  # 95% Clopper-Pearson interval of the rate
    detections: int                 # trials where the supplied concept was significant
    power: float
    power_interval: tuple
    random_p_values: np.ndarray     # (trials,) p of the random "concept"
    concept_p_values: np.ndarray    # (trials,) p of the supplied concept
    concept_scores: np.ndarray      # (trials,) the supplied concept's TCAV score

    def __str__(self):
        lo, hi = self.false_positive_interval
        plo, phi = self.power_interval
        return (f"tcav test={self.test!r}, {self.trials} trials at alpha={self.alpha}: random "
                f"concept significant {self.false_positives}/{self.trials} "
                f"({self.false_positive_rate:.0%}, 95% CI {lo:.0%}-{hi:.0%}); concept "
                f"significant {self.detections}/{self.trials} ({self.power:.0%}, 95% CI "
                f"{plo:.0%}-{phi:.0%})")


def _binomial_interval(k, n):
    from scipy import stats
    ci = stats.binomtest(int(k), int(n)).proportion_ci(0.95)     # Clopper-Pearson
    return float(ci.low), float(ci.high)


def tcav_calibration(model, layer, target, concept_inputs, random_inputs, class_inputs,
                     trials=40, n_random_sets=10, set_size=None, alpha=0.05, test="sets",
                     smoothing=3.0, cav_steps=300, cav_lr=0.05, test_fraction=0.33, seed=0,
                     batch_size=64, progress=True):
    """Does ``explain.tcav``'s test keep its promise in YOUR setting?  Its false-positive rate
    (how often a "concept" that is just another random set is called significant; a
    calibrated test: about alpha) and its power on ``concept_inputs``.

    Each of ``trials`` trials draws, without replacement from the pool ``random_inputs`` (an
    array (N, ...) or a list of sets, pooled), ``n_random_sets`` random sets and one more
    set that plays a random "concept", all of ``set_size`` examples, and a random
    ``set_size`` of the concept examples; then runs the test (``test``, ``smoothing``, the
    CAV settings: as in ``explain.tcav``) for both concepts against the same random sets.
    Activations and class gradients are computed once, so a trial costs only its CAVs.
    Each p-value is compared with ``alpha`` itself (one question per concept and trial).

    set_size   default: as large as the pool and the concept examples allow (at most 40)
    Returns a ``TCAVCalibration`` (``print`` it) with 95% Clopper-Pearson intervals."""
    from ._common import resolve_layer
    from .tcav import (MIN_EXAMPLES, _check_options, _test_layer, cav_trainer, class_gradients,
                       layer_activations)
    n_random_sets = check_positive_int(n_random_sets, "n_random_sets", minimum=3)
    _check_options(test, [None] * n_random_sets, None, alpha, smoothing)
    trials = check_positive_int(trials, "trials")
    pool = (np.concatenate([to_numpy(r) for r in random_inputs])
            if isinstance(random_inputs, (list, tuple)) else to_numpy(random_inputs))
    concept = to_numpy(concept_inputs)
    per_trial = n_random_sets + 1
    if set_size is None:
        set_size = min(40, len(concept), len(pool) // per_trial)
    set_size = check_positive_int(set_size, "set_size", minimum=MIN_EXAMPLES)
    if per_trial * set_size > len(pool):
        raise ValueError(f"random_inputs has {len(pool)} examples; a trial draws "
                         f"{per_trial} disjoint sets of set_size={set_size} "
                         f"(= {per_trial * set_size})")
    if set_size > len(concept):
        raise ValueError(f"concept_inputs has {len(concept)} examples, fewer than "
                         f"set_size={set_size}")
    _, module = resolve_layer(model, layer, default=None)
    pool_acts = layer_activations(model, module, pool, batch_size)
    concept_acts = layer_activations(model, module, concept, batch_size)
    grads = class_gradients(model, module, class_inputs, target, batch_size)
    get_cavs = cav_trainer(test_fraction, cav_steps, cav_lr)
    rng = np.random.default_rng(seed)
    p_random, p_concept, scores = [], [], []
    bar = progress_bar(trials, f"tcav calibration ({test})", progress)
    try:
        for trial in range(trials):
            order = rng.permutation(len(pool))
            sets = [pool_acts[order[k * set_size:(k + 1) * set_size]] for k in range(per_trial)]
            picked = concept_acts[rng.permutation(len(concept))[:set_size]]
            fields = _test_layer({"concept": picked, "random": sets[0]}, sets[1:], grads,
                                 get_cavs, test, None, smoothing, seed=seed + 10_000 * trial)
            p_concept.append(fields["concept"]["p_value"])
            p_random.append(fields["random"]["p_value"])
            scores.append(fields["concept"]["score"])
            bar.update(1)
    finally:
        bar.close()
    p_random, p_concept = np.array(p_random), np.array(p_concept)
    false_positives = int(np.sum(p_random < alpha))
    detections = int(np.sum(p_concept < alpha))
    return TCAVCalibration(
        test=test, trials=trials, alpha=alpha, false_positives=false_positives,
        false_positive_rate=false_positives / trials,
        false_positive_interval=_binomial_interval(false_positives, trials),
        detections=detections, power=detections / trials,
        power_interval=_binomial_interval(detections, trials),
        random_p_values=p_random, concept_p_values=p_concept, concept_scores=np.array(scores))
