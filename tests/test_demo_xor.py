"""python -m demos.xor: the linear model fails on XOR, the hidden layer learns it, plots are written."""
import numpy as np

from demos import xor


def test_xor_demo(tmp_path, capsys):
    result = xor.main(["--out", str(tmp_path)])
    assert result["linear_accuracy"] <= 0.75          # a line cannot separate XOR
    assert result["mlp_accuracy"] == 1.0
    assert result["mlp_losses"][-1] < 0.05 < result["linear_losses"][-1]
    assert set(result["plots"]) == {"linear", "mlp", "loss"}
    for path in result["plots"].values():
        with open(path, "rb") as f:
            head = f.read(8)
        assert head == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / path.rsplit("/", 1)[-1]).stat().st_size > 1000
    printed = capsys.readouterr().out
    # The backward pass is shown layer by layer, W2 before W1, and checked.
    assert printed.index("dL/dW2 = h~^T delta2") < printed.index("dL/dW1 = x^T delta1")
    assert "MatMul" in printed and "tn.gradcheck" in printed and "passed" in printed


def test_hand_written_backprop_equals_autograd():
    rng = np.random.default_rng(1)
    w1 = xor.tn.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    w2 = xor.tn.tensor(rng.standard_normal((4, 1)), requires_grad=True)
    lines = []
    diff = xor.explain_backward(w1, w2, out=lines.append)
    assert diff < 1e-12
    assert any("autograd W1.grad" in line for line in lines)


def test_help_shows_every_option_with_its_default(capsys):
    import pytest
    with pytest.raises(SystemExit):
        xor.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, default in [("--out", "out/xor"), ("--hidden", "4"), ("--steps", "2000"),
                            ("--lr", "2.0"), ("--seed", "0")]:
        after = text[text.index(f"{option} {option.lstrip('-').upper()} "):]
        help_text = after[:after.index("(default")]
        assert len(help_text.split()) > 3, f"{option} has no help text"
        assert after.index(f"(default: {default})") < 200
