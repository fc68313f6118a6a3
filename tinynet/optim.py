"""Optimizers (SGD, Adam, AdamW, RMSprop) and learning-rate schedulers (in lr_scheduler.py,
re-exported here: ``optim.StepLR``), each with PyTorch's exact rule.

An optimizer holds ``param_groups``: a list of dicts, each with its own ``params`` and
hyper-parameters (``lr``, ``momentum``, ...), so layers can learn at different rates:

    opt = optim.SGD([{"params": model[0].parameters(), "lr": 1e-3},
                     {"params": model[2].parameters()}], lr=1e-2, momentum=0.9)

``step()`` updates each parameter's ``.data`` in place from its ``.grad``.  It records no
graph and never writes into ``.grad`` (gradient arrays may be shared).  Per-parameter
state (momentum buffers, Adam's moments) lives in ``opt.state[param]``.
"""
import math

import numpy as np

from . import backend
from .autograd import Tensor, bump_version
from .functional._checks import check_number


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors (e.g. model.parameters()), "
                            "got a single Tensor")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        group = dict(group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer params must be Tensors, item {i} is "
                                f"{type(p).__name__}")
            if p.dtype.kind != "f":
                raise TypeError(f"optimizer param {i} must be floating, got dtype {p.dtype}")
            if id(p) in seen:
                raise ValueError("a parameter appears in more than one parameter group")
            seen.add(id(p))
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        op = type(self).__name__
        check_number(group["lr"], "lr", op, low=0.0)
        check_number(group.get("weight_decay", 0.0), "weight_decay", op, low=0.0)

    def zero_grad(self):
        """Forget the gradients (set to None, PyTorch's default)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self):
        for group in self.param_groups:       # check everything first: no half-done step
            for p in group["params"]:
                if p.grad is not None and p.grad.shape != p.data.shape:
                    raise ValueError(f"{type(self).__name__}.step: a parameter of shape "
                                     f"{tuple(p.shape)} has a gradient of shape "
                                     f"{tuple(p.grad.shape)}; no parameter was updated")
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, p.grad, group, self.state.setdefault(p, {}))
                    bump_version(p)        # a graph built before this step is now stale

    def _update(self, p, grad, group, state):
        raise NotImplementedError

    # ---- resuming --------------------------------------------------------------------
    def state_dict(self):
        """{'state': {index: {name: array or number}}, 'param_groups': [{..., 'params': [index]}]}
        with parameters numbered in order across groups, as PyTorch does."""
        index, groups, next_index = {}, [], 0
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = list(range(next_index, next_index + len(group["params"])))
            for p in group["params"]:
                index[id(p)] = next_index
                next_index += 1
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if id(p) in index and s:
                state[index[id(p)]] = {k: (np.array(backend.to_cpu(v)) if hasattr(v, "shape") else v)
                                       for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore from ``state_dict()`` (also after ``tn.save``/``tn.load``).  Checks the
        group and parameter counts and every array's shape before changing anything."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"optimizer state has {len(groups)} parameter groups, "
                             f"this optimizer {len(self.param_groups)}")
        params = []
        for i, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"parameter group {i}: state has {len(saved['params'])} "
                                 f"parameters, this optimizer {len(group['params'])}")
            params += list(zip((int(j) for j in saved["params"]), group["params"]))
        by_index = dict(params)
        new_state = {}
        for key, s in state_dict["state"].items():
            key = int(key)
            if key not in by_index:
                raise ValueError(f"optimizer state names parameter {key}, which does not exist")
            p = by_index[key]
            entry = {}
            for name, value in s.items():
                if hasattr(value, "shape") and value.ndim > 0:
                    if tuple(value.shape) != tuple(p.shape):
                        raise ValueError(f"optimizer state '{name}' of parameter {key} has shape "
                                         f"{tuple(value.shape)}, the parameter {tuple(p.shape)}")
                    value = backend.move(np.array(value, dtype=p.dtype), p.device)
                elif hasattr(value, "shape"):
                    value = value.item()
                entry[name] = value
            new_state[p] = entry
        self.state = new_state
        for saved, group in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = tuple(v) if isinstance(v, (list, np.ndarray)) else v

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as PyTorch:

        g = grad + weight_decay * p
        b = g                                  on the first step (no dampening)
        b = momentum * b + (1 - dampening) * g afterwards
        g = g + momentum * b   if nesterov, else   g = b
        p = p - lr * g
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0):
        check_number(lr, "lr", "SGD", low=0.0)
        check_number(momentum, "momentum", "SGD", low=0.0)
        check_number(dampening, "dampening", "SGD")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov momentum needs momentum > 0 and dampening = 0, got "
                             f"momentum={momentum!r}, dampening={dampening!r}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      nesterov=nesterov, weight_decay=weight_decay))

    def _update(self, p, grad, group, state):
        weight_decay, momentum = group["weight_decay"], group["momentum"]
        if weight_decay:
            grad = grad + weight_decay * p.data          # new array: p.grad stays untouched
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * grad


class Adam(Optimizer):
    """Adam (Kingma and Ba), as PyTorch: with t counting steps from 1,

        g = grad + weight_decay * p
        m = beta1 m + (1 - beta1) g          v = beta2 v + (1 - beta2) g^2
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    With amsgrad, v in the denominator is replaced by the running maximum of v.  With
    decoupled_weight_decay (AdamW), the decay shrinks p directly, p = p (1 - lr weight_decay),
    instead of being added to the gradient, where Adam's scaling would weaken it."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, decoupled_weight_decay=False):
        check_number(lr, "lr", "Adam", low=0.0)
        check_number(eps, "eps", "Adam", low=0.0)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            check_number(beta, f"betas[{i}]", "Adam", 0.0, 1.0)
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _update(self, p, grad, group, state):
        xp = backend.get_array_module(p.data)
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p.data)
            state["exp_avg_sq"] = xp.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        if group["weight_decay"]:
            if group["decoupled_weight_decay"]:
                p.data *= 1 - group["lr"] * group["weight_decay"]
            else:
                grad = grad + group["weight_decay"] * p.data
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * (grad * grad)
        if group["amsgrad"]:
            xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        step_size = group["lr"] / (1 - beta1 ** t)
        denom = xp.sqrt(v) / math.sqrt(1 - beta2 ** t) + group["eps"]
        p.data -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as PyTorch's AdamW:

        p = p (1 - lr weight_decay),  then the Adam step on the plain gradient.

    PyTorch's default weight_decay here is 0.01 (Adam's is 0)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad,
                         decoupled_weight_decay=True)


class RMSprop(Optimizer):
    """RMSprop (Hinton), as PyTorch:

        g = grad + weight_decay * p
        s = alpha s + (1 - alpha) g^2                     (running mean of g^2)
        centered:  a = alpha a + (1 - alpha) g,   d = sqrt(s - a^2) + eps
        else:      d = sqrt(s) + eps
        momentum > 0:  b = momentum b + g / d,   p = p - lr b
        else:          p = p - lr g / d

    Note eps is added outside the square root (Adam's convention), as in PyTorch."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        check_number(alpha, "alpha", "RMSprop", 0.0, 1.0)
        check_number(eps, "eps", "RMSprop", low=0.0)
        check_number(momentum, "momentum", "RMSprop", low=0.0)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _update(self, p, grad, group, state):
        xp = backend.get_array_module(p.data)
        alpha = group["alpha"]
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p.data)
            if group["momentum"] > 0:
                state["momentum_buffer"] = xp.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p.data)
        state["step"] += 1
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p.data
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * (grad * grad)
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg *= alpha
            grad_avg += (1 - alpha) * grad
            denom = xp.sqrt(square_avg - grad_avg * grad_avg) + group["eps"]
        else:
            denom = xp.sqrt(square_avg) + group["eps"]
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += grad / denom
            p.data -= group["lr"] * buf
        else:
            p.data -= group["lr"] * (grad / denom)


# The schedulers live in lr_scheduler.py (which imports Optimizer from here); optim.StepLR
# etc. keep working, looked up there on first use, so the two modules import no circle.
_SCHEDULERS = ("CosineAnnealingLR", "ExponentialLR", "LambdaLR", "LRScheduler", "MultiStepLR",
               "OneCycleLR", "ReduceLROnPlateau", "StepLR")


def __getattr__(name):
    if name in _SCHEDULERS:
        from . import lr_scheduler
        return getattr(lr_scheduler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SCHEDULERS))
