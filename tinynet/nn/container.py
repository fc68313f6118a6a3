"""Containers: ``Sequential`` (call children in order) and ``ModuleList``."""
from collections import OrderedDict

from .layers import MaxPool2d, ReLU
from .module import Module
from .normalization import _BatchNorm


class Sequential(Module):
    """Calls its children in order: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Children are named "0", "1", ... (or by the keys of an OrderedDict passed in).
    ``seq[i]`` is a child; ``seq[i:j]`` is a new Sequential sharing those children and
    keeping their names, as in PyTorch, so ``state_dict`` keys of a slice are unchanged."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                if not isinstance(module, Module):
                    raise TypeError(f"Sequential: argument {i} must be a Module, "
                                    f"got {type(module).__name__}")
                self.add_module(str(i), module)

    def forward(self, x):
        modules = tuple(self._modules.values())
        last, i = len(modules) - 1, 0
        while i <= last:
            pair = (_one_op(modules[i], modules[i + 1])
                    if i < last and type(modules[i + 1]) in _SECOND_OF_A_PAIR else None)
            if pair is not None:                    # two modules, one op (see _one_op)
                x = pair(x)
                i += 2
            else:
                x = modules[i](x)
                i += 1
        return x

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        if not isinstance(index, int):
            raise TypeError(f"Sequential indices must be ints or slices, got {type(index).__name__}")
        if not -len(items) <= index < len(items):
            raise IndexError(f"Sequential index {index} out of range for length {len(items)}")
        return items[index][1]

    def __setitem__(self, index, module):
        name = list(self._modules)[index]
        self.add_module(name, module)

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


_SECOND_OF_A_PAIR = (ReLU, MaxPool2d)      # the types _one_op may pair with the one before


def _one_op(module, following):
    """The one op that computes following(module(x)), where there is one and nothing can
    tell the difference (no hook on either module: a hook could see the first module's own
    output, or expect the second to be called); else None.
    - a BatchNorm then a ReLU: F.batch_norm_relu, the ReLU inside BatchNorm's passes;
    - a ReLU then a MaxPool2d: F.relu_max_pool2d, the ReLU on the pooled output.
    The same values and gradients with two fewer passes over the activation each way, and
    one activation less in memory (measured on the demo's and the reference CNN's steps:
    benchmarks/RESULTS.md, 2026-12-06)."""
    second = type(following)                # the types first: most pairs stop here
    if second is ReLU and isinstance(module, _BatchNorm):
        op = module.forward_relu
    elif (second is MaxPool2d and type(module) is ReLU and not following.return_indices
          and following.dilation in (1, (1, 1))):
        op = following.forward_of_relu
    else:
        return None
    if (module._forward_pre_hooks or module._forward_hooks
            or following._forward_pre_hooks or following._forward_hooks):
        return None
    return op


class ModuleList(Module):
    """A list of Modules whose parameters are registered (named "0", "1", ...)."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        values = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(values[index])
        return values[index]
