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

A single CAV can be a fluke, so one CAV is trained against each of m random sets R_1..R_m,
giving m scores; ``score`` is their mean.  Is it more than chance?  Two tests:

  test="sets" (default, calibrated)   the unit of the test is the SET.  The concept sample C
           is one draw; all m of its CAVs share it, so its m scores cluster around a value set
           by that sample's quirks and say nothing about how another sample of random images
           would have scored.  So each random set R_j plays the concept in turn, against the
           other random sets, exactly as C did against all of them:
               T(C)   = mean_i   s(C, R_i)            (i = 1..m)
               T(R_j) = mean_i!=j s(R_j, R_i)         (j = 1..m, the null distribution)
           and C is significant when T(C) is an unusual draw from the T(R_j) (a prediction
           t-test with m - 1 degrees of freedom):
               t = (T(C) - mean_j T(R_j)) / ((m-1)/m sd_j T(R_j) sqrt(1 + 1/m)),
               p = 2 P(T_{m-1} > |t|)
           ((m - 1)/m: in the round robin each pair of random sets enters two T(R_j) with
           opposite signs, which spreads the T(R_j) by m/(m - 1) compared with T(C)).
           s is a smoothed TCAV score (the idea of alpha-TCAV, Schnoor et al. 2026):
               s(C, R) = mean_{x in X_k} sigmoid(S_{C,k,l}(x) / tau)
           with tau = ``smoothing`` x the median |S| of the random-vs-random CAVs (default 3:
           a typical random CAV's S stays in the sigmoid's near-linear part, a concept's large
           S saturates); as tau -> 0 it is the lecture's score (``smoothing=0``: the indicator
           itself).  Why smooth: right below a linear head every x has the same gradient, so
           every plain score is 0 or 1, T(R_j) is about uniform on [0, 1], a random set gets
           the top value 1 about once in m + 1 tries, and the test on the plain score found a
           planted concept in 0 of 40 trials there.  The CAV of R_j against R_i is minus the
           CAV of R_i against R_j (the classifier with the labels swapped), so the null costs
           m (m - 1) / 2 CAVs.
  test="ttest" (the classic, MISCALIBRATED)   a two-sided t-test of the m concept scores
           against m random-vs-random scores (R_i vs R_{i+1 mod m}, or ``random_counterpart``
           vs each R_i) as if they were independent draws.  They are not: on a CNN trained to
           detect a striped patch, a "concept" that is just another random noise set is
           called significant in 12-15% of 40 trials at alpha = 0.05 (22% on real photos; the
           'sets' test: 2-5%), and more random sets make it worse (docs/tcav_statistics.md).

Both apply a Bonferroni correction (p < alpha / n_tests) when several concepts/layers are
tested together.  ``explain.sanity.tcav_calibration`` measures a test's false-positive rate
and power in your own setting.

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

from .cav import CAV, MIN_EXAMPLES, train_cav, train_cavs     # noqa: F401 (public here too)
from ._common import (as_input, batches, capture, check_positive_int, class_score_gradients,
                      evaluating, frozen, progress_bar, resolve_layer, to_numpy)

TESTS = ("sets", "ttest")
CAV_CHUNK = 32            # CAVs trained together in one batched problem (and cached together)


@dataclass
class TCAVResult:
    concept: str
    layer: str
    target: int
    score: float                    # the lecture's TCAV score, mean over the CAVs
    scores: np.ndarray              # one TCAV score per random set (CAV of C vs R_i)
    random_scores: np.ndarray       # the null's TCAV scores: 'ttest' one per random-vs-random
                                    # CAV; 'sets' T(R_j) with the plain score, one per set
    p_value: float                  # from the test named in ``test``
    significant: bool               # p_value < alpha / n_tests
    alpha: float
    n_tests: int                    # Bonferroni: concepts x layers tested together
    cav_accuracies: np.ndarray      # held-out accuracy of each concept CAV
    random_cav_accuracies: np.ndarray = field(default=None)
    test: str = None                # 'sets' (calibrated) or 'ttest' (classic, miscalibrated)
    statistic: float = None         # 'sets': T(C), the concept's mean smoothed score
    random_statistics: np.ndarray = None   # 'sets': T(R_j), the null (spread shrunk by
                                           # (m - 1)/m in the test, see the docstring)
    tau: float = None               # 'sets': the smoothing scale of S (0: the plain score)

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
    """grad h_{l,k}(f_l(x)) for each input: d(logit k)/d(activations), flattened to (N, D)
    (``class_score_gradients`` with wrt='layer', in batches)."""
    _, module = resolve_layer(model, layer, default=None)
    xt = as_input(x, model)
    grads = []
    for a, b in batches(xt.shape[0], batch_size):
        part = target if np.ndim(target) == 0 else np.asarray(target)[a:b]
        _, grad, _ = class_score_gradients(model, tn.Tensor(xt.data[a:b]), part, wrt="layer",
                                           layer_module=module)
        grads.append(to_numpy(grad).reshape(b - a, -1))
    return np.concatenate(grads)


# ---- sensitivities and scores ----------------------------------------------------------

def sensitivities(gradients, cav):
    """S_{C,k,l}(x) = grad h_{l,k}(f_l(x)) . v_l^C for each row of ``gradients``."""
    v = cav.vector if isinstance(cav, CAV) else np.asarray(cav)
    return np.asarray(gradients).reshape(len(gradients), -1) @ v


def tcav_score(gradients, cav):
    """TCAV_{C,k,l}: the fraction of the class inputs with S > 0."""
    return float(np.mean(sensitivities(gradients, cav) > 0))


def smoothed_score(s, tau):
    """mean_x sigmoid(S(x) / tau): the TCAV score with the step 1[S > 0] smoothed over a width
    tau (tau = 0: the step itself, the lecture's score).  ``s`` is (..., N) sensitivities."""
    s = np.asarray(s, dtype=np.float64)
    if tau <= 0:
        return np.mean(s > 0, axis=-1)
    return np.mean(0.5 * (1 + np.tanh(s / (2 * tau))), axis=-1)      # = sigmoid(s / tau)


# ---- the tests --------------------------------------------------------------------------

def ttest_p(scores, null_scores):
    """The classic test: two-sided two-sample t-test (scipy.stats.ttest_ind) of the concept's
    scores against the random-vs-random scores; identical constant samples give p = 1 (no
    evidence of a difference) instead of NaN.  Miscalibrated: see the module docstring."""
    from scipy import stats
    scores, null_scores = np.asarray(scores, float), np.asarray(null_scores, float)
    if np.allclose(scores, scores[0]) and np.allclose(null_scores, null_scores[0]):
        return 0.0 if not np.isclose(scores[0], null_scores[0]) else 1.0
    with warnings.catch_warnings():     # near-constant samples: scipy warns, p is still fine
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(scores, null_scores).pvalue)
    return 1.0 if np.isnan(p) else p


def set_test_p(statistic, null_statistics):
    """Two-sided prediction t-test: is ``statistic`` (one set's T) an unusual draw from the
    distribution of which ``null_statistics`` (the T of m random sets) are a sample?
        t = (T - mean) / (sd * sqrt(1 + 1/m)),  p = 2 P(T_{m-1} > |t|)
    A null with no spread gives p = 1 for an equal T, else 0."""
    from scipy import stats
    null = np.asarray(null_statistics, dtype=np.float64)
    m = len(null)
    if m < 2:
        raise ValueError(f"the set test needs the T of at least 2 random sets, got {m}")
    sd = null.std(ddof=1)
    if sd == 0 or not np.isfinite(sd):
        return 1.0 if np.isclose(statistic, null.mean()) else 0.0
    t = (statistic - null.mean()) / (sd * np.sqrt(1 + 1 / m))
    return float(2 * stats.t.sf(abs(t), m - 1))


def _set_test(concept_sens, null_sens, m, smoothing):
    """The 'sets' test from sensitivities.

    concept_sens  {name: (m, N) S of the concept's CAVs against R_1..R_m}
    null_sens     {(i, j): (N,) S of the CAV of R_i against R_j}, i < j
    Returns tau, {name: (T(C), p)}, T(R_j) smoothed and T(R_j) with the plain score."""
    tau = smoothing * float(np.median(np.abs(np.stack(list(null_sens.values())))))

    def null_t(score_fn):
        t = np.zeros(m)
        for (i, j), s in null_sens.items():     # R_i vs R_j, and R_j vs R_i = minus it
            t[i] += score_fn(s)
            t[j] += score_fn(-s)
        return t / (m - 1)
    smoothed_null = null_t(lambda s: smoothed_score(s, tau))
    plain_null = null_t(lambda s: smoothed_score(s, 0.0))
    # In a round robin each pair enters two T(R_j) with opposite signs, which spreads them
    # apart: if s(A, B) = a - b + noise, T(R_j) - mean = m/(m-1) (r_j - mean r) + ..., while
    # T(C) - mean = c - mean r + ...  So shrink the null's deviations by (m - 1)/m.
    mean = smoothed_null.mean()
    null_for_test = mean + (smoothed_null - mean) * (m - 1) / m
    out = {}
    for name, s in concept_sens.items():
        statistic = float(np.mean(smoothed_score(s, tau)))
        out[name] = (statistic, set_test_p(statistic, null_for_test))
    return tau, out, smoothed_null, plain_null


def _test_layer(concept_acts, random_acts, grads, get_cavs, test="sets", counterpart_acts=None,
                smoothing=3.0, seed=0):
    """Both tests on one layer, from activations: {name: dict of TCAVResult fields}.

    concept_acts  {name: (n_C, D)}; random_acts  list of m (n_i, D); grads  (N, D)
    get_cavs      function [(pos, neg, seed)] -> [CAV] (trains, or reads a cache)"""
    m = len(random_acts)
    jobs = [(acts, r, seed + i) for acts in concept_acts.values()
            for i, r in enumerate(random_acts)]
    if test == "sets":
        null_pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
        jobs += [(random_acts[i], random_acts[j], seed + 2000 + i * m + j) for i, j in null_pairs]
    elif counterpart_acts is not None:
        jobs += [(counterpart_acts, r, seed + 1000 + i) for i, r in enumerate(random_acts)]
    else:
        jobs += [(random_acts[i], random_acts[(i + 1) % m], seed + 1000 + i) for i in range(m)]
    cavs = get_cavs(jobs)
    vectors = np.stack([c.vector for c in cavs], axis=1)             # (D, number of CAVs)
    sens = np.asarray(grads, dtype=np.float64) @ vectors              # (N, number of CAVs)
    n_concept = len(concept_acts) * m
    concept_sens = {name: sens[:, k * m:(k + 1) * m].T for k, name in enumerate(concept_acts)}
    null_cavs = cavs[n_concept:]
    fields = {}
    if test == "sets":
        null_sens = {pair: sens[:, n_concept + q] for q, pair in enumerate(null_pairs)}
        tau, tests, smoothed_null, plain_null = _set_test(concept_sens, null_sens, m, smoothing)
        for name, (statistic, p) in tests.items():
            fields[name] = dict(p_value=p, random_scores=plain_null, statistic=statistic,
                                random_statistics=smoothed_null, tau=tau)
    else:
        null_scores = np.mean(sens[:, n_concept:] > 0, axis=0)
        for name, s in concept_sens.items():
            fields[name] = dict(p_value=ttest_p(np.mean(s > 0, axis=1), null_scores),
                                random_scores=null_scores)
    for k, (name, s) in enumerate(concept_sens.items()):
        scores = np.mean(s > 0, axis=1)
        fields[name].update(score=float(scores.mean()), scores=scores, test=test,
                            cav_accuracies=np.array([c.accuracy
                                                     for c in cavs[k * m:(k + 1) * m]]),
                            random_cav_accuracies=np.array([c.accuracy for c in null_cavs]))
    return fields


def cav_trainer(test_fraction=0.33, steps=300, lr=0.05, store=None, bar=None):
    """get_cavs for ``_test_layer``: the CAVs of the jobs [(pos, neg, seed)], read from
    ``store`` (a ``_Store``) when there, else trained CAV_CHUNK at a time (``train_cavs``)
    and put there, so an interrupted run keeps what it had trained."""
    def get_cavs(jobs):
        out = [None] * len(jobs)
        keys = [f"cav_{_digest(_digest(pos), _digest(neg), test_fraction, steps, lr, s)}"
                for pos, neg, s in jobs] if store is not None else None
        if store is not None:
            for q, key in enumerate(keys):
                c = store.find(key)
                if c is not None:
                    out[q] = CAV(np.asarray(c["vector"]), float(c["bias"]), float(c["accuracy"]))
        todo = [q for q in range(len(jobs)) if out[q] is None]
        if bar is not None:
            bar.update(len(jobs) - len(todo))
        for start in range(0, len(todo), CAV_CHUNK):
            chunk = todo[start:start + CAV_CHUNK]
            trained = train_cavs([jobs[q][:2] for q in chunk], test_fraction, steps, lr,
                                 seeds=[jobs[q][2] for q in chunk])
            for q, c in zip(chunk, trained):
                out[q] = c
                if store is not None:
                    store.put(keys[q], _cav_dict(c))
            if bar is not None:
                bar.update(len(chunk))
        return out
    return get_cavs


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


def _cav_dict(c):
    return {"vector": c.vector, "bias": np.array(c.bias), "accuracy": np.array(c.accuracy)}


class _Store:
    """In-memory results, mirrored to ``cache_dir`` as .npz (tn.save) when one is given."""

    def __init__(self, cache_dir):
        self.cache_dir = cache_dir
        self.memory = {}
        if cache_dir is not None:
            os.makedirs(cache_dir, exist_ok=True)

    def _path(self, key):
        return os.path.join(self.cache_dir, key + ".npz") if self.cache_dir else None

    def find(self, key):
        """The stored value, or None."""
        if key not in self.memory:
            path = self._path(key)
            if not (path and os.path.exists(path)):
                return None
            self.memory[key] = dict(tn.load(path))
        return self.memory[key]

    def put(self, key, value):
        if self.cache_dir:
            tn.save(value, self._path(key))
        self.memory[key] = value
        return value

    def get(self, key, compute):
        value = self.find(key)
        return self.put(key, compute()) if value is None else value


# ---- the entry point ------------------------------------------------------------------------

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


def _check_options(test, random_inputs, random_counterpart, alpha, smoothing):
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    if not isinstance(random_inputs, (list, tuple)):
        raise TypeError("random_inputs must be a list of random sets (one CAV per set)")
    if random_counterpart is not None and test != "ttest":
        raise ValueError("random_counterpart belongs to test='ttest'; the 'sets' test lets "
                         "every random set play the concept in turn")
    needed = 2 if random_counterpart is not None else 3
    if len(random_inputs) < needed:
        raise ValueError(
            f"random_inputs has {len(random_inputs)} random sets; the {test!r} test needs at "
            f"least {needed} (2 or more scores per side, from distinct pairs of sets)")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not smoothing >= 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing!r}")


def tcav(model, layer, target, concept_inputs, random_inputs, class_inputs, alpha=0.05,
         test="sets", smoothing=3.0, random_counterpart=None, test_fraction=0.33,
         cav_steps=300, cav_lr=0.05, batch_size=64, cache_dir=None, seed=0, progress=True):
    """TCAV scores of concept(s) for class ``target`` at layer(s), with a significance test.

    For a layer l, a concept C and the class k (the lecture's notation):

      CAV    v_l^C: the unit normal of a linear classifier (logistic regression) that
             separates the activations f_l(x) of the concept's examples from those of a
             random set (``train_cav``)
      S      S_{C,k,l}(x) = grad h_{l,k}(f_l(x)) . v_l^C,  h_{l,k}: activations -> logit k
      score  TCAV_{C,k,l} = |{x in X_k : S_{C,k,l}(x) > 0}| / |X_k|

    One CAV per random set R_1..R_m gives m scores; ``result.score`` is their mean.  The test
    (``test``) asks whether that is more than a random set would get:

      'sets' (default, calibrated): every random set plays the concept in turn, as C did,
          T(C) = mean_i s(C, R_i),   T(R_j) = mean_{i != j} s(R_j, R_i),
          s(C, R) = mean_{x in X_k} sigmoid(S_{C,k,l}(x) / tau)   (a smoothed score),
          t = (T(C) - mean_j T(R_j)) / ((m-1)/m sd_j T(R_j) sqrt(1 + 1/m)),
          p = 2 P(T_{m-1} > |t|)
      'ttest' (classic, MISCALIBRATED): scipy's two-sample t-test of the m scores against m
          random-vs-random scores; it calls a "concept" that is just another random set
          significant in 12-22% of trials at alpha = 0.05 (docs/tcav_statistics.md).

    layer            a layer (module or dotted name) or a list of them
    target           the class k (an int)
    concept_inputs   examples of the concept (N, C, H, W), or a dict {name: examples}
    random_inputs    a list of m >= 3 random sets (about 10 for the 'sets' test); one CAV
                     is trained against each
    class_inputs     inputs of class k (the X_k of the score)
    test             'sets' (m (m - 1) / 2 more CAVs than one per set) or 'ttest'
    smoothing        'sets' only: tau in units of the median |S| of the random-vs-random
                     CAVs (default 3); 0 tests the plain TCAV score (little power, see the
                     module docstring)
    random_counterpart  'ttest' only: a random set that plays the concept in the null's
                     CAVs, against each random set; default R_i vs R_{i+1 mod m}
    alpha            significance level before the Bonferroni correction over the
                     len(concepts) x len(layers) tests asked for at once
    cache_dir        save activations, class gradients and CAVs there (.npz) and reuse them

    Returns a ``TCAVResult`` for one concept and one layer; otherwise a dict
    {(concept name, layer name): TCAVResult}.  ``result.test`` names the test behind
    ``p_value``; ``explain.sanity.tcav_calibration`` measures a test in your own setting.
    """
    single = not isinstance(concept_inputs, dict) and not isinstance(layer, (list, tuple))
    concepts = _as_dict(concept_inputs, "concept")
    layers = list(layer) if isinstance(layer, (list, tuple)) else [layer]
    if not layers:
        raise ValueError("layer: no layer given")
    resolved = [resolve_layer(model, l, default=None) for l in layers]
    if not isinstance(target, (int, np.integer)) or isinstance(target, bool):
        raise TypeError(f"target must be one class index (int), got {target!r}")
    _check_options(test, random_inputs, random_counterpart, alpha, smoothing)
    for name, x in concepts.items():
        _check_set(x, f"concept {name!r}", MIN_EXAMPLES)
    for i, x in enumerate(random_inputs):
        _check_set(x, f"random set {i}", MIN_EXAMPLES)
    if random_counterpart is not None:
        _check_set(random_counterpart, "random_counterpart", MIN_EXAMPLES)
    _check_set(class_inputs, "class_inputs", 1)
    check_positive_int(cav_steps, "cav_steps")

    store = _Store(cache_dir)
    model_key = _model_digest(model)
    m = len(random_inputs)
    null_cavs = m * (m - 1) // 2 if test == "sets" else m
    n_tests = len(concepts) * len(layers)
    bar = progress_bar(len(layers) * (len(concepts) * m + null_cavs), "tcav", progress)
    get_cavs = cav_trainer(test_fraction, cav_steps, cav_lr, store, bar)
    results = {}
    try:
        for layer_name, module in resolved:
            def acts(x):
                data = to_numpy(x)
                key = f"acts_{_digest(model_key, layer_name, data)}"
                return store.get(key, lambda: {
                    "a": layer_activations(model, module, data, batch_size)})["a"]

            data = to_numpy(class_inputs)
            gkey = f"grads_{_digest(model_key, layer_name, data, int(target))}"
            grads = store.get(gkey, lambda: {
                "g": class_gradients(model, module, data, target, batch_size)})["g"]
            fields = _test_layer(
                {name: acts(x) for name, x in concepts.items()},
                [acts(r) for r in random_inputs], grads, get_cavs, test,
                None if random_counterpart is None else acts(random_counterpart),
                smoothing, seed)
            for cname, f in fields.items():
                results[(cname, layer_name)] = TCAVResult(
                    concept=cname, layer=layer_name, target=int(target), alpha=alpha,
                    n_tests=n_tests, significant=bool(f["p_value"] < alpha / n_tests), **f)
    finally:
        bar.close()
    return next(iter(results.values())) if single else results
