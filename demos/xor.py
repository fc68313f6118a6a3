"""The lecture's first slide, made runnable: linear models cannot model XOR; one hidden layer can.

    python -m demos.xor [--out ./out/xor] [--hidden 4] [--steps 2000] [--lr 2.0] [--seed 0]

The four XOR points, each with the constant 1 in front as on the slide (x^T = (1, x1, x2)):

    x1 x2 | y
     0  0 | 0
     0  1 | 1
     1  0 | 1
     1  1 | 0

1. Logistic regression  y_hat = sigma(x^T beta),  beta in R^3.  Its decision boundary
   x^T beta = 0 is a straight line, and no line puts (0,1), (1,0) on one side and (0,0), (1,1)
   on the other: at most 3 of the 4 points can be right (accuracy <= 75%).

2. A network with one hidden layer of H units

       h     = sigma(x^T W1)                 W1 in R^{3 x H}   (row 0 multiplies the constant 1)
       h~^T  = (1, h^T)                      the constant 1 again, now for the output unit
       y_hat = sigma(h~^T W2)                W2 in R^{(H+1) x 1}

   i.e. y_hat = sigma(sigma(x^T W1) W2) as on the slide.  (The slide's W2 in R^{3 x 2} has no
   row for a constant; we give the output unit one, the same trick as the 1 in x.)

Both minimise the binary cross-entropy  L = -1/N sum_n [y log y_hat + (1 - y) log(1 - y_hat)]
by plain gradient descent.  Backpropagation, "backwards one layer at a time", with
sigma' = sigma (1 - sigma) and rows = the N examples:

    delta2 = dL/dz2 = (y_hat - y) / N                 z2 = h~ W2       (N x 1)
    dL/dW2 = h~^T delta2                                                ((H+1) x 1)   first W2
    delta1 = dL/dz1 = (delta2 W2[1:]^T) * h (1 - h)   z1 = X W1        (N x H)   (row 0 of W2
                                                                        meets the constant 1,
                                                                        which has no inputs)
    dL/dW1 = X^T delta1                                                 (3 x H)       then W1

The demo prints tinynet's op-by-op trace of one backward pass, computes these four lines by
hand in numpy, shows they equal autograd's gradients, and confirms them with tn.gradcheck.
Plots (decision boundaries, loss curves) go to --out as PNG files.
"""
import argparse
import os
import sys

import numpy as np

import tinynet as tn
import tinynet.functional as F

X = np.array([[1.0, 0.0, 0.0],       # x^T = (1, x1, x2): the bias as a constant input
              [1.0, 0.0, 1.0],
              [1.0, 1.0, 0.0],
              [1.0, 1.0, 1.0]])
Y = np.array([[0.0], [1.0], [1.0], [0.0]])


def bce(y_hat, y):
    """Binary cross-entropy, mean over the examples."""
    return -(y * F.log(y_hat) + (1.0 - y) * F.log(1.0 - y_hat)).mean()


def with_bias(h):
    """(N, H) -> (N, H+1): the constant 1 in front of every row, h~^T = (1, h^T)."""
    return F.concat([tn.tensor(np.ones((h.shape[0], 1), dtype=h.dtype)), h], axis=1)


def linear_model(x, beta):
    """y_hat = sigma(x^T beta) for every row x^T of ``x``."""
    return F.sigmoid(x @ beta)


def mlp(x, w1, w2, keep=None):
    """y_hat = sigma(sigma(x^T W1) W2) with a constant 1 added to the hidden layer."""
    z1 = x @ w1
    h = F.sigmoid(z1)
    h_tilde = with_bias(h)
    z2 = h_tilde @ w2
    out = F.sigmoid(z2)
    if keep is not None:      # named, so that the backward trace can say which is which
        z1.name, h.name, h_tilde.name, z2.name, out.name = "z1", "h", "h~", "z2", "y_hat"
        keep["h"] = h
    return out


def accuracy(y_hat, y):
    return float(np.mean((y_hat >= 0.5) == (y >= 0.5)))


def train(predict, params, steps, lr):
    """Plain gradient descent on the mean binary cross-entropy; returns the loss curve."""
    x, y = tn.tensor(X), tn.tensor(Y)
    losses = []
    for _ in range(steps):
        loss = bce(predict(x, *params), y)
        for p in params:
            p.grad = None
        loss.backward()
        with tn.no_grad():
            for p in params:
                p.data = p.data - lr * p.grad        # w <- w - lr dL/dw
        losses.append(loss.item())
    return losses


def explain_backward(w1, w2, out=print):
    """One backward pass at the current weights: trace, hand-computed layer-by-layer
    gradients, their agreement with autograd, and gradcheck.  Returns the max difference."""
    x, y = tn.tensor(X), tn.tensor(Y)
    x.name, w1.name, w2.name = "x", "W1", "W2"
    keep = {}
    y_hat = mlp(x, w1, w2, keep)
    loss = bce(y_hat, y)
    loss.name = "L"
    w1.grad = w2.grad = None
    with tn.trace_backward() as trace:
        loss.backward()
    out("\nBackward pass, op by op (tn.trace_backward; each op's output before its inputs).")
    out("The loss's own ops come first, then the output layer (the MatMul giving W2's "
        "gradient),\nthen the hidden layer (the MatMul giving W1's gradient); |.| are L2 norms:")
    out(str(trace))

    # The same gradients by hand, one layer at a time, as in the lecture.
    N = X.shape[0]
    h = keep["h"].numpy()
    h_tilde = np.hstack([np.ones((N, 1)), h])
    delta2 = (y_hat.numpy() - Y) / N
    grad_w2 = h_tilde.T @ delta2
    delta1 = (delta2 @ w2.data[1:].T) * h * (1 - h)
    grad_w1 = X.T @ delta1
    np.set_printoptions(precision=5, suppress=True)
    out("\nLayer by layer, by hand (numpy), the output layer first:")
    out(f"  delta2 = (y_hat - y) / N                  shape {delta2.shape}\n{_indent(delta2)}")
    out(f"  dL/dW2 = h~^T delta2                      shape {grad_w2.shape}\n{_indent(grad_w2)}")
    out(f"  autograd W2.grad                          shape {w2.grad.shape}\n{_indent(w2.grad)}")
    out(f"  delta1 = (delta2 W2[1:]^T) * h (1 - h)    shape {delta1.shape}\n{_indent(delta1)}")
    out(f"  dL/dW1 = x^T delta1                       shape {grad_w1.shape}\n{_indent(grad_w1)}")
    out(f"  autograd W1.grad                          shape {w1.grad.shape}\n{_indent(w1.grad)}")
    diff = max(np.abs(grad_w2 - w2.grad).max(), np.abs(grad_w1 - w1.grad).max())
    out(f"  max |by hand - autograd| = {diff:.2e}")
    if not diff < 1e-10:
        raise AssertionError(f"hand-computed and autograd gradients differ by {diff}")

    tn.gradcheck(lambda a, b: bce(mlp(tn.tensor(X), a, b), tn.tensor(Y)), w1.data, w2.data)
    out("  tn.gradcheck (central differences, float64): passed")
    return float(diff)


def _indent(array):
    return "\n".join("      " + line for line in str(np.asarray(array)).splitlines())


def _grid(n=200):
    g = np.linspace(-0.5, 1.5, n)
    g1, g2 = np.meshgrid(g, g)
    points = np.column_stack([np.ones(g1.size), g1.ravel(), g2.ravel()])
    return g1, g2, points


def save_plots(out_dir, predict_linear, predict_mlp, losses_linear, losses_mlp, accs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g1, g2, points = _grid()
    paths = {}
    for key, title, predict in [("linear", "logistic regression  sigma(x^T beta)", predict_linear),
                                ("mlp", "hidden layer  sigma(sigma(x^T W1) W2)", predict_mlp)]:
        with tn.no_grad():
            p = predict(tn.tensor(points)).numpy().reshape(g1.shape)
        fig, ax = plt.subplots(figsize=(5, 4.6))
        flat = p.max() - p.min() < 0.05        # no boundary to draw: y_hat ~ 0.5 everywhere
        if flat:
            p = np.full_like(p, p.mean())        # one colour, not rounding noise around 0.5
        im = ax.contourf(g1, g2, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.8)
        if not flat and p.min() < 0.5 < p.max():
            ax.contour(g1, g2, p, levels=[0.5], colors="k", linewidths=1.5)
            ax.plot([], [], "k-", label="model's boundary y_hat = 0.5")
        subtitle = f"accuracy {accs[key]:.0%}"
        if key == "linear":
            # No line puts (0,1), (1,0) on one side and (0,0), (1,1) on the other; the best
            # a line can do is 3 of 4, e.g. x1 + x2 = 0.5 (wrong only on (1, 1)).
            ax.plot([-0.5, 1.0], [1.0, -0.5], "k--", lw=1.5,
                    label="best line x1 + x2 = 0.5: 3 of 4 right")
            if flat:
                subtitle += (": y_hat = 0.5 everywhere (beta = 0)\nno line separates XOR, "
                             "so the best fit is no better than chance")
            else:
                subtitle += ": no line separates XOR (at most 75%)"
        for label, colour in ((0, "tab:blue"), (1, "tab:red")):
            rows = Y.ravel() == label
            ax.scatter(X[rows, 1], X[rows, 2], color=colour, edgecolors="k", s=120, zorder=3,
                       label=f"y = {label} ({'x1 = x2' if label == 0 else 'x1 != x2'})")
        ax.set(xlabel="x1", ylabel="x2", xlim=(-0.5, 1.5), ylim=(-0.5, 1.5))
        ax.set_title(f"{title}\n{subtitle}", fontsize=9)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8)
        fig.colorbar(im, ax=ax, label="y_hat")
        fig.tight_layout()
        paths[key] = os.path.join(out_dir, f"xor_{key}_boundary.png")
        fig.savefig(paths[key], dpi=100)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(losses_linear, label="logistic regression")
    ax.plot(losses_mlp, label="one hidden layer")
    ax.axhline(np.log(2), color="gray", ls=":", label="log 2 (y_hat = 0.5 everywhere)")
    ax.set(xlabel="gradient-descent step", ylabel="binary cross-entropy", title="XOR: training loss")
    ax.legend()
    fig.tight_layout()
    paths["loss"] = os.path.join(out_dir, "xor_loss.png")
    fig.savefig(paths["loss"], dpi=100)
    plt.close(fig)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m demos.xor", description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default=os.path.join("out", "xor"),
                        help="folder for the PNG files (made if missing)")
    parser.add_argument("--hidden", type=int, default=4, help="hidden units H of the network")
    parser.add_argument("--steps", type=int, default=2000,
                        help="gradient-descent steps for each of the two models")
    parser.add_argument("--lr", type=float, default=2.0, help="learning rate of gradient descent")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random initial weights")
    args = parser.parse_args(argv)
    if args.hidden < 1 or args.steps < 1 or not args.lr > 0:
        parser.error("--hidden and --steps must be >= 1 and --lr > 0")
    rng = np.random.default_rng(args.seed)

    print("XOR:  x^T = (1, x1, x2),  y = x1 XOR x2")
    for x, y in zip(X, Y):
        print(f"  x^T = {tuple(int(v) for v in x)}  y = {int(y[0])}")

    # 1. Logistic regression: one straight line.
    beta = tn.tensor(rng.normal(0, 0.5, size=(3, 1)), requires_grad=True)
    losses_linear = train(linear_model, [beta], args.steps, args.lr)
    with tn.no_grad():
        acc_linear = accuracy(linear_model(tn.tensor(X), beta).numpy(), Y)
    print(f"\n1. Logistic regression y_hat = sigma(x^T beta): loss {losses_linear[-1]:.4f}, "
          f"accuracy {acc_linear:.0%} (a line cannot separate XOR: at most 75%)")

    # 2. One hidden layer.
    H = args.hidden
    w1 = tn.tensor(rng.normal(0, 1.0, size=(3, H)), requires_grad=True)
    w2 = tn.tensor(rng.normal(0, 1.0, size=(H + 1, 1)), requires_grad=True)
    print(f"\n2. Network y_hat = sigma(sigma(x^T W1) W2), W1 in R^(3 x {H}), W2 in R^({H + 1} x 1)"
          "\n   One gradient step at the random initial weights, explained:")
    explain_backward(w1, w2)
    losses_mlp = train(lambda x, a, b: mlp(x, a, b), [w1, w2], args.steps, args.lr)
    with tn.no_grad():
        y_hat = mlp(tn.tensor(X), w1, w2).numpy()
    acc_mlp = accuracy(y_hat, Y)
    print(f"\n   After {args.steps} steps: loss {losses_mlp[-1]:.4f}, accuracy {acc_mlp:.0%}; "
          f"y_hat = {np.round(y_hat.ravel(), 3).tolist()}")
    tn.gradcheck(lambda a, b: bce(mlp(tn.tensor(X), a, b), tn.tensor(Y)), w1.data, w2.data)
    print("   tn.gradcheck at the trained weights: passed")

    os.makedirs(args.out, exist_ok=True)
    paths = save_plots(args.out, lambda x: linear_model(x, beta), lambda x: mlp(x, w1, w2),
                       losses_linear, losses_mlp, {"linear": acc_linear, "mlp": acc_mlp})
    print("\nPlots: " + ", ".join(paths.values()))
    return {"linear_accuracy": acc_linear, "mlp_accuracy": acc_mlp,
            "linear_losses": losses_linear, "mlp_losses": losses_mlp, "plots": paths}


if __name__ == "__main__":
    main(sys.argv[1:])
