"""Optimizers (SGD, Adam) and learning-rate schedulers, each with PyTorch's exact rule.

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
                if p.grad is not None and p.grad.shape != p.shape:
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

    With amsgrad, v in the denominator is replaced by the running maximum of v."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        check_number(lr, "lr", "Adam", low=0.0)
        check_number(eps, "eps", "Adam", low=0.0)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            check_number(beta, f"betas[{i}]", "Adam", 0.0, 1.0)
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad))

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


# ---- learning-rate schedulers -------------------------------------------------------------

class LRScheduler:
    """Sets each group's ``lr`` from the step count: call ``scheduler.step()`` once per
    epoch (or per batch for OneCycleLR), after ``optimizer.step()``.  Construction sets
    the lr for step 0, as PyTorch does."""

    def __init__(self, optimizer, last_epoch=-1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError("param 'initial_lr' is not in the param groups; resuming "
                               "(last_epoch != -1) needs them")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self):
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if not isinstance(step_size, int) or step_size <= 0:
            raise ValueError(f"step_size must be a positive int, got {step_size!r}")
        check_number(gamma, "gamma", "StepLR")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if T_max <= 0:
            raise ValueError(f"T_max must be positive, got {T_max!r}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        cos = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (base - self.eta_min) * cos for base in self.base_lrs]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith), PyTorch's formulas: step it once per batch.

    lr rises from max_lr/div_factor to max_lr over the first pct_start of total_steps,
    then anneals to max_lr/(div_factor*final_div_factor); momentum (SGD's momentum or
    Adam's beta1) moves the opposite way between max_momentum and base_momentum.
    cos annealing from a to b at fraction t:  b + (a - b) * (1 + cos(pi t)) / 2."""

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True,
                 base_momentum=0.85, max_momentum=0.95, div_factor=25.0,
                 final_div_factor=1e4, three_phase=False, last_epoch=-1):
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR needs total_steps, or epochs and steps_per_epoch")
            total_steps = epochs * steps_per_epoch
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
        if not 0 <= pct_start <= 1:
            raise ValueError(f"pct_start must be in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.total_steps, self.anneal_strategy = total_steps, anneal_strategy
        groups = optimizer.param_groups
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if len(max_lrs) != len(groups):
            raise ValueError(f"max_lr has {len(max_lrs)} values for {len(groups)} param groups")
        if three_phase:
            self._phases = [
                (float(pct_start * total_steps) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * pct_start * total_steps) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            self._phases = [
                (float(pct_start * total_steps) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        for group, top in zip(groups, max_lrs):
            if last_epoch == -1:
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("optimizer must support momentum or betas with cycle_momentum")
            self._use_beta1 = "betas" in optimizer.defaults
            for group in groups:
                if last_epoch == -1:
                    self._set_momentum(group, max_momentum)
                    group["max_momentum"], group["base_momentum"] = max_momentum, base_momentum
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group, value):
        if self._use_beta1:
            group["betas"] = (value,) + tuple(group["betas"][1:])
        else:
            group["momentum"] = value

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR stepped {step} times, more than total_steps="
                             f"{self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, (end_step, lr_a, lr_b, mom_a, mom_b) in enumerate(self._phases):
                if step <= end_step or i == len(self._phases) - 1:
                    pct = (step - start_step) / (end_step - start_step)
                    lr = self._anneal(group[lr_a], group[lr_b], pct)
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[mom_a], group[mom_b], pct))
                    break
                start_step = end_step
            lrs.append(lr)
        return lrs
