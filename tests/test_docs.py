"""Every ```python block of docs/*.md and of README.md runs as written, so no page goes stale.

A chapter's blocks run in order in ONE namespace (a later block uses what an earlier one
made), in a fresh temporary folder, with matplotlib's Agg backend.  README blocks each run in
a fresh namespace, as a reader would paste them one at a time.  Figures go to ``out/`` inside
that temporary folder, so a test run never rewrites a committed picture.

A chapter that shows a picture ``![...](images/NAME.png)`` must draw ``out/NAME.png`` itself:
the committed copy in docs/images/ is what that very code drew.  To redraw the committed
copies of one chapter after changing it:

    PYTHONPATH=$PWD MPLBACKEND=Agg python tests/test_docs.py docs/04_convolution.md
"""
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CHAPTERS = sorted(DOCS.glob("[0-9][0-9]_*.md"))
README = ROOT / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
IMAGE = re.compile(r"!\[[^\]]*\]\((?:docs/)?images/([^)]+\.png)\)")


def python_blocks(path):
    return BLOCK.findall(path.read_text(encoding="utf-8"))


def shown_images(path):
    return IMAGE.findall(path.read_text(encoding="utf-8"))


def run_chapter(path, folder):
    """Run the chapter's blocks in sequence in ``folder``; return the namespace."""
    import matplotlib
    matplotlib.use("Agg")
    namespace = {"__name__": "docs"}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        for i, code in enumerate(python_blocks(path), 1):
            exec(compile(code, f"{path.name} python block {i}", "exec"), namespace)
    finally:
        os.chdir(cwd)
        import matplotlib.pyplot as plt
        plt.close("all")
    return namespace


def test_there_are_nine_chapters_and_an_index():
    assert [p.name[:2] for p in CHAPTERS] == [f"{i:02d}" for i in range(1, 10)]
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    for chapter in CHAPTERS:
        assert f"]({chapter.name})" in index, f"docs/README.md does not link {chapter.name}"
    lecture = ('"Neural Network Explanations" (Explainable AI, Dr. Stefan Heindorf, '
               'Paderborn University)')
    for page in (README, CHAPTERS[0], DOCS / "README.md"):
        assert lecture in " ".join(page.read_text(encoding="utf-8").split()), \
            f"{page.name} does not name the lecture"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_names_its_files_in_reading_order(chapter):
    text = chapter.read_text(encoding="utf-8")
    assert "Files, in reading order" in text, f"{chapter.name} says not which files it reads"
    for path in re.findall(r"`((?:tinynet|explain|demos|tests|benchmarks)/[\w/]+\.py)`", text):
        assert (ROOT / path).is_file(), f"{chapter.name} cites {path}, which does not exist"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_and_draws_what_it_shows(chapter, tmp_path, monkeypatch):
    assert python_blocks(chapter), f"{chapter.name} has no python block"
    monkeypatch.setenv("MPLBACKEND", "Agg")
    run_chapter(chapter, tmp_path)
    for name in shown_images(chapter):
        assert (DOCS / "images" / name).is_file(), f"{chapter.name} shows missing images/{name}"
        drawn = tmp_path / "out" / name
        assert drawn.is_file() and drawn.stat().st_size > 1000, \
            f"{chapter.name} shows images/{name} but its code did not draw out/{name}"


def test_a_chapter_becomes_a_notebook_with_one_code_cell_per_block(tmp_path):
    import importlib.util
    import json
    spec = importlib.util.spec_from_file_location("to_notebook", DOCS / "to_notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    chapter = DOCS / "02_xor_backprop.md"
    (path,) = module.main([str(chapter), "--out", str(tmp_path)])
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    code = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code == [block.rstrip("\n") for block in python_blocks(chapter)]
    prose = "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    assert prose.startswith("# 2. XOR") and "```" not in prose and "delta2 = dL/dz2" in prose


README_BLOCKS = python_blocks(README)


def test_readme_has_python_examples():
    assert len(README_BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(README_BLOCKS)))
def test_readme_block_runs(index, capsys, tmp_path, monkeypatch):
    code = README_BLOCKS[index]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})
    if "gradcheck" in code and "GradcheckError" in code:     # the wrong backward is caught
        assert "gradcheck: input 0" in capsys.readouterr().out
    assert not (tmp_path / "docs").exists(), "a README example wrote into docs/"


if __name__ == "__main__":      # redraw the committed pictures of the chapters given
    for arg in sys.argv[1:]:
        chapter = Path(arg).resolve()
        with tempfile.TemporaryDirectory() as folder:
            run_chapter(chapter, folder)
            for name in shown_images(chapter):
                shutil.copyfile(Path(folder) / "out" / name, DOCS / "images" / name)
                print(f"docs/images/{name}")
