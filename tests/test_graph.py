"""tn.draw_graph: the graph it walks, the picture it writes, and tn.trace_backward(model=)."""
import shutil

import numpy as np
import pytest

import tinynet as tn
import tinynet.functional as F
from tinynet import graph as graph_module
from tinynet import nn


def small_net_and_loss(rng):
    tn.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    x = tn.tensor(rng.standard_normal((5, 2)))
    x.name = "x"
    y = tn.tensor(rng.standard_normal((5, 1)))
    net.double()
    return net, x, y


def test_graph_has_every_op_and_leaf_with_shapes_names_and_grad_norms(rng, tmp_path):
    net, x, y = small_net_and_loss(rng)
    loss = F.mse_loss(net(x), y)
    loss.name = "L"
    loss.backward(retain_graph=True)
    path = tmp_path / "graph.png"
    g = tn.draw_graph(loss, str(path), model=net, engine="matplotlib")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert sorted(g.ops()) == ["Linear", "Linear", "MSELoss", "Tanh"]
    leaves = {n.name: n for n in g.nodes.values() if n.kind == "tensor" and n.name}
    assert set(leaves) == {"x", "0.weight", "0.bias", "2.weight", "2.bias"}
    params = dict(net.named_parameters())
    for name, p in params.items():
        assert leaves[name].shape == p.shape
        np.testing.assert_allclose(leaves[name].grad_norm, np.linalg.norm(p.grad))
        assert f"|grad| {np.linalg.norm(p.grad):.3g}" in leaves[name].label
    assert leaves["x"].grad_norm is None                  # data gets no gradient
    root = g.nodes[g.root]
    assert root.op == "MSELoss" and root.name == "L" and root.shape == ()
    # the edges: the first Linear reads x, 0.weight, 0.bias; Tanh reads that Linear
    first = next(n for n in g.nodes.values() if n.op == "Linear" and n.shape == (5, 4))
    assert first.inputs == [id(x), id(params["0.weight"]), id(params["0.bias"])]
    tanh = next(n for n in g.nodes.values() if n.op == "Tanh")
    assert tanh.inputs == [first.key]


def test_a_tensor_used_twice_is_one_node(tmp_path):
    a = tn.tensor(np.arange(3.0), requires_grad=True)
    a.name = "a"
    b = a * 2
    g = tn.draw_graph((b * b).sum(), str(tmp_path / "g.png"), engine="matplotlib")
    mul_of_b = [n for n in g.nodes.values() if n.op == "Mul" and len(set(n.inputs)) == 1]
    assert len(mul_of_b) == 1 and len(mul_of_b[0].inputs) == 2
    assert [n.name for n in g.nodes.values() if n.kind == "tensor"].count("a") == 1


def test_freed_graph_and_missing_graphviz_are_clear_errors(rng, tmp_path, monkeypatch):
    net, x, y = small_net_and_loss(rng)
    loss = F.mse_loss(net(x), y)
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        tn.draw_graph(loss, str(tmp_path / "g.png"))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="graphviz's 'dot' program"):
        tn.draw_graph(F.mse_loss(net(x), y), str(tmp_path / "g.png"), engine="graphviz")
    with pytest.raises(ValueError, match="engine"):
        tn.draw_graph(F.mse_loss(net(x), y), str(tmp_path / "g.png"), engine="svg")
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        tn.draw_graph(F.mse_loss(net(x), y), str(tmp_path / "no_such_folder" / "g.png"))


def test_graphviz_engine_hands_dot_every_node_and_edge(rng, tmp_path, monkeypatch):
    """A stand-in 'dot' program (graphviz is not installed in CI) keeps the text it gets."""
    fake_dot = tmp_path / "dot"
    fake_dot.write_text("#!/bin/sh\n# dot -Tpng -o PATH: keep the graph text in PATH\n"
                        "cat > \"$3\"\n")
    fake_dot.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name: str(fake_dot) if name == "dot" else None)
    net, x, y = small_net_and_loss(rng)
    path = tmp_path / "g.png"
    g = tn.draw_graph(F.mse_loss(net(x), y), str(path), model=net)      # auto picks dot
    text = path.read_text()
    assert text.startswith("digraph")
    for node in g.nodes.values():
        assert f"n{node.key} [label=" in text
        for source in node.inputs:
            assert f"n{source} -> n{node.key};" in text
    assert "0.weight\\n(4, 2)" in text


def test_trace_names_parameters_by_module_path_and_explains_its_marks(rng):
    net, x, y = small_net_and_loss(rng)
    with tn.trace_backward(model=net) as trace:
        F.mse_loss(net(x), y).backward()
    text = str(trace)
    assert "? = unnamed tensor" in text.splitlines()[0] and "- = " in text.splitlines()[0]
    first_linear = trace.steps[-1]
    assert [name for name, _, _ in first_linear["inputs"]] == ["x", "0.weight", "0.bias"]
    assert first_linear["inputs"][0][2] is None               # x gets no gradient: '-'
    assert "x[5, 2]: -" in text and "2.weight[1, 4]" in text
    with pytest.raises(TypeError, match="model must be a Module"):
        with tn.trace_backward(model="net"):
            pass
