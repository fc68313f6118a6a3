"""A picture of the graph that autograd recorded: ``tn.draw_graph(loss, "graph.png")``.

Every op that led to ``loss`` is a box with its output's shape; every leaf (an input, a
parameter, a constant) is an oval with its name and shape.  Arrows run the way forward ran,
from the leaves down to ``loss``; backward walks them the other way.  After
``loss.backward(retain_graph=True)`` each tensor that has a ``.grad`` shows its norm
|dL/dt|, so one can see where the gradient is large or vanishes.

    net = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    loss = F.mse_loss(net(x), y)
    loss.backward(retain_graph=True)        # keep the graph to draw it afterwards
    tn.draw_graph(loss, "graph.png", model=net)   # parameters named '0.weight', ...

With ``model=`` the parameters are named by their path in ``model.named_parameters()``;
otherwise a tensor is shown by its ``.name`` or as 'parameter', 'constant' or '?'.
The picture is drawn with matplotlib, or with graphviz's ``dot`` program when it is
installed (``engine="auto"``); ``draw_graph`` returns the ``Graph`` it walked.
"""
import os
import shutil
import subprocess
from dataclasses import dataclass, field

from . import backend
from .trace import name_of, tensor_names


@dataclass
class Node:
    key: int                  # id() of the Function (op) or of the Tensor (leaf)
    kind: str                 # 'op' or 'tensor'
    label: str                # the text drawn in the node
    shape: tuple
    name: str = None          # the tensor's name (for an op: its output's name)
    op: str = None            # the Function's class name, for ops
    grad_norm: float = None   # |dL/dt| when the tensor has a .grad
    inputs: list = field(default_factory=list)    # keys of the nodes feeding this one


@dataclass
class Graph:
    nodes: dict               # key -> Node, leaves and ops, inputs before outputs
    root: int                 # key of the node holding the tensor that was drawn

    def names(self):
        return [n.name for n in self.nodes.values() if n.name]

    def ops(self):
        return [n.op for n in self.nodes.values() if n.kind == "op"]


def _norm(array):
    if array is None:
        return None
    xp = backend.get_array_module(array)
    return float(xp.linalg.norm(array.ravel()))


def _describe(tensor, names, kind_if_unnamed):
    name = name_of(tensor, names)
    grad = _norm(tensor.grad)
    lines = [name or kind_if_unnamed, str(tuple(tensor.shape))]
    if grad is not None:
        lines.append(f"|grad| {grad:.3g}")
    return name, grad, "\n".join(lines)


def build_graph(tensor, model=None):
    """Walk the recorded graph from ``tensor`` back to its leaves; return a ``Graph``."""
    from .nn.module import Parameter      # nn imports autograd; import here, not at the top
    names = tensor_names(model)
    nodes, order = {}, []

    def visit_leaf(t):
        if id(t) not in nodes:
            unnamed = ("parameter" if isinstance(t, Parameter)
                       else "?" if t.requires_grad else "constant")
            name, grad, label = _describe(t, names, unnamed)
            nodes[id(t)] = Node(id(t), "tensor", label, tuple(t.shape), name, None, grad)
            order.append(id(t))
        return id(t)

    # Iterative depth-first walk (graphs can be thousands of ops deep): an op is added after
    # all of its inputs, so ``order`` runs from the leaves to the root.
    stack, expanded = [(tensor, False)], set()
    while stack:
        t, inputs_done = stack.pop()
        fn = t.creator
        if fn is None:
            visit_leaf(t)
            continue
        if not inputs_done and id(fn) in expanded:
            continue
        if fn.released:
            raise RuntimeError(
                "draw_graph: backward() has already freed this graph; draw it before "
                "backward, or call backward(retain_graph=True) to keep it")
        if inputs_done:
            if id(fn) not in nodes:
                name, grad, label = _describe(t, names, "")
                label = f"{type(fn).__name__}\n{label.lstrip()}"
                inputs = [id(p.creator) if p.creator is not None else id(p) for p in fn.inputs]
                nodes[id(fn)] = Node(id(fn), "op", label, tuple(t.shape), name,
                                     type(fn).__name__, grad, inputs)
                order.append(id(fn))
            continue
        expanded.add(id(fn))
        stack.append((t, True))
        for parent in reversed(fn.inputs):
            stack.append((parent, False))
    root = id(tensor.creator) if tensor.creator is not None else id(tensor)
    return Graph({key: nodes[key] for key in order}, root)


def draw_graph(tensor, path, model=None, engine="auto"):
    """Draw the graph that led to ``tensor`` into the image file ``path``; return the Graph.

    model   a Module: its parameters are labelled by name ('0.weight')
    engine  'auto' (graphviz's dot when installed, else matplotlib), 'matplotlib' or
            'graphviz' (an error saying what to install when dot is missing)
    """
    if engine not in ("auto", "matplotlib", "graphviz"):
        raise ValueError(f"draw_graph: engine must be 'auto', 'matplotlib' or 'graphviz', "
                         f"got {engine!r}")
    dot = shutil.which("dot")
    if engine == "graphviz" and dot is None:
        raise RuntimeError(
            "draw_graph: engine='graphviz' needs graphviz's 'dot' program, which is not on "
            "PATH; install graphviz (e.g. 'apt install graphviz' or 'conda install graphviz') "
            "or use engine='matplotlib'")
    graph = build_graph(tensor, model)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"draw_graph: the folder of path {path!r} does not exist")
    if dot is not None and engine != "matplotlib":
        _draw_graphviz(graph, path, dot)
    else:
        _draw_matplotlib(graph, path)
    return graph


def _draw_graphviz(graph, path, dot):
    lines = ["digraph tinynet {", '  node [fontname="Helvetica", fontsize=10];']
    for node in graph.nodes.values():
        label = node.label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        style = ('shape=box, style="rounded,filled", fillcolor="#cfe2f3"' if node.kind == "op"
                 else 'shape=ellipse, style=filled, fillcolor="#fff2cc"')
        lines.append(f'  n{node.key} [label="{label}", {style}];')
        for source in node.inputs:
            lines.append(f"  n{source} -> n{node.key};")
    lines.append("}")
    fmt = os.path.splitext(path)[1].lstrip(".") or "png"
    subprocess.run([dot, f"-T{fmt}", "-o", path], input="\n".join(lines), text=True,
                   check=True, capture_output=True)


def _layers(graph):
    """Rows of node keys: every op one row below its lowest input op, every leaf in the row
    just above the first op that uses it (so arrows from parameters stay short)."""
    level, ops = {}, [n for n in graph.nodes.values() if n.kind == "op"]
    for node in ops:                          # inputs come before outputs in graph.nodes
        level[node.key] = 1 + max((level[k] for k in node.inputs if k in level), default=0)
    for node in graph.nodes.values():
        if node.kind == "tensor":
            users = [level[op.key] for op in ops if node.key in op.inputs]
            level[node.key] = min(users, default=1) - 1
    rows = [[] for _ in range(max(level.values()) + 1)]
    for key in graph.nodes:
        rows[level[key]].append(key)
    return rows


def _draw_matplotlib(graph, path):
    import matplotlib
    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg")         # drawing into a file needs no window
    import matplotlib.pyplot as plt

    rows = _layers(graph)
    x = {}
    for row in rows:                  # order a row by where its inputs sit: fewer crossings
        def pull(key):
            inputs = [x[k] for k in graph.nodes[key].inputs if k in x]
            return sum(inputs) / len(inputs) if inputs else 0.0
        row.sort(key=pull)
        for i, key in enumerate(row):
            x[key] = i - (len(row) - 1) / 2
    y = {key: -depth for depth, row in enumerate(rows) for key in row}
    width = max(len(row) for row in rows)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.9 * width), max(2.5, 1.15 * len(rows))))
    for node in graph.nodes.values():
        for source in node.inputs:
            ax.annotate("", xy=(x[node.key], y[node.key] + 0.22),
                        xytext=(x[source], y[source] - 0.22),
                        arrowprops=dict(arrowstyle="->", color="0.35", lw=1))
    for node in graph.nodes.values():
        is_op = node.kind == "op"
        ax.text(x[node.key], y[node.key], node.label, ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round,pad=0.35" if is_op else "ellipse,pad=0.25",
                          fc="#cfe2f3" if is_op else "#fff2cc",
                          ec="#0b5394" if node.key == graph.root else "0.4",
                          lw=2 if node.key == graph.root else 1))
    ax.set_xlim(-width / 2 - 0.2, width / 2 + 0.2)
    ax.set_ylim(-len(rows) + 0.5, 0.5)
    ax.axis("off")
    ax.set_title("ovals: leaves (inputs, parameters);  boxes: ops with their output's shape;\n"
                 "arrows: forward (backward runs against them);  |grad|: norm of dL/dt",
                 fontsize=8, color="0.3")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
