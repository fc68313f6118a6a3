"""Turn a chapter into a Jupyter notebook: its ```python blocks become code cells, the text
between them markdown cells.  Needs nothing but the standard library.

    python docs/to_notebook.py docs/02_xor_backprop.md            # -> out/02_xor_backprop.ipynb
    python docs/to_notebook.py docs/*.md --out notebooks

Run the notebook from a folder where ``import tinynet`` works (``pip install -e .``).
Image links (images/NAME.png) point into docs/images/; the code draws its own into out/.
"""
import argparse
import json
import os
import re

BLOCK = re.compile(r"^```python\n(.*?)^```[ \t]*\n?", re.S | re.M)


def _cell(kind, text):
    cell = {"cell_type": kind, "metadata": {}, "source": text.splitlines(keepends=True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def chapter_cells(markdown):
    """[(kind, text)] in page order: 'markdown' for prose, 'code' for each python block."""
    cells, position = [], 0
    for match in BLOCK.finditer(markdown):
        prose = markdown[position:match.start()].strip()
        if prose:
            cells.append(("markdown", prose))
        cells.append(("code", match.group(1).rstrip("\n")))
        position = match.end()
    rest = markdown[position:].strip()
    if rest:
        cells.append(("markdown", rest))
    return cells


def to_notebook(markdown):
    """The notebook (nbformat 4) as a dict."""
    return {"cells": [_cell(kind, text) for kind, text in chapter_cells(markdown)],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                        "name": "python3"},
                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("chapters", nargs="+", help="chapter files (docs/NN_name.md)")
    parser.add_argument("--out", default="out", help="folder for the .ipynb files (made if missing)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    written = []
    for chapter in args.chapters:
        with open(chapter, encoding="utf-8") as f:
            notebook = to_notebook(f.read())
        name = os.path.splitext(os.path.basename(chapter))[0] + ".ipynb"
        path = os.path.join(args.out, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(notebook, f, indent=1)
        written.append(path)
        print(path)
    return written


if __name__ == "__main__":
    main()
