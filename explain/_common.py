"""What every explanation method needs: inputs as Tensors, targets checked, a layer found by
name, the gradient of one class score, batching, and a progress bar.

Everything here uses tinynet's public API only (``tn.*``, ``F.*``, Module methods, tensor
hooks and forward hooks).
"""
import contextlib

import numpy as np

import tinynet as tn


# ---- inputs ----------------------------------------------------------------------------

def model_dtype_device(model):
    """(dtype, device) of the model's first floating parameter; (None, 'cpu') if it has none."""
    params = getattr(model, "parameters", None)
    if params is not None:
        for p in params():
            if p.dtype.kind == "f":
                return p.dtype, p.device
    return None, "cpu"


def as_input(x, model, name="x", min_ndim=2, image=False):
    """``x`` as a constant Tensor in the model's dtype and on its device.

    x       an array or Tensor with the batch first: (N, C, H, W) for images, (N, D) otherwise
    image   require the 4-D image layout (N, C, H, W)
    """
    if isinstance(x, tn.Tensor):
        data = x.data
    else:
        data = np.asarray(x)
    if data.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a numeric array, got dtype {data.dtype}")
    if image and data.ndim != 4:
        raise ValueError(f"{name} must be a batch of images of shape (N, C, H, W), got shape "
                         f"{tuple(data.shape)}; add the batch axis with x[None] for one image")
    if data.ndim < min_ndim:
        raise ValueError(f"{name} must have a batch axis first, shape (N, ...) with at least "
                         f"{min_ndim} dimensions, got shape {tuple(data.shape)}")
    if data.shape[0] < 1:
        raise ValueError(f"{name} is an empty batch (shape {tuple(data.shape)})")
    dtype, device = model_dtype_device(model)
    if dtype is None:
        dtype = data.dtype if data.dtype.kind == "f" else np.float32
    return tn.tensor(data, dtype=dtype, device=device)


def to_numpy(t):
    """A NumPy array from a Tensor, a NumPy or CuPy array (copied to the host), or a list."""
    if isinstance(t, tn.Tensor):
        return t.numpy()
    if type(t).__module__.startswith("cupy"):
        return tn.tensor(t).numpy()
    return np.asarray(t)


def check_targets(target, n, num_classes=None):
    """One int64 class index per example: ``target`` is an int or a sequence of n ints."""
    if isinstance(target, tn.Tensor):
        target = target.numpy()
    arr = np.asarray(target)
    if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and np.all(arr == np.round(arr))):
        raise TypeError(f"target must be a class index (int) or one per example, got {target!r}")
    arr = arr.astype(np.int64)
    if arr.ndim == 0:
        arr = np.full(n, int(arr), dtype=np.int64)
    elif arr.shape != (n,):
        raise ValueError(f"target must be an int or have one entry per example ({n}), "
                         f"got shape {arr.shape}")
    if num_classes is not None and arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        bad = arr[(arr < 0) | (arr >= num_classes)][0]
        raise ValueError(f"target {bad} is out of range: the model has {num_classes} classes "
                         f"(valid targets 0..{num_classes - 1})")
    return arr


def check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_logits(out, n):
    if not isinstance(out, tn.Tensor) or out.ndim != 2 or out.shape[0] != n:
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"the model must return class scores of shape (N, num_classes) = "
                         f"({n}, ...), got {shape}")
    return out


def one_hot(target, num_classes, like):
    """The upstream gradient that selects S_c: 1 at (i, target_i), 0 for the other classes
    (the lecture's "set all other classes to zero")."""
    grad = np.zeros((len(target), num_classes), dtype=like.dtype)
    grad[np.arange(len(target)), target] = 1
    return tn.tensor(grad, device=like.device).data


def batches(n, batch_size):
    """Index ranges [start, stop) covering range(n) in chunks of ``batch_size``."""
    for start in range(0, n, batch_size):
        yield start, min(start + batch_size, n)


def progress_bar(total, desc, enabled):
    """A tqdm bar (or a do-nothing stand-in when progress=False)."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False)


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass


# ---- the model stays untouched ----------------------------------------------------------

@contextlib.contextmanager
def evaluating(model):
    """Put the model in eval mode for the block, then give every module back its own
    ``training`` flag (also when the block raises).

    We explain the trained function f(x): in training mode Dropout would make each map
    random and BatchNorm would use the batch's statistics (so one image's map depends on
    the others in the batch) and update its running statistics."""
    modules = list(model.modules()) if hasattr(model, "modules") else []
    flags = [m.training for m in modules]
    if modules:
        model.eval()
    try:
        yield
    finally:
        for m, flag in zip(modules, flags):
            m.training = flag


@contextlib.contextmanager
def frozen(model):
    """Eval mode (see ``evaluating``) and ``requires_grad`` off on the model's parameters
    for the block.

    Explanations need gradients with respect to inputs or activations only; freezing the
    weights means backward neither computes nor stores weight gradients (faster, and the
    model's ``.grad`` fields are left exactly as they were)."""
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad = False
    try:
        with evaluating(model):
            yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad = flag


# ---- layers -----------------------------------------------------------------------------

def named_layers(model):
    if not hasattr(model, "named_modules"):
        raise TypeError(f"a layer can only be chosen in a tinynet nn.Module, got "
                        f"{type(model).__name__}")
    return [(name, m) for name, m in model.named_modules()]


def resolve_layer(model, layer, default="conv"):
    """(name, module) for ``layer``: a module inside ``model`` or its dotted name as in
    ``model.named_modules()``.  ``None`` picks the last Conv2d (``default='conv'``)."""
    layers = named_layers(model)
    if layer is None:
        if default == "conv":
            from tinynet import nn
            convs = [(n, m) for n, m in layers if isinstance(m, nn.Conv2d)]
            if not convs:
                raise ValueError("layer=None picks the last Conv2d, but the model has none; "
                                 f"name a layer, one of: {_names(layers)}")
            return convs[-1]
        raise ValueError(f"a layer is required, one of: {_names(layers)}")
    if isinstance(layer, str):
        for name, module in layers:
            if name == layer:
                return name, module
        raise ValueError(f"unknown layer {layer!r}; the model's layers are: {_names(layers)}")
    for name, module in layers:
        if module is layer:
            return name, module
    raise ValueError(f"layer {type(layer).__name__} is not a module of this model; "
                     f"its layers are: {_names(layers)}")


def _names(layers):
    return ", ".join(repr(n) for n, _ in layers if n) or "(none)"


@contextlib.contextmanager
def capture(module, replace=None):
    """Record the output of ``module`` on each forward call (in ``outputs``).

    replace  optional function output -> Tensor: the forward hook returns it, so the rest of
             the network computes from the replacement (used to make the layer's activations a
             leaf, or to feed chosen activations h_{l,k}(a))."""
    outputs = []

    def hook(mod, inputs, output):
        if replace is not None:
            output = replace(output)
        outputs.append(output)
        return output if replace is not None else None

    handle = module.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()


def class_score_gradients(model, x, target, wrt="input", layer_module=None):
    """Forward x, pick S_c per example, backward; return (logits, grad, activations).

    wrt='input'   the gradient dS_c/dx at the input pixels, shape of x
    wrt='layer'   the gradient dS_c/dA at the output A of ``layer_module``; the layer's
                  output is made a leaf so backward stops there (no work below the layer)
    """
    n = x.shape[0]
    if wrt == "input":
        xt = tn.Tensor(x.data, requires_grad=True)      # stays on x's device
        with tn.enable_grad(), frozen(model):           # also inside a caller's no_grad()
            logits = check_logits(model(xt), n)
            target = check_targets(target, n, logits.shape[1])
            logits.backward(one_hot(target, logits.shape[1], logits))
        return logits, xt.grad, None
    leaf = {}

    def make_leaf(output):
        leaf["a"] = tn.Tensor(output.data, requires_grad=True)
        return leaf["a"]

    # backward inside frozen() too: it skips tensors whose requires_grad is off *now*
    with tn.enable_grad(), frozen(model):
        with capture(layer_module, replace=make_leaf):
            logits = check_logits(model(x), n)
        if "a" not in leaf:
            raise ValueError("the chosen layer was not called during the model's forward pass")
        target = check_targets(target, n, logits.shape[1])
        logits.backward(one_hot(target, logits.shape[1], logits))
    return logits, leaf["a"].grad, leaf["a"].data


def softmax_np(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict(model, x, batch_size=256):
    """Logits of ``model`` on ``x`` without a graph, as a NumPy array."""
    out = []
    with tn.no_grad(), frozen(model):
        for a, b in batches(x.shape[0], batch_size):
            out.append(to_numpy(model(x[a:b] if isinstance(x, tn.Tensor) else x[a:b])))
    return np.concatenate(out)
