"""Remove outputs and execution counts from the book's notebooks before committing.

    python book/_tools/strip_outputs.py            # all of book/*.ipynb
    python book/_tools/strip_outputs.py FILE ...   # only these
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]


def strip(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count, changed = [], None, True
    if changed:
        nbformat.write(nb, path)
    return changed


if __name__ == "__main__":
    files = [Path(a) for a in sys.argv[1:]] or sorted((ROOT / "book").glob("*.ipynb"))
    for f in files:
        if strip(f):
            print("stripped", f)
