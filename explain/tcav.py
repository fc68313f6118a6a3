"""TCAV: Testing with Concept Activation Vectors (Kim et al. 2018).

How much does a human concept C (e.g. "striped") influence a model's prediction of class k
(e.g. "zebra")?  The lecture's recipe, for a layer l:

  CAV      train a linear classifier g that separates the activations f_l(x) of concept
           examples from those of random examples; its coefficient vector (normalized) is
           the concept activation vector v_l^C.  Its held-out accuracy says whether the
           layer can tell the concept apart at all.
  S        the conceptual sensitivity of one input is the directional derivative
               S_{C,k,l}(x) = grad h_{l,k}(f_l(x)) . v_l^C
           where h_{l,k} maps the layer's activations to the logit of class k:
           S > 0 when moving the activations towards the concept raises the class score.
  score    TCAV_{C,k,l} = |{x in X_k : S_{C,k,l}(x) > 0}| / |X_k|

A single CAV can be a fluke, so one CAV is trained against each of several random sets,
giving a distribution of scores; CAVs of a random set against the other random sets give
the scores expected by chance.  A two-sided t-test compares the two (p < alpha, with a
Bonferroni correction when several concepts/layers are tested together).

Activations of each set at each layer, and the class gradients, are computed once and
reused by every CAV; with ``cache_dir`` they (and the CAVs) are saved as .npz files, so an
interrupted run resumes where it stopped.
"""
import hashlib
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

import tinynet as tn
import tinynet.functional as F
from tinynet import optim

from ._common import (as_input, batches, capture, check_logits, check_positive_int,
                      check_targets, evaluating, frozen, one_hot, progress_bar, resolve_layer,
                      to_numpy)

MIN_EXAMPLES = 4          # per side of a CAV classifier: 2+ to train, 1+ to test on each side


@dataclass
class CAV:
    """A concept activation vector: unit normal ``vector`` of the separating hyperplane
    (pointing towards the concept), its ``bias`` and the classifier's held-out ``accuracy``."""
    vector: np.ndarray
    bias: float
    accuracy: float


@dataclass
class TCAVResult:
    concept: str
    layer: str
    target: int
    score: float                    # mean TCAV score over the CAVs (one per random set)
    scores: np.ndarray              # one TCAV score per random set
    random_scores: np.ndarray       # random-vs-random scores (the null distribution)
    p_value: float                  # two-sided t-test, scores vs random_scores
    significant: bool               # p_value < alpha / n_tests
    alpha: float
    n_tests: int                    # Bonferroni: concepts x layers tested together
    cav_accuracies: np.ndarray      # held-out accuracy of each concept CAV
    random_cav_accuracies: np.ndarray = field(default=None)

    @property
    def score_std(self):
        return float(np.std(self.scores))


# ---- the pieces ---------------------------------------------------------------------------

def layer_activations(model, layer, x, batch_size=64):
    """f_l(x): the layer's outputs for ``x``, flattened to (N, D), without a graph."""
    _, module = resolve_layer(model, layer, default=None)
    xt = as_input(x, model)
    out = []
    with tn.no_grad(), frozen(model), capture(module) as seen:
        for a, b in batches(xt.shape[0], batch_size):
            seen.clear()
            model(tn.Tensor(xt.data[a:b]))
            if not seen:
                raise ValueError("the chosen layer was not called during the forward pass")
            out.append(to_numpy(seen[-1]).reshape(b - a, -1))
    return np.concatenate(out)


def layer_head(model, layer):
    """h_l: a function from the layer's activations (a Tensor shaped like the layer's output)
    to the logits.  It runs ``model`` on ``x`` but swaps the layer's output for the given
    activations (a forward hook), so ``h(x, a)`` is differentiable in ``a``."""
    _, module = resolve_layer(model, layer, default=None)

    def h(x, activations):
        xt = as_input(x, model)
        with evaluating(model), capture(module, replace=lambda out: activations):
            return model(xt)
    return h


def class_gradients(model, layer, x, target, batch_size=64):
    """grad h_{l,k}(f_l(x)) for each input: d(logit k)/d(activations), flattened to (N, D)."""
    _, module = resolve_layer(model, layer, default=None)
    xt = as_input(x, model)
    n = xt.shape[0]
    target = check_targets(target, n)
    grads = []
    for a, b in batches(n, batch_size):
        leaf = {}

        def make_leaf(output):
            leaf["a"] = tn.Tensor(output.data, requires_grad=True)
            return leaf["a"]
        # forward and backward, also inside a caller's no_grad(); weights get no gradient
        with tn.enable_grad(), frozen(model):
            with capture(module, replace=make_leaf):
                logits = check_logits(model(tn.Tensor(xt.data[a:b])), b - a)
            check_targets(target, n, logits.shape[1])
            logits.backward(one_hot(target[a:b], logits.shape[1], logits))
        grads.append(to_numpy(leaf["a"].grad).reshape(b - a, -1))
    return np.concatenate(grads)


def train_cav(concept_acts, random_acts, test_fraction=0.33, steps=300, lr=0.05,
              weight_decay=1e-3, seed=0):
    """Logistic regression g(a) = sigmoid(a . w + b) (concept = 1, random = 0) trained with
    tinynet (binary cross-entropy, Adam, full batch) on a random split; returns a ``CAV``
    with v = w / |w| and the accuracy on the held-out part.

    The activations are centred and divided by their mean norm first (one scalar), which
    changes only the bias, not the direction of w in the original space."""
    concept_acts = np.asarray(concept_acts, dtype=np.float64).reshape(len(concept_acts), -1)
    random_acts = np.asarray(random_acts, dtype=np.float64).reshape(len(random_acts), -1)
    for name, acts in (("concept", concept_acts), ("random", random_acts)):
        if len(acts) < MIN_EXAMPLES:
            raise ValueError(f"a CAV needs at least {MIN_EXAMPLES} {name} examples (some to "
                             f"train the classifier, some to test it), got {len(acts)}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for label, acts in ((1, concept_acts), (0, random_acts)):
        order = rng.permutation(len(acts))
        n_test = min(max(1, int(round(test_fraction * len(acts)))), len(acts) - 2)
        test_idx.append((acts[order[:n_test]], np.full(n_test, label)))
        train_idx.append((acts[order[n_test:]], np.full(len(acts) - n_test, label)))
    x_train = np.concatenate([a for a, _ in train_idx])
    y_train = np.concatenate([y for _, y in train_idx]).astype(np.float64)
    x_test = np.concatenate([a for a, _ in test_idx])
    y_test = np.concatenate([y for _, y in test_idx])

    center = x_train.mean(axis=0)
    scale = np.linalg.norm(x_train - center, axis=1).mean() or 1.0
    xs = tn.tensor((x_train - center) / scale)
    ys = tn.tensor(y_train)
    w = tn.tensor(np.zeros(xs.shape[1]), requires_grad=True)
    b = tn.tensor(np.zeros(1), requires_grad=True)
    opt = optim.Adam([w, b], lr=lr, weight_decay=0.0)
    with tn.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            logits = xs @ w + b
            loss = F.binary_cross_entropy_with_logits(logits, ys) + weight_decay * (w * w).sum()
            loss.backward()
            opt.step()
    w_np, b_np = w.numpy(), float(b.numpy()[0])
    predicted = ((x_test - center) / scale) @ w_np + b_np > 0
    accuracy = float(np.mean(predicted == (y_test == 1)))
    norm = np.linalg.norm(w_np)
    vector = w_np / norm if norm > 0 else w_np
    # bias of the hyperplane a . v + bias = 0 in the original (unscaled) space
    bias = (b_np * scale - center @ w_np) / norm if norm > 0 else 0.0
    return CAV(vector=vector, bias=float(bias), accuracy=accuracy)


def sensitivities(gradients, cav):
    """S_{C,k,l}(x) = grad h_{l,k}(f_l(x)) . v_l^C for each row of ``gradients``."""
    v = cav.vector if isinstance(cav, CAV) else np.asarray(cav)
    return np.asarray(gradients).reshape(len(gradients), -1) @ v


def tcav_score(gradients, cav):
    """Fraction of the class inputs with S > 0."""
    return float(np.mean(sensitivities(gradients, cav) > 0))


# ---- caching ------------------------------------------------------------------------------

def _digest(*parts):
    h = hashlib.sha1()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str((part.shape, str(part.dtype))).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()[:16]


def _model_digest(model):
    if not hasattr(model, "state_dict"):
        return repr(id(model))
    state = model.state_dict()
    return _digest(*[item for k in sorted(state) for item in (k, to_numpy(state[k]))])


class _Store:
    """In-memory results, mirrored to ``cache_dir`` as .npz (tn.save) when one is given."""

    def __init__(self, cache_dir):
        self.cache_dir = cache_dir
        self.memory = {}
        if cache_dir is not None:
            os.makedirs(cache_dir, exist_ok=True)

    def get(self, key, compute):
        if key in self.memory:
            return self.memory[key]
        path = os.path.join(self.cache_dir, key + ".npz") if self.cache_dir else None
        if path and os.path.exists(path):
            value = dict(tn.load(path))
        else:
            value = compute()
            if path:
                tn.save(value, path)
        self.memory[key] = value
        return value


# ---- the test --------------------------------------------------------------------------------

def _as_dict(inputs, default_name):
    if isinstance(inputs, dict):
        if not inputs:
            raise ValueError("concept_inputs is an empty dict")
        return dict(inputs)
    return {default_name: inputs}


def _check_set(x, what, minimum):
    n = len(x) if not isinstance(x, tn.Tensor) else x.shape[0]
    if n < minimum:
        raise ValueError(f"{what} has {n} examples; at least {minimum} are needed")


def tcav(model, layer, target, concept_inputs, random_inputs, class_inputs, alpha=0.05,
         random_counterpart=None, test_fraction=0.33, cav_steps=300, cav_lr=0.05,
         batch_size=64, cache_dir=None, seed=0, progress=True):
    """TCAV scores of concept(s) for class ``target`` at layer(s), with a significance test.

    layer            a layer (module or dotted name) or a list of them
    target           the class k (an int)
    concept_inputs   examples of the concept (N, C, H, W), or a dict {name: examples}
    random_inputs    a list of random sets; one CAV is trained against each
    class_inputs     inputs of class k (the X_k of the score)
    random_counterpart  a random set that plays the concept in the random-vs-random CAVs
                     (the null distribution), against each random set; default: each random
                     set in turn plays it against the next one (R_i vs R_{i+1 mod m}), so
                     the null also varies with the positive set, as the concept's scores
                     would for another sample of concept images
    alpha            significance level before the Bonferroni correction over the
                     len(concepts) x len(layers) tests asked for at once
    cache_dir        save activations, class gradients and CAVs there (.npz) and reuse them

    Returns a ``TCAVResult`` for one concept and one layer; otherwise a dict
    {(concept name, layer name): TCAVResult}.
    """
    from scipy import stats

    single = not isinstance(concept_inputs, dict) and not isinstance(layer, (list, tuple))
    concepts = _as_dict(concept_inputs, "concept")
    layers = list(layer) if isinstance(layer, (list, tuple)) else [layer]
    if not layers:
        raise ValueError("layer: no layer given")
    resolved = [resolve_layer(model, l, default=None) for l in layers]
    if not isinstance(target, (int, np.integer)) or isinstance(target, bool):
        raise TypeError(f"target must be one class index (int), got {target!r}")
    if not isinstance(random_inputs, (list, tuple)):
        raise TypeError("random_inputs must be a list of random sets (one CAV per set)")
    needed = 2 if random_counterpart is not None else 3
    if len(random_inputs) < needed:
        raise ValueError(
            f"random_inputs has {len(random_inputs)} random sets; the t-test needs at least "
            f"{needed} (2 or more CAV scores per side, from distinct pairs of sets)")
    for name, x in concepts.items():
        _check_set(x, f"concept {name!r}", MIN_EXAMPLES)
    for i, x in enumerate(random_inputs):
        _check_set(x, f"random set {i}", MIN_EXAMPLES)
    if random_counterpart is not None:
        _check_set(random_counterpart, "random_counterpart", MIN_EXAMPLES)
    _check_set(class_inputs, "class_inputs", 1)
    check_positive_int(cav_steps, "cav_steps")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")

    store = _Store(cache_dir)
    model_key = _model_digest(model)
    m = len(random_inputs)
    if random_counterpart is not None:
        null_pairs = [(random_counterpart, r) for r in random_inputs]
    else:
        null_pairs = [(random_inputs[i], random_inputs[(i + 1) % m]) for i in range(m)]
    n_tests = len(concepts) * len(layers)
    n_cavs = len(layers) * (len(concepts) + 1) * m
    bar = progress_bar(n_cavs, "tcav", progress)
    results = {}
    try:
        for layer_name, module in resolved:
            def acts(x):
                data = to_numpy(x)
                key = f"acts_{_digest(model_key, layer_name, data)}"
                return store.get(key, lambda: {
                    "a": layer_activations(model, module, data, batch_size)})["a"]

            def cav(pos, neg, seed_i):
                pa, na = acts(pos), acts(neg)
                key = f"cav_{_digest(_digest(pa), _digest(na), test_fraction, cav_steps, cav_lr, seed_i)}"
                c = store.get(key, lambda: _cav_dict(train_cav(
                    pa, na, test_fraction, cav_steps, cav_lr, seed=seed_i)))
                bar.update(1)
                return CAV(np.asarray(c["vector"]), float(c["bias"]), float(c["accuracy"]))

            data = to_numpy(class_inputs)
            gkey = f"grads_{_digest(model_key, layer_name, data, int(target))}"
            grads = store.get(gkey, lambda: {
                "g": class_gradients(model, module, data, target, batch_size)})["g"]

            null_cavs = [cav(pos, neg, seed + 1000 + i)
                         for i, (pos, neg) in enumerate(null_pairs)]
            null_scores = np.array([tcav_score(grads, c) for c in null_cavs])
            for cname, cx in concepts.items():
                cavs = [cav(cx, neg, seed + i) for i, neg in enumerate(random_inputs)]
                scores = np.array([tcav_score(grads, c) for c in cavs])
                p = _two_sided_p(stats, scores, null_scores)
                results[(cname, layer_name)] = TCAVResult(
                    concept=cname, layer=layer_name, target=int(target),
                    score=float(scores.mean()), scores=scores, random_scores=null_scores,
                    p_value=p, significant=bool(p < alpha / n_tests), alpha=alpha,
                    n_tests=n_tests, cav_accuracies=np.array([c.accuracy for c in cavs]),
                    random_cav_accuracies=np.array([c.accuracy for c in null_cavs]))
    finally:
        bar.close()
    return next(iter(results.values())) if single else results


def _cav_dict(c):
    return {"vector": c.vector, "bias": np.array(c.bias), "accuracy": np.array(c.accuracy)}


def _two_sided_p(stats, scores, null_scores):
    """Welch-free two-sided t-test (scipy.stats.ttest_ind); identical constant samples give
    p = 1 (no evidence of a difference) instead of NaN."""
    if np.allclose(scores, scores[0]) and np.allclose(null_scores, null_scores[0]):
        return 0.0 if not np.isclose(scores[0], null_scores[0]) else 1.0
    with warnings.catch_warnings():     # near-constant samples: scipy warns, p is still fine
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(scores, null_scores).pvalue)
    return 1.0 if np.isnan(p) else p
