"""The import graph of tinynet and explain has no circle: each module imports only modules
below it, so a learner can read them bottom up (autograd.py first, the ops after it)."""
import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("tinynet", "explain")


def _module_files():
    files = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(parts)] = path
    return files


def _top_level_imports(name, path, modules):
    """Modules that ``name`` imports when it is loaded (imports inside functions run later
    and are left out).  ``from P import m`` counts as importing P.m when that is a module."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()

    def visit(statements):
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                for alias in node.names:
                    if f"{source}.{alias.name}" in modules:
                        found.add(f"{source}.{alias.name}")
                    elif source in modules:
                        found.add(source)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "finalbody", []))
    visit(ast.parse(path.read_text()).body)
    found.discard(name)
    return found


def import_graph():
    modules = _module_files()
    return {name: _top_level_imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph):
    """One cycle as a list of modules, or None.  A package's __init__ importing its own
    submodules is the usual way a package is built and is left out (a submodule is loaded
    after its package has started)."""
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for dep in sorted(edges.get(module, ())):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                cycle = visit(dep)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(edges):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert "tinynet.functional.math" in graph["tinynet.functional.methods"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_autograd_depends_on_no_op_module():
    deps = import_graph()["tinynet.autograd"]
    assert not any(d.startswith("tinynet.functional") for d in deps), deps


def test_the_cycle_finder_can_fail():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"p": {"p.x"}, "p.x": set()}) is None


@pytest.mark.parametrize("first", ["tinynet.autograd", "tinynet.functional.shape",
                                   "tinynet.functional.conv", "tinynet.kernels.cpu_numba",
                                   "tinynet.nn.layers", "explain"])
def test_any_module_can_be_imported_first(first):
    """In a fresh interpreter, importing this module first works and gives Tensor its
    operators (tinynet/__init__ loads tinynet.functional, which attaches them)."""
    code = (f"import {first}; import tinynet as tn; "
            "t = tn.tensor([1.0, 2.0]); assert (t + 1).sum().item() == 5.0")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg",
                                          "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
