"""Copy the repository URL from _config.yml (the one place it is written) into the Colab
install line of every chapter: `%pip install -q git+<url>`.

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


def repo_url(root: Path = ROOT) -> str:
    return yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]


def install_urls(nb) -> list[str]:
    return [m.group(2) for c in nb.cells if c.cell_type == "code" for m in PATTERN.finditer(c.source)]


def main(argv: list[str]) -> int:
    url, bad = repo_url(), []
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        found = install_urls(nb)
        if found != [url] * len(found) or not found:
            bad.append(f"{path.name}: {found or 'no install line'}")
            if "--check" not in argv and found:
                for c in nb.cells:
                    if c.cell_type == "code":
                        c.source = PATTERN.sub(lambda m: m.group(1) + url, c.source)
                nbformat.write(nb, path)
    if bad:
        print(("disagree with" if "--check" in argv else "updated to") + f" {url}:\n  " + "\n  ".join(bad))
    return 1 if bad and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
