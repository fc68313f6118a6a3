"""Time explain's methods on a reference CNN, and against Captum on the same weights.

    python benchmarks/bench_explain.py [--size 64] [--batch 8] [--repeat 3]

1. SmoothGrad budget: SmoothGrad with n = 50 on one image against one batched forward +
   backward (to the input) of 50 images; the issue asks for a ratio of at most 1.25.
   Both on the project's reference CNN (tinynet.models.reference_cnn: conv 32-64-128-256).
2. explain vs Captum: each method on the same images and the same weights (the tinynet
   state_dict loaded into an identical torch model), with the largest difference of the maps
   so that a fast wrong answer cannot hide.  Needs torch and captum (not dependencies of
   tinynet: `pip install captum`); without them this part is skipped with a message.
"""
import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tinynet as tn                      # noqa: E402
from tinynet import models                # noqa: E402
from benchmarks._common import alternate, median   # noqa: E402

import explain                            # noqa: E402


def paired(ours, theirs, repeat):
    """Median seconds of ``ours`` and ``theirs``, alternating runs (see benchmarks/_common.py)."""
    times = alternate({"ours": ours, "theirs": theirs}, repeats=repeat)
    return median(times["ours"]), median(times["theirs"])


def smoothgrad_budget(model, size, repeat):
    rng = np.random.default_rng(0)
    one = rng.random((1, 3, size, size)).astype(np.float32)
    fifty = np.repeat(one, 50, axis=0)

    def forward_backward():
        x = tn.tensor(fifty, requires_grad=True)
        for p in model.parameters():
            p.requires_grad = False
        try:
            model(x)[:, 3].sum().backward()
        finally:
            for p in model.parameters():
                p.requires_grad = True

    sg, base = paired(lambda: explain.smoothgrad(model, one, 3, n_samples=50, seed=0,
                                                 progress=False), forward_backward, repeat)
    print(f"SmoothGrad n=50, 1 image, {size}x{size}: {sg * 1e3:8.1f} ms; one batched "
          f"forward+backward of 50 images: {base * 1e3:8.1f} ms; ratio {sg / base:.2f} "
          f"(target <= 1.25)")


def against_captum(model, size, batch, repeat):
    try:
        import torch
        from captum import attr
    except ImportError as exc:
        print(f"Captum comparison skipped: {exc.name} is not installed "
              "(pip install torch captum to run it)")
        return
    warnings.filterwarnings("ignore", module="captum")
    twin = models.reference_cnn(layers=torch.nn).eval()
    twin.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v))
                          for k, v in model.state_dict().items()})
    rng = np.random.default_rng(1)
    x = rng.random((batch, 3, size, size)).astype(np.float32)
    target = 3
    xt = torch.from_numpy(x)

    def c(method):
        return lambda: method().detach().numpy()

    cases = [
        ("vanilla gradient",
         lambda: explain.vanilla_gradient(model, x, target),
         c(lambda: attr.Saliency(twin).attribute(xt, target=target, abs=False))),
        ("gradient x input",
         lambda: explain.gradient_x_input(model, x, target),
         c(lambda: attr.InputXGradient(twin).attribute(xt, target=target))),
        ("integrated gradients (32 steps)",
         lambda: explain.integrated_gradients(model, x, target, steps=32),
         c(lambda: attr.IntegratedGradients(twin).attribute(
             xt, target=target, n_steps=32, method="riemann_middle"))),
        ("Grad-CAM (raw, last conv layer)",
         lambda: explain.grad_cam(model, x, target, layer="9", relu=False, upsample=False,
                                  normalize=False),
         c(lambda: attr.LayerGradCam(twin, twin[9]).attribute(
             xt, target=target, relu_attributions=False)[:, 0])),
        ("guided backprop",
         lambda: explain.guided_backprop(model, x, target),
         c(lambda: attr.GuidedBackprop(twin).attribute(xt, target=target))),
        ("SmoothGrad (n=50)",
         lambda: explain.smoothgrad(model, x, target, n_samples=50, seed=0, progress=False),
         c(lambda: attr.NoiseTunnel(attr.Saliency(twin)).attribute(
             xt, target=target, nt_type="smoothgrad", nt_samples=50,
             nt_samples_batch_size=64, stdevs=0.15, abs=False))),
    ]
    print(f"\nexplain vs Captum {getattr(sys.modules['captum'], '__version__', '?')} "
          f"(torch {torch.__version__}), batch {batch}, {size}x{size}, "
          f"median of {repeat} alternating runs")
    print(f"{'method':<34}{'explain ms':>12}{'captum ms':>12}{'ratio':>8}{'max |diff|':>13}")
    for name, ours, theirs in cases:
        a, b = ours(), theirs()
        # SmoothGrad draws different noise, so compare it loosely: report the difference only
        diff = np.abs(np.asarray(a) - np.asarray(b)).max()
        t_ours, t_theirs = paired(ours, theirs, repeat)
        print(f"{name:<34}{t_ours * 1e3:>12.1f}{t_theirs * 1e3:>12.1f}"
              f"{t_ours / t_theirs:>8.2f}{diff:>13.2e}")
    print("(SmoothGrad's difference reflects different noise draws; TCAV and activation "
          "maximization have no like-for-like Captum counterpart and are not timed here)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tn.manual_seed(0)
    model = models.reference_cnn()
    smoothgrad_budget(model, args.size, args.repeat)
    against_captum(model, args.size, args.batch, args.repeat)


if __name__ == "__main__":
    main()
