"""Concept activation vectors: the linear classifiers of TCAV (see explain.tcav).

A CAV v_l^C is the unit normal of a hyperplane that separates the activations f_l(x) of a
concept's examples from those of a random set, found by logistic regression trained with
tinynet.  TCAV needs many of them (one per random set, and the null's random-vs-random
CAVs), so ``train_cavs`` trains a batch of them as one problem.
"""
from dataclasses import dataclass

import numpy as np

import tinynet as tn
import tinynet.functional as F
from tinynet import optim

MIN_EXAMPLES = 4          # per side of a CAV classifier: 2+ to train, 1+ to test on each side


@dataclass
class CAV:
    """A concept activation vector: unit normal ``vector`` of the separating hyperplane
    (pointing towards the concept), its ``bias`` and the classifier's held-out ``accuracy``."""
    vector: np.ndarray
    bias: float
    accuracy: float


def train_cav(concept_acts, random_acts, test_fraction=0.33, steps=300, lr=0.05,
              weight_decay=1e-3, seed=0):
    """Logistic regression g(a) = sigmoid(a . w + b) (concept = 1, random = 0) trained with
    tinynet (binary cross-entropy + weight_decay |w|^2, Adam, full batch) on a random split;
    returns a ``CAV`` with v = w / |w| and the accuracy on the held-out part.

    The activations are centred and divided by their mean norm first (one scalar), which
    changes only the bias, not the direction of w in the original space.  The weights are
    trained in the span of the centred training activations: every gradient of the loss
    (and the optimum) lies there, and n training rows span at most n of the D dimensions,
    so the problem is n- rather than D-dimensional (Adam's path differs a little from
    training all D weights; the optimum is the same)."""
    return train_cavs([(concept_acts, random_acts)], test_fraction, steps, lr, weight_decay,
                      seeds=[seed])[0]


def _prepare(concept_acts, random_acts, test_fraction, seed):
    """Split, centre, scale and express in an orthonormal basis V of the training span."""
    sides = []
    for name, acts in (("concept", concept_acts), ("random", random_acts)):
        acts = np.asarray(acts, dtype=np.float64).reshape(len(acts), -1)
        if len(acts) < MIN_EXAMPLES:
            raise ValueError(f"a CAV needs at least {MIN_EXAMPLES} {name} examples (some to "
                             f"train the classifier, some to test it), got {len(acts)}")
        sides.append(acts)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label, acts in zip((1.0, 0.0), sides):
        order = rng.permutation(len(acts))
        n_test = min(max(1, int(round(test_fraction * len(acts)))), len(acts) - 2)
        test.append((acts[order[:n_test]], np.full(n_test, label)))
        train.append((acts[order[n_test:]], np.full(len(acts) - n_test, label)))
    x_train = np.concatenate([a for a, _ in train])
    center = x_train.mean(axis=0)
    scale = np.linalg.norm(x_train - center, axis=1).mean() or 1.0
    x_train = (x_train - center) / scale
    # orthonormal basis of the rows' span from the small n x n Gram matrix X X^T = U L U^T:
    # V = X^T U L^(-1/2)  (cheaper than an SVD of X when D >> n)
    eigenvalues, u = np.linalg.eigh(x_train @ x_train.T)
    keep = eigenvalues > max(eigenvalues.max(initial=0.0), 1e-300) * 1e-10
    basis = x_train.T @ (u[:, keep] / np.sqrt(eigenvalues[keep]))   # (D, r), r <= n - 1
    x_test = (np.concatenate([a for a, _ in test]) - center) / scale
    z = u[:, keep] * np.sqrt(eigenvalues[keep])                        # = x_train @ basis
    return dict(z=z, y=np.concatenate([y for _, y in train]),
                z_test=x_test @ basis, y_test=np.concatenate([y for _, y in test]),
                basis=basis, center=center, scale=scale)


def train_cavs(pairs, test_fraction=0.33, steps=300, lr=0.05, weight_decay=1e-3, seeds=None):
    """``train_cav`` for many (concept_acts, random_acts) pairs at once: the B problems are
    padded to one (B, n, r) batch and trained together.  Their losses are summed, so each
    problem's weights get exactly their own problem's gradient (and Adam works coordinate by
    coordinate): the same CAVs as one call each, in one tinynet run instead of B."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    seeds = list(range(len(pairs))) if seeds is None else list(seeds)
    probs = [_prepare(c, r, test_fraction, s) for (c, r), s in zip(pairs, seeds)]
    b_count = len(probs)
    n = max(len(p["y"]) for p in probs)
    r = max(1, max(p["basis"].shape[1] for p in probs))
    z = np.zeros((b_count, n, r))
    y = np.zeros((b_count, n))
    weight = np.zeros((b_count, n))           # 1/n_b on a problem's rows, 0 on the padding
    for i, p in enumerate(probs):
        rows, cols = p["z"].shape
        z[i, :rows, :cols], y[i, :rows], weight[i, :rows] = p["z"], p["y"], 1.0 / rows
    zs, ys, ws = tn.tensor(z), tn.tensor(y), tn.tensor(weight)
    w = tn.tensor(np.zeros((b_count, r, 1)), requires_grad=True)
    b = tn.tensor(np.zeros((b_count, 1)), requires_grad=True)
    opt = optim.Adam([w, b], lr=lr, weight_decay=0.0)
    with tn.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            logits = (zs @ w).reshape(b_count, n) + b
            bce = F.binary_cross_entropy_with_logits(logits, ys, reduction="none")
            loss = (bce * ws).sum() + weight_decay * (w * w).sum()
            loss.backward()
            opt.step()
    w_all, b_all = w.numpy()[:, :, 0], b.numpy()[:, 0]
    cavs = []
    for i, p in enumerate(probs):
        coef = w_all[i, :p["basis"].shape[1]]
        w_scaled = p["basis"] @ coef                     # in the centred, scaled space
        predicted = p["z_test"] @ coef + b_all[i] > 0
        accuracy = float(np.mean(predicted == (p["y_test"] == 1)))
        norm = np.linalg.norm(w_scaled)
        vector = w_scaled / norm if norm > 0 else w_scaled
        # hyperplane a . v + bias = 0 in the original (unscaled) space:
        # (a - center) / scale . w + b = 0  <=>  a . w + (b scale - center . w) = 0
        bias = (b_all[i] * p["scale"] - p["center"] @ w_scaled) / norm if norm > 0 else 0.0
        cavs.append(CAV(vector=vector, bias=float(bias), accuracy=accuracy))
    return cavs
