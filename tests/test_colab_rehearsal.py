"""Rehearse what Colab does with a chapter (book issue "The Colab path"): nobody here has Colab,
so its start is played with stand-ins and checked cell by cell.

* `google.colab` is put into `sys.modules` (a stub module), as on Colab;
* the setup cell is turned into Python the way IPython does it, with `%pip` recorded by a fake
  `get_ipython()`; the recorded install line must name the repository URL of `_config.yml`,
  and pip must be able to build the package from this checkout with no network (a dry run
  standing in for the git URL);
* then the rest of the setup cell and the chapter's first real cell run (smoke profile,
  $GLANCE_HOME in a temporary folder, as with a mounted Drive).

What this cannot show: Colab's own pip, its GPU, and downloads from the internet (the MVTec
download is rehearsed against a local HTTP server in tests/test_download.py).
"""
from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "book" / "01_task_and_data.ipynb"


def _repo_url() -> str:
    for line in (ROOT / "_config.yml").read_text().splitlines():
        if line.strip().startswith("url:"):
            return line.split("url:", 1)[1].split("#")[0].strip()
    raise AssertionError("_config.yml has no repository url")


def _code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


class FakeIPython:
    """Records line magics instead of running them (pip must not touch this environment)."""

    def __init__(self):
        self.magics: list[tuple[str, str]] = []

    def run_line_magic(self, name: str, line: str):
        self.magics.append((name, line))


def test_chapter_starts_as_on_colab(tmp_path, monkeypatch):
    transform = pytest.importorskip("IPython.core.inputtransformer2").TransformerManager()
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setenv("GLANCE_PROFILE", "smoke")
    monkeypatch.setenv("GLANCE_HOME", str(tmp_path / "drive"))
    monkeypatch.delenv("GLANCE_TEACHER", raising=False)
    monkeypatch.chdir(ROOT / "book")
    ip = FakeIPython()
    ns: dict = {"get_ipython": lambda: ip}
    setup, first = _code_cells(CHAPTER)[:2]
    exec(compile(transform.transform_cell(setup), "setup cell", "exec"), ns)

    # the install line: %pip install -q git+<the repository URL of _config.yml>
    assert [m[0] for m in ip.magics] == ["pip"]
    assert ip.magics[0][1].split() == ["install", "-q", f"git+{_repo_url()}"]
    # ... and pip can build the package from source without a network (stand-in for the URL;
    # the build backend must be importable here, as pip would otherwise fetch it)
    pytest.importorskip("setuptools", reason="pip's offline build of the package needs setuptools")
    dry = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index",
                          "--no-build-isolation", "-q", str(ROOT)], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-2000:]

    book = ns["book"]
    assert book.live  # Colab counts as an interactive kernel: widgets instead of static HTML
    assert book.data_root == tmp_path / "drive" / "data" / "synthetic-smoke"
    exec(compile(transform.transform_cell(first), "first cell", "exec"), ns)
    assert (tmp_path / "drive" / "data" / "synthetic-smoke").is_dir()
