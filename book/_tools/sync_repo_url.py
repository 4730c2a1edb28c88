"""Copy the repository URL from _config.yml (the one place it is written) into the chapters:
the Colab install line of every chapter, `%pip install -q git+<url>`, and every link to the
page of deviations from the paper, `<url>/blob/<branch>/docs/deviations.md#...`.

    python book/_tools/sync_repo_url.py          # rewrite the notebooks
    python book/_tools/sync_repo_url.py --check  # exit 1 if a notebook disagrees (used by tests)
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
PATTERN = re.compile(r"(%pip install -q git\+)(\S+)")
DEVIATIONS = re.compile(r"(https?://[^\s()<>\[\]]+?)(/blob/[^/\s()]+/docs/deviations\.md)")


def repo_url(root: Path = ROOT) -> str:
    return yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]


def install_urls(nb) -> list[str]:
    return [m.group(2) for c in nb.cells if c.cell_type == "code" for m in PATTERN.finditer(c.source)]


def deviation_urls(nb) -> list[str]:
    """The repository URL of every link to docs/deviations.md in the chapter's Markdown cells."""
    return [m.group(1) for c in nb.cells if c.cell_type == "markdown" for m in DEVIATIONS.finditer(c.source)]


def main(argv: list[str]) -> int:
    url, bad = repo_url(), []
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        found, links = install_urls(nb), deviation_urls(nb)
        wrong_links = sorted({u for u in links if u != url})
        if found != [url] * len(found) or not found or wrong_links:
            bad.append(f"{path.name}: {found or 'no install line'}"
                       + (f", deviations links to {wrong_links}" if wrong_links else ""))
            if "--check" not in argv and (found or wrong_links):
                for c in nb.cells:
                    if c.cell_type == "code":
                        c.source = PATTERN.sub(lambda m: m.group(1) + url, c.source)
                    elif c.cell_type == "markdown":
                        c.source = DEVIATIONS.sub(lambda m: url + m.group(2), c.source)
                nbformat.write(nb, path)
    if bad:
        print(("disagree with" if "--check" in argv else "updated to") + f" {url}:\n  " + "\n  ".join(bad))
    return 1 if bad and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
