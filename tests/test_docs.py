"""The project's face: a short README whose links work, tables generated from the results files,
a licence and a citation, and no prose that dates a measurement or names a machine."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# prose (README, docs, book, package, benchmark scripts) never says when or where something was measured
DATED = re.compile(r"this VM|on this machine|same VM|(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* 20\d\d")


def _prose_files():
    yield ROOT / "README.md"
    yield ROOT / "CONTRIBUTING.md"
    yield from (ROOT / "docs").glob("*.md")
    yield from (ROOT / "book").glob("*.ipynb")
    yield from (ROOT / "glance_lite").rglob("*.py")
    yield from (ROOT / "benchmarks").glob("*.py")


def test_no_prose_dates_a_measurement_or_names_the_machine():
    hits = [f"{path.relative_to(ROOT)}:{n}: {line.strip()[:80]}" for path in _prose_files()
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if DATED.search(line)]
    assert not hits, "\n".join(hits)


def test_readme_is_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    links = re.findall(r"\]\((?!https?://)([^)#\s]+)(?:#([\w-]+))?\)", text)
    assert links
    for target, anchor in links:
        path = ROOT / target
        assert path.exists(), target
        if anchor:
            assert f'id="{anchor}"' in path.read_text(encoding="utf-8"), f"{target}#{anchor}"


def test_readme_shows_the_python_api_that_exists():
    import glance_lite as gl
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in re.findall(r"\bgl\.(\w+)\(", text):
        assert callable(getattr(gl, name)), name
    assert "model.anomaly_maps(" in text and hasattr(gl.Glance, "anomaly_maps")


def test_generated_tables_are_up_to_date():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tables.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_licence_and_citation():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert 'license = {text = "MIT"}' in (ROOT / "pyproject.toml").read_text()
    cff = (ROOT / "CITATION.cff").read_text()
    assert "cff-version: 1.2.0" in cff and "Glancing at the Patch" in cff


@pytest.mark.parametrize("doc", ["docs/deviations.md", "benchmarks/README.md", "CONTRIBUTING.md"])
def test_every_relative_link_of_the_documents_resolves(doc):
    path = ROOT / doc
    for target in re.findall(r"\]\((?!https?://|#)([^)#\s]+)", path.read_text(encoding="utf-8")):
        assert (path.parent / target).exists(), f"{doc}: {target}"
