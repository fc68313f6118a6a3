"""``Module``: the container every layer and model is built from, and ``Parameter``.

A Module owns three kinds of state, each in its own ordered dict, registered simply by
assigning an attribute (``self.weight = Parameter(...)``, ``self.fc = Linear(...)``):

    _parameters   Parameters: Tensors the optimizer updates (weights, biases)
    _buffers      arrays that are state but not learned (BatchNorm's running statistics)
    _modules      child Modules

Each registered name is also a plain instance attribute (a mirror that ``__setattr__``,
``__delattr__`` and ``register_*`` keep), so reading ``self.weight`` in a forward costs no
more than any attribute.

Everything else follows by walking that tree: ``named_parameters()`` yields dotted names
such as ``"features.0.weight"`` exactly as PyTorch spells them, so ``state_dict()`` and
``load_state_dict()`` move weights between tinynet and PyTorch unchanged.
"""
from collections import OrderedDict

import numpy as np

from .. import backend
from ..autograd import Tensor, bump_version


class Parameter(Tensor):
    """A Tensor that is a learned parameter of a Module: ``requires_grad`` is True."""

    def __init__(self, data, requires_grad=True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class RemovableHandle:
    """Returned by ``register_forward_hook``; ``handle.remove()`` unregisters the hook."""
    _next_id = 0

    def __init__(self, hooks):
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self):
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class Module:
    """Base class of layers and models.  Subclasses define ``forward``; call the module.

        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1, self.fc2 = nn.Linear(2, 8), nn.Linear(8, 1)
            def forward(self, x):
                return self.fc2(F.relu(self.fc1(x)))
    """

    def __init__(self):
        # object.__setattr__: our own __setattr__ needs these dicts to exist first.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *inputs, **kwargs):
        if self._forward_pre_hooks:     # (checked first: most calls have no hooks)
            for hook in list(self._forward_pre_hooks.values()):
                result = hook(self, inputs)
                if result is not None:      # a pre-hook may replace the inputs
                    inputs = result if isinstance(result, tuple) else (result,)
        output = self.forward(*inputs, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                result = hook(self, inputs, output)
                if result is not None:      # a hook may replace the output
                    output = result
        return output

    # ---- registration by attribute assignment -------------------------------------------
    # A registered name lives in its registry (which keeps the order and the kind) and is
    # mirrored in the instance __dict__, so that reading ``self.weight`` is a plain
    # attribute lookup (a __getattr__ looking in the registries runs only after normal
    # lookup has raised and caught an AttributeError: about 1.5 us per read, a visible share
    # of a small model's step).  Every write therefore goes through __setattr__,
    # __delattr__ or register_*, which keep both.
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("call super().__init__() before assigning attributes "
                                 f"in {type(self).__name__}.__init__")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, (Parameter, Module)):
            target = params if isinstance(value, Parameter) else modules
            for store in (params, buffers, modules):
                if store is not target:    # replacing in place keeps the name's position
                    store.pop(name, None)
            target[name] = value
        elif name in buffers:           # re-assigning a buffer keeps it a buffer
            buffers[name] = value
        elif name in params or name in modules:
            if value is not None:
                kind = "parameter" if name in params else "module"
                raise TypeError(f"cannot assign {type(value).__name__} to {kind} '{name}' "
                                f"(a {'Parameter' if name in params else 'Module'} or None expected)")
            (params if name in params else modules)[name] = None
        object.__setattr__(self, name, value)       # the plain attribute, or the mirror

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter or None) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None, "
                            f"got {type(param).__name__}")
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name, array):
        """Register a non-learned state array (saved in state_dict, moved by ``to``)."""
        if array is not None:
            if isinstance(array, Tensor):
                array = array.data
            if not (isinstance(array, np.ndarray) or backend.is_cupy_array(array)):
                array = np.asarray(array)
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module, got {type(module).__name__}")
        self._modules[name] = module
        object.__setattr__(self, name, module)

    # ---- walking the tree ---------------------------------------------------------------
    def named_modules(self, prefix="", remove_duplicate=True):
        """(dotted name, module) for this module ('' for the root) and all below it; a
        module reachable under two names is listed once unless ``remove_duplicate=False``
        (as PyTorch)."""
        seen = set()
        stack = [(prefix, self)]
        while stack:                    # pre-order, children in registration order
            name, module = stack.pop()
            if remove_duplicate and id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m)
                        for n, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, store):
        seen = set()
        for prefix, module in self.named_modules():
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))     # a shared parameter is listed once
                yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self):
        return self._named_members("_parameters")

    def parameters(self):
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self):
        return self._named_members("_buffers")

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    def get_submodule(self, target):
        """The module at dotted name ``target`` ('' is self), as in named_modules()."""
        module = self
        if target == "":
            return module
        for part in target.split("."):
            if part not in module._modules:
                raise AttributeError(f"{type(self).__name__} has no submodule '{target}' "
                                     f"('{part}' not found)")
            module = module._modules[part]
        return module

    def apply(self, fn):
        """Call ``fn(module)`` on every child (recursively), then on self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- modes and state ----------------------------------------------------------------
    def train(self, mode=True):
        """Training mode (dropout active, batch norm uses batch statistics)."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        """Forget the gradients (set them to None, as PyTorch does by default)."""
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, flag=True):
        for p in self.parameters():
            p.requires_grad = bool(flag)
        return self

    def _map_arrays(self, fn, floating_only=False):
        """Replace every parameter's, gradient's and buffer's array by fn(array), in place:
        the Parameter objects stay the same, so an optimizer holding them still works."""
        for module in self.modules():
            for p in module._parameters.values():
                if p is None:
                    continue
                p.data = fn(p.data)
                bump_version(p)
                if p.grad is not None:
                    p.grad = fn(p.grad)
            for name, b in module._buffers.items():
                if b is not None and (not floating_only or b.dtype.kind == "f"):
                    setattr(module, name, fn(b))        # the registry and its mirror
        return self

    def to(self, device):
        """Move every parameter and buffer to ``device`` ('cpu' or 'cuda'), in place."""
        device = backend.check_device(device)      # a clear error when CuPy is missing
        return self._map_arrays(lambda a: backend.move(a, device))

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def double(self):
        """Cast floating parameters and buffers to float64, in place."""
        return self._map_arrays(lambda a: a.astype(np.float64) if a.dtype.kind == "f" else a,
                                floating_only=True)

    def float(self):
        """Cast floating parameters and buffers to float32, in place."""
        return self._map_arrays(lambda a: a.astype(np.float32) if a.dtype.kind == "f" else a,
                                floating_only=True)

    # ---- saving and loading ----------------------------------------------------------
    def _state_items(self):
        """(key, owning module, attribute, kind) in PyTorch's state_dict order: each
        module's parameters, then its buffers, then its children.  As PyTorch, a module or
        parameter shared under two names is listed under both (``parameters()`` lists it
        once), so a state_dict moves between models that share and models that do not."""
        items = []
        for prefix, module in self.named_modules(remove_duplicate=False):
            pre = f"{prefix}." if prefix else ""
            for name, p in module._parameters.items():
                if p is not None:
                    items.append((pre + name, module, name, "parameter"))
            for name, b in module._buffers.items():
                if b is not None:
                    items.append((pre + name, module, name, "buffer"))
        return items

    def state_dict(self):
        """{dotted name: NumPy copy} of every parameter and buffer (PyTorch's keys)."""
        result = OrderedDict()
        for key, module, name, kind in self._state_items():
            value = module._parameters[name].data if kind == "parameter" else module._buffers[name]
            result[key] = np.array(backend.to_cpu(value), copy=True)
        return result

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays from ``state_dict`` into the parameters and buffers.

        Everything is checked before anything is written: with ``strict`` a missing or
        unexpected key is an error, and a mis-shaped array always is.  On error nothing
        changes and the message lists every offending key.  Returns (missing, unexpected)."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"load_state_dict expects a dict of arrays, got {type(state_dict).__name__}")
        items = self._state_items()
        expected = {key for key, *_ in items}
        missing = [key for key, *_ in items if key not in state_dict]
        unexpected = [key for key in state_dict if key not in expected]
        mis_shaped, not_numeric, new_values = [], [], []
        for key, module, name, kind in items:
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = value.data if isinstance(value, Tensor) else value
            value = backend.to_cpu(value)
            current = module._parameters[name].data if kind == "parameter" else module._buffers[name]
            if value.dtype.kind not in "fiub":
                not_numeric.append(f"{key}: dtype {value.dtype}")
            elif tuple(value.shape) != tuple(current.shape):
                mis_shaped.append(f"{key}: checkpoint {tuple(value.shape)}, "
                                  f"model {tuple(current.shape)}")
            else:
                new_values.append((module, name, kind, value, current))
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mis_shaped:
            problems.append("mis-shaped keys: " + "; ".join(mis_shaped))
        if not_numeric:
            problems.append("non-numeric arrays: " + "; ".join(not_numeric))
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__} "
                               "(nothing was changed):\n  " + "\n  ".join(problems))
        for module, name, kind, value, current in new_values:
            # A fresh copy in the model's dtype and on its device; Parameters keep identity.
            array = backend.move(np.array(value, dtype=current.dtype, copy=True),
                                 backend.device_of(current))
            if kind == "parameter":
                module._parameters[name].data = array
                bump_version(module._parameters[name])
            else:
                setattr(module, name, array)            # the registry and its mirror
        return missing, unexpected

    # ---- hooks ------------------------------------------------------------------------
    def register_forward_hook(self, hook):
        """Call ``hook(module, inputs, output)`` after each forward; a non-None return
        value replaces the output.  Returns a handle whose ``remove()`` unregisters it."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook):
        """Call ``hook(module, inputs)`` before each forward; a non-None return value
        replaces the inputs."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    # ---- printing -------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(module).replace("\n", "\n  ")
                 for name, module in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"

    def __dir__(self):
        return list(super().__dir__()) + list(self._parameters) + list(self._buffers) + \
            list(self._modules)
