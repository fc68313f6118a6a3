"""MobileNet v2 (1.0, 224) forward, batch 1, float32, CPU: tinynet vs PyTorch.

    python -m benchmarks.bench_mobilenet [--repeats 15] [--model PATH.tflite]

tinynet's model is ``tinynet.models.load_tflite`` of the TFLite file; the PyTorch model is
the same architecture rebuilt module by module from it (``to_torch`` below) with the same
weights, so both compute the same logits (the script prints the largest difference).
Inference only: ``tn.no_grad()`` against ``torch.inference_mode()``.
"""
import os
import sys

if __package__ in (None, ""):        # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import benchmarks  # noqa: F401,E402  (imports tinynet before NumPy: see its __init__)

import argparse
from collections import OrderedDict

import numpy as np

from benchmarks._common import ROOT, alternate, header, median, ms, ratio, table, try_torch

import tinynet as tn                                     # noqa: E402
from tinynet import models, nn                           # noqa: E402
from tinynet import mobilenet                            # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "models" / "mobilenet_v2_1.0_224_quant.tflite"


def to_torch(module, torch):
    """The torch.nn twin of an imported MobileNet (same names, so the state_dict loads)."""
    tnn = torch.nn

    class Block(tnn.Sequential):
        def __init__(self, units, residual):
            super().__init__(units)
            self.residual = residual

        def forward(self, x):
            y = super().forward(x)
            return y + x if self.residual else y

    def convert(m):
        children = OrderedDict((name, convert(child)) for name, child in m._modules.items()
                               if child is not None)
        if isinstance(m, mobilenet.Block):
            return Block(children, m.residual)
        if isinstance(m, (nn.Sequential, mobilenet.ConvUnit)):
            return tnn.Sequential(children)
        if isinstance(m, nn.Conv2d):
            return tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                              m.padding, m.dilation, m.groups, bias=m.bias is not None)
        if isinstance(m, nn.ZeroPad2d):
            return tnn.ZeroPad2d(m.padding)
        simple = {nn.ReLU6: tnn.ReLU6, nn.ReLU: tnn.ReLU, nn.Flatten: tnn.Flatten}
        if type(m) in simple:
            return simple[type(m)]()
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return tnn.AdaptiveAvgPool2d(m.output_size)
        raise TypeError(f"to_torch: no twin for {type(m).__name__}")

    twin = convert(module)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in module.state_dict().items()})
    return twin.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--model", default=str(DEFAULT))
    args = parser.parse_args(argv)
    torch = try_torch()
    header("MobileNet v2 1.0 224 forward, 1x3x224x224, float32, inference")
    model = models.load_tflite(args.model)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3) + model.input_size).astype(np.float32)

    def tinynet_forward():
        with tn.no_grad():
            return model(tn.tensor(x)).data

    contenders = {"tinynet": tinynet_forward}
    if torch is not None:
        twin, tx = to_torch(model, torch), torch.from_numpy(x)

        def torch_forward():
            with torch.inference_mode():
                return twin(tx).numpy()

        contenders["torch"] = torch_forward
        diff = np.abs(tinynet_forward() - torch_forward()).max()
        print(f"largest logit difference tinynet vs torch: {diff:.2e}\n")
    t = {k: median(v) for k, v in alternate(contenders, repeats=args.repeats).items()}
    rows = [[k, ms(v), ratio(v, t["tinynet"])] for k, v in t.items()]
    table(rows, ["", "forward ms (median)", "time vs tinynet"])
    if "torch" in t:
        print(f"\ntinynet takes {t['tinynet'] / t['torch']:.2f}x PyTorch's time")


if __name__ == "__main__":
    main()
