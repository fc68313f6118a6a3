"""Reverse-mode automatic differentiation: ``Tensor`` and ``Function``.

A ``Tensor`` wraps an array (``.data``) and, once ``backward()`` has run, its gradient
(``.grad``).  Every operation on tensors is a ``Function`` subclass whose ``forward`` and
``backward`` are written by hand, side by side::

    class Mul(Function):
        def forward(self, a, b):          # arrays in, array out
            self.a, self.b = a, b         # keep what backward needs
            return a * b
        def backward(self, grad):         # dL/d(out) in, one dL/d(input) per input out
            return grad * self.b, grad * self.a

Calling a Function on tensors runs ``forward`` and, when a gradient is needed, records the
function as the output's ``creator``: the tape.  ``loss.backward()`` then visits every
tensor that led to ``loss`` in reverse topological order (outputs before the inputs they
were made from) and applies the chain rule

    dL/dx = sum over the ops f that used x of  backward_f(dL/d(out_f))

accumulating the contributions of a tensor used more than once before passing it on.
The walk uses an explicit stack, not recursion, so a chain of 5,000 ops is fine.  After
the walk each function drops what it kept (unless ``retain_graph=True``), so a training
loop does not grow.

The tape links a function to its inputs without keeping their arrays: a leaf (a weight,
an input batch) is linked as the Tensor itself, a computed tensor of 4096 elements or more
as its ``_Output`` node (its creator, shape and dtype, and the Tensor only while something
else holds it).  So an activation that no backward reads (a convolution's output, once
ReLU and max pooling have kept what they need) is freed when the forward pass moves on,
as in PyTorch.
"""
import contextlib
import sys
import threading
import weakref

import numpy as np

from . import backend

_FLOAT_DTYPES = (np.float16, np.float32, np.float64)
DEFAULT_DTYPE = np.float32


class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


@contextlib.contextmanager
def no_grad():
    """Inside this block no graph is recorded (inference, weight updates)."""
    previous, _grad_mode.enabled = _grad_mode.enabled, False
    try:
        yield
    finally:
        _grad_mode.enabled = previous


@contextlib.contextmanager
def enable_grad():
    previous, _grad_mode.enabled = _grad_mode.enabled, True
    try:
        yield
    finally:
        _grad_mode.enabled = previous


def is_grad_enabled():
    return _grad_mode.enabled


def _as_array(data, dtype=None, device=None):
    """Turn ``data`` (array, list, scalar, Tensor) into a numpy/cupy array.

    Floating arrays keep their dtype; Python numbers and lists become float32, as in PyTorch;
    integer and bool arrays stay integer (labels, indices)."""
    if isinstance(data, Tensor):
        data = data.data
    if backend.is_cupy_array(data) or isinstance(data, np.ndarray):
        array = data
    else:
        array = np.asarray(data)
        if array.dtype.kind == "f" and dtype is None and not isinstance(data, np.generic):
            array = array.astype(DEFAULT_DTYPE)      # Python floats -> float32
        elif array.dtype.kind in "iu" and dtype is None and isinstance(data, float):
            array = array.astype(DEFAULT_DTYPE)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"tensor data must be a numeric array, got dtype {array.dtype}")
    if dtype is not None:
        if np.dtype(dtype).kind not in "fiub":
            raise TypeError(f"dtype must be a numeric dtype (e.g. np.float32), got "
                            f"{np.dtype(dtype)} (from dtype={dtype!r})")
        array = array.astype(dtype, copy=False)
    if device is not None:
        array = backend.move(array, device)
    return array


class Tensor:
    """An array with a gradient and a link to the Function that made it.

    data           the numpy or cupy array
    grad           dL/d(this), an array of the same shape, filled by backward() on leaves
                   (tensors made by the user) and on tensors that called retain_grad()
    requires_grad  whether gradients should flow to this tensor
    creator        the Function that produced it (None for leaves)
    _version       how many times tinynet changed ``data`` in place (optimizer steps,
                   ``t[i] = v``, loading weights, nn.init): see ``bump_version``
    """

    __array_priority__ = 1000   # make ``ndarray * Tensor`` call Tensor.__rmul__
    _version = 0                # class defaults: no per-tensor cost until a change
    _changed_at = 0
    _node = None                # a computed tensor's _Output, made by Function.__call__

    def __init__(self, data, requires_grad=False, dtype=None, device=None, name=None):
        array = _as_array(data, dtype, device)
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(
                f"requires_grad=True needs a floating dtype, got {array.dtype}; "
                "use e.g. dtype=np.float32")
        self._set_fields(array, bool(requires_grad), name)

    def _set_fields(self, array, requires_grad, name=None, creator=None):
        """Every field of a Tensor, in one place: __init__ (after checking its arguments)
        and Function.__call__ (whose forward made a good array: no checks) both end here."""
        self.data = array
        self.requires_grad = requires_grad
        self.grad = None
        self.creator = creator
        self.name = name
        self._hooks = []
        self._retains_grad = False

    # ---- array facts ------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self.creator is None)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        dev = ", device='cuda'" if self.device == "cuda" else ""
        body = repr(backend.to_cpu(self.data)).replace("array(", "tensor(", 1)
        return body[:-1] + f"{grad}{dev})" if body.endswith(")") else body

    def numpy(self):
        """The data as a NumPy array (copied to the host when on the GPU)."""
        return backend.to_cpu(self.data)

    def item(self):
        return self.numpy().item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """The same data, cut from the graph: no gradient flows through it."""
        return Tensor(self.data)

    def requires_grad_(self, flag=True):
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"requires_grad needs a floating dtype, got {self.data.dtype}")
        self.requires_grad = flag
        return self

    def zero_grad(self):
        self.grad = None

    # ---- hooks ----------------------------------------------------------------------
    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad: it will "
                               "never get a gradient")
        self._retains_grad = True
        return self

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is complete during backward.

        A hook may return a new gradient array that replaces the old one for everything
        upstream (this is how explain reads and edits gradients at a layer).  Returns a
        handle whose ``remove()`` unregisters it."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        self._hooks.append(hook)
        return _HookHandle(self._hooks, hook)

    # ---- backward ----------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Fill ``.grad`` of every leaf that led to this tensor with dL/d(leaf).

        grad          dL/d(self); may be omitted only when self is a scalar (then 1)
        retain_graph  keep the graph so backward can run through it again
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input had "
                "requires_grad=True, or it was computed under no_grad()")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward() without a gradient needs a scalar output; got shape "
                    f"{self.shape}: pass grad= of that shape (e.g. the upstream gradient)")
            # 1 in the output's dtype and shape (np.ones is Python code around empty + copyto,
            # several times the cost of this on the usual 0-d loss)
            grad = xp.asarray(1, dtype=self.data.dtype).reshape(self.data.shape)
        else:
            grad = _as_array(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"grad must have the output's shape {self.shape}, "
                                 f"got {grad.shape}")
            if backend.device_of(grad) != self.device:
                raise ValueError(f"grad is on {backend.device_of(grad)}, "
                                 f"the tensor on {self.device}")
        run_backward(self, grad, retain_graph)

    # Comparisons give boolean tensors, elementwise (== and != too, as in PyTorch); they
    # have no gradient.  ``t in some_list`` therefore compares values: use ``is`` to find
    # a tensor by identity.
    def __lt__(self, other): return Tensor(self.data < _compared(other, self))
    def __le__(self, other): return Tensor(self.data <= _compared(other, self))
    def __gt__(self, other): return Tensor(self.data > _compared(other, self))
    def __ge__(self, other): return Tensor(self.data >= _compared(other, self))
    def __eq__(self, other): return Tensor(self.data == _compared(other, self))
    def __ne__(self, other): return Tensor(self.data != _compared(other, self))

    __hash__ = object.__hash__    # tensors are graph nodes, hashed by identity

    # Python conversions, as PyTorch: only a one-element tensor has a truth value or a number.
    def __bool__(self): return bool(self._one_value("bool"))
    def __float__(self): return float(self._one_value("float"))
    def __int__(self): return int(self._one_value("int"))

    def _one_value(self, what):
        if self.data.size != 1:
            raise RuntimeError(f"{what}() of a tensor with {self.data.size} values (shape "
                               f"{self.shape}) is ambiguous; index one value, or test "
                               "t.numpy().any() / .all()")
        return self.numpy().reshape(()).item()

    def __array__(self, dtype=None, copy=None):
        """``np.asarray(t)``: the numbers (copied to the host when on the GPU)."""
        array = self.numpy()
        return array if dtype is None else array.astype(dtype, copy=False)

    # Operators and op methods (t + u, t @ w, t[i] = v, t.sum(), t.reshape(...), t.to(...))
    # call the ops, so they are attached by tinynet/functional/methods.py when
    # tinynet.functional is imported: this module depends on no op module.

    def size(self, dim=None):
        """The shape, as PyTorch's ``size()``; ``size(d)`` the length of axis d.  (NumPy's
        element count ``.size`` is ``numel()`` here.)"""
        return tuple(self.shape) if dim is None else self.shape[dim]
    def numel(self): return self.data.size


class _Changes:
    """How many in-place changes tinynet has made so far, in all tensors together.

    A version counter per tensor, made cheap: each op that keeps its inputs for backward
    notes this count (``made_at``); each in-place change stamps the tensor with the new
    count (``_changed_at``).  In backward an op whose ``made_at`` still equals the count
    skips all checks (the usual case: nothing changed between forward and backward);
    otherwise an input with ``_changed_at > made_at`` was changed after the op read it."""
    count = 0


_changes = _Changes()


def bump_version(tensor):
    """Record that ``tensor.data`` was changed in place (as PyTorch's version counter)."""
    _changes.count += 1
    tensor._version += 1
    tensor._changed_at = _changes.count
    if tensor._node is not None:            # the tape's link to it checks this stamp
        tensor._node._changed_at = _changes.count


def _data(value):
    return value.data if isinstance(value, Tensor) else value


def _compared(other, reference):
    """The other side of a comparison; a scalar takes the tensor's dtype (PyTorch: a float32
    tensor is compared with 0.1 rounded to float32, not with the float64 0.1)."""
    if isinstance(other, Tensor):
        return other.data
    dtype = _const_dtype(other, reference)
    return other if dtype is None else _as_array(other, dtype=dtype)


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class Function:
    """One differentiable operation.  Subclasses write ``forward`` and ``backward``.

    ``forward(*arrays)`` gets the inputs' arrays and returns the output array.
    ``backward(grad)`` gets dL/d(output) and returns one gradient per input, in order
    (``None`` for an input that needs none, such as integer labels).  Any arrays that
    backward needs are stored on ``self`` during forward: this is the only place an op's
    saved state lives.

    ``self.needs_input_grad`` (set before ``forward`` runs, as in Chainer and PyTorch) is
    one bool per input: does backward have to return its gradient?  All False under
    ``no_grad()``.  An op reads it to save less, and to skip gradients nobody wants.
    """

    def __call__(self, *inputs):
        # This runs for every op, so it is written for speed (plain loops, no generators).
        arrays, wants, nodes = [], [], []
        for x in inputs:
            if not isinstance(x, Tensor):     # a plain number or array among the inputs:
                return self._call_with_constants(inputs)
            arrays.append(x.data)
            wants.append(x.requires_grad)
            nodes.append(x._node or x)        # how the tape links to x: see _Output
        if (len(arrays) > 1 and backend.cupy_loaded()          # else all are on the CPU
                and len({backend.device_of(a) for a in arrays}) > 1):
            raise ValueError(
                f"{type(self).__name__}: inputs are on different devices "
                f"{[t.device for t in inputs]}; move them with .to(device) first")
        needs_grad = _grad_mode.enabled and True in wants
        # Which inputs backward must give a gradient for, known before forward runs, so
        # that forward keeps only what those gradients need (Conv2d: col for dL/dW).
        self.needs_input_grad = tuple(wants) if needs_grad else (False,) * len(wants)
        output = self.forward(*arrays)
        result = Tensor.__new__(Tensor)   # no checks: forward made a good array
        if needs_grad:
            self.inputs = tuple(nodes)
            self.made_at = _changes.count     # for the version check in backward
            result._set_fields(output, True, None, self)
            if output.size >= _OUTPUT_NODE_MIN_SIZE:
                result._node = _Output(self, result, output)
        else:
            result._set_fields(output, False)
        return result

    def _call_with_constants(self, inputs):
        """``__call__`` when some inputs are plain numbers or arrays: each becomes a constant
        Tensor with the dtype and device of the first Tensor input (see _const_dtype)."""
        reference = next((x for x in inputs if isinstance(x, Tensor)), None)
        if reference is None:
            reference = Tensor(inputs[0])
        return self(*(x if isinstance(x, Tensor) else
                      Tensor(_as_array(x, dtype=_const_dtype(x, reference)),
                             device=reference.device)
                      for x in inputs))

    released = False      # set by release(); a class default keeps the check cheap
    saves_inputs = True   # False for ops whose backward never reads an input's values
                          # (Add, Sum, Reshape ...): changing such an input in place is fine

    def check_versions(self):
        """Raise if an input this op read was changed in place after the forward pass."""
        for i, x in enumerate(self.inputs):
            if x._changed_at > self.made_at:
                what = f"'{x.name}' " if x.name else ""
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified "
                    f"by an inplace operation: input {i} of {self} (tensor {what}of shape "
                    f"{tuple(x.shape)}, now at version {x._version}) was changed after the "
                    "forward pass.  Did an optimizer step (or t[...] = v, load_state_dict) "
                    "run between the forward pass and backward()?  Compute the loss again "
                    "after changing the weights.")

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def release(self):
        """Drop saved arrays and input links once backward has used them."""
        vars(self).clear()
        self.released = True

    def __repr__(self):
        return type(self).__name__


def _const_dtype(value, reference):
    """Constants take the dtype of the floating tensor they meet, as in PyTorch: a scalar
    (Python or NumPy number, 0-d array) never promotes a tensor, so float32 stays float32
    in ``t / np.int64(4)`` or ``t * np.array(2.0)``; integer arrays take the tensor's dtype
    too.  Only a floating array with axes keeps its own dtype (then NumPy's rules apply)."""
    if reference.dtype.kind != "f":
        return None
    if isinstance(value, (bool, int, float, np.generic)):
        return reference.dtype
    if isinstance(value, np.ndarray) or backend.is_cupy_array(value):
        if value.ndim == 0 or value.dtype.kind != "f":
            return reference.dtype
    return None


# ---- the backward pass ----------------------------------------------------------------

class _Output:
    """A computed tensor as the tape keeps it: what backward needs, without the array.

    Its creator, shape and dtype, its hooks (the Tensor's own list) and the stamp of its
    last in-place change (``bump_version``), and the Tensor itself only through a weak
    reference, for ``.grad`` when retain_grad() asked for it.  Once nothing else holds the
    Tensor, its array is freed; backward still passes dL/d(this) from the functions that
    used it to its creator.  In the reference CNN's training step, 60 of the 106 MiB live
    after the forward pass were convolution outputs that no backward reads; with these
    links the step's peak went from 144 to 74 MiB (benchmarks/RESULTS.md, 2026-12-06).

    Small outputs (below _OUTPUT_NODE_MIN_SIZE elements) are linked as the Tensor itself:
    making this node costs about 0.25 us, which a network of tiny ops (the XOR demo) notices,
    for arrays too small to matter."""

    __slots__ = ("creator", "shape", "dtype", "_hooks", "_changed_at", "_tensor",
                 "__weakref__")
    requires_grad = True

    def __init__(self, creator, tensor, array):
        self.creator, self.shape, self.dtype = creator, array.shape, array.dtype
        self._hooks = tensor._hooks            # the same list: hooks added later count
        self._changed_at = tensor._changed_at
        self._tensor = weakref.ref(tensor)

    name = property(lambda self: getattr(self._tensor(), "name", None))
    grad = property(lambda self: getattr(self._tensor(), "grad", None))
    _version = property(lambda self: getattr(self._tensor(), "_version", "?"))


_OUTPUT_NODE_MIN_SIZE = 4096


def topological_order(root):
    """The tape's nodes (leaf Tensors, _Output nodes) that ``root`` depends on through
    recorded Functions, inputs before outputs.

    Iterative depth-first search: a node is appended after all of its inputs."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        creator = node.creator
        if creator is None:                 # a leaf: nothing comes before it
            order.append(node)
            continue
        if creator.released:
            raise RuntimeError(
                "backward through a graph that was already freed: call the first "
                "backward(retain_graph=True) to run backward twice")
        stack.append((node, True))
        for parent in creator.inputs:
            if parent.requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    return order


# A leaf's gradient becomes its .grad without a copy where nothing else can see that memory,
# as PyTorch's AccumulateGrad keeps a gradient only it holds.  Elsewhere (the caller's own
# dL/dy, one array passed to two inputs, a view of a buffer kept for reuse, a hook that kept
# it) the copy stays: .grad is the user's to edit.  "Nothing else" is read off CPython's
# reference counts, against those of a lone view held the same way (interpreters differ in
# what they count); without sys.getrefcount it is a copy, always.  The copy of dL/dx was 3%-4%
# of a 32x32x32x32 -> 64 convolution's training step (AMD Zen 5, 2026-12-06).

def _reference_counts(array):
    """(references to array, references to the array it views or 0), as seen from here."""
    return sys.getrefcount(array), 0 if array.base is None else sys.getrefcount(array.base)


def _lone_view_counts():
    lone = np.empty(2)[:1]        # one local variable holds it; it alone holds its base
    return _reference_counts(lone)


_LONE = _lone_view_counts() if hasattr(sys, "getrefcount") else None
# Below this size the copy costs less than the check: XOR's step (four small leaves) ran
# 1.045x slower checking every leaf (AMD Zen 5, 2026-12-06).
_KEEP_MIN_SIZE = 4096


def _held_as_lone_view(counts):
    return counts[0] <= _LONE[0] and counts[1] <= _LONE[1]


def run_backward(root, grad, retain_graph=False):
    root = root if root._node is None else root._node
    grads = {id(root): grad}
    tracer = _tracer.current
    for node in reversed(topological_order(root)):
        grad = grads.pop(id(node), None)
        if grad is None:
            continue
        # The Tensor itself; None when only the tape still knew it (nobody can read .grad)
        tensor = node._tensor() if type(node) is _Output else node
        for hook in node._hooks:
            new_grad = hook(grad)
            if new_grad is not None:
                new_grad = _as_array(new_grad, dtype=grad.dtype)
                if new_grad.shape != grad.shape:
                    raise RuntimeError(f"hook {hook!r} returned a gradient of shape "
                                       f"{new_grad.shape}; the tensor has shape {grad.shape}")
                grad = new_grad
            new_grad = None
        fn = node.creator
        if tensor is not None and (fn is None or tensor._retains_grad):
            if tensor.grad is not None:
                tensor.grad = tensor.grad + grad
            elif (fn is None and grad.size >= _KEEP_MIN_SIZE and _LONE is not None
                    and _held_as_lone_view(_reference_counts(grad))):
                tensor.grad = grad          # a leaf's, and nothing else holds it (above)
            else:
                # A copy: the same array may also flow to other tensors (Add passes its
                # gradient to both inputs), and a user may edit .grad in place (clipping).
                tensor.grad = grad.copy()
        if fn is None:
            continue
        if fn.made_at != _changes.count and fn.saves_inputs:    # something changed since
            fn.check_versions()
        input_grads = fn.backward(grad)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if tracer is not None:
            tracer.record(fn, node, grad, input_grads)
        for parent, parent_grad in zip(fn.inputs, input_grads):
            if parent_grad is None or not parent.requires_grad:
                continue
            facts = parent.data if type(parent) is not _Output else parent  # shape, dtype
            shape, dtype = facts.shape, facts.dtype
            if parent_grad.shape != shape:           # a bug in an op, say so clearly
                raise RuntimeError(f"{fn}.backward returned a gradient of shape "
                                   f"{parent_grad.shape} for an input of shape {shape}")
            if (parent_grad.dtype is not dtype            # (identity first: the usual case)
                    and parent_grad.dtype != dtype):      # e.g. float32 x times float64:
                parent_grad = parent_grad.astype(dtype)   # as PyTorch, x's dtype
            key = id(parent)
            grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
        input_grads = parent_grad = None    # grads holds them now (for the count above)
        if not retain_graph:
            fn.release()


class _Tracer(threading.local):
    current = None     # a trace.BackwardTrace while ``with trace_backward():`` is active


_tracer = _Tracer()


def tensor(data, requires_grad=False, dtype=None, device="cpu"):
    """Make a leaf Tensor (``tn.tensor``) holding a copy of ``data``, as torch.tensor does
    (an optimizer updating it in place must not change the caller's array).  Floating arrays
    keep their dtype; Python numbers and lists become float32."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray) or backend.is_cupy_array(data):
        data = data.copy()
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)
