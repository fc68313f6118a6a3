"""Every ```python block of the README runs as written (each in a fresh namespace).

Blocks run in a temporary folder, so the pictures they draw (docs/images/...) land there and
the committed ones are not rewritten by a test run.  To redraw the committed pictures, run
the blocks from the repository root."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, capsys, tmp_path, monkeypatch):
    code = BLOCKS[index]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs" / "images").mkdir(parents=True)
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})
    if "gradcheck" in code and "GradcheckError" in code:     # the wrong backward is caught
        assert "gradcheck: input 0" in capsys.readouterr().out
