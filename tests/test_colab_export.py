"""book/_tools/colab_export.py: the plain notebooks the Colab button opens hold no MyST, keep every
code cell, and run as a Colab student runs them (google.colab stub, smoke profile)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MYST = re.compile(r"\{[a-z][\w:-]*\}`|^\s*(`{3,}|:{3,})\{|^\([\w-]+\)=\s*$", re.M)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    pytest.importorskip("pybtex", reason="the export reads references.bib with pybtex (the book extra)")
    out = tmp_path_factory.mktemp("colab")
    done = subprocess.run([sys.executable, str(ROOT / "book" / "_tools" / "colab_export.py"), str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def _cells(path: Path, kind: str) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == kind]


def test_every_page_is_exported_without_myst(exported):
    sources = sorted((ROOT / "book").glob("*.ipynb"))
    assert sorted(p.name for p in (exported / "book").glob("*.ipynb")) == [p.name for p in sources]
    for src in sources:
        out = exported / "book" / src.name
        text = "\n".join(_cells(out, "markdown"))
        assert not MYST.search(text), f"{src.name}: {MYST.search(text).group(0)!r}"
        assert _cells(out, "code") == _cells(src, "code"), src.name  # code as it is
        assert all(not c.get("outputs") for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code")
        original = "\n".join(_cells(src, "markdown"))
        assert text.count("#### Exercise ") == original.count("```{exercise}"), src.name
        assert text.count("<details>") == original.count("```{solution}"), src.name
        if "{cite:" in original:
            assert "## References" in text and ("(Wang et al., 2021" in text or "Wang et al. (2021)" in text)


def test_links_point_at_the_published_book(exported):
    text = "\n".join(_cells(exported / "book" / "02_local_net.ipynb", "markdown"))
    assert "](https://glance-lite.github.io/glance_lite/book/04_global_net_iad.html)" in text
    assert "[printed by a cell: `ch2_nn_good`]" in text


def test_an_exported_chapter_runs_as_on_colab(exported, tmp_path, monkeypatch, capsys):
    """Chapter 3 exported, every code cell run in order the way Colab runs it: google.colab is
    importable, %pip is recorded instead of run, glue prints the values the prose points to."""
    transform = pytest.importorskip("IPython.core.inputtransformer2").TransformerManager()
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # Colab has no myst-nb
    monkeypatch.setenv("GLANCE_PROFILE", "smoke")
    monkeypatch.setenv("GLANCE_HOME", str(tmp_path / "drive"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)

    class FakeIPython:
        magics: list = []

        def run_line_magic(self, name, line):
            self.magics.append((name, line))
    ip = FakeIPython()
    ns: dict = {"get_ipython": lambda: ip, "__name__": "__main__"}
    chapter = exported / "book" / "03_partial_conv.ipynb"
    for i, code in enumerate(_cells(chapter, "code")):
        exec(compile(transform.transform_cell(code), f"{chapter.name} cell {i}", "exec"), ns)
    assert ("pip", "install -q git+https://github.com/glance-lite/glance_lite") in ip.magics
    printed = capsys.readouterr().out
    glued = re.findall(r"\[printed by a cell: `(\w+)`\]", "\n".join(_cells(chapter, "markdown")))
    assert glued and all(f"{key} = " in printed for key in glued)
