"""Export every chapter of the book to a plain notebook for Colab (no MyST left in it).

    python book/_tools/colab_export.py OUTDIR      # OUTDIR/book/<chapter>.ipynb, in _toc.yml's order

Colab renders Markdown itself: MyST roles and directives would show as literal text there, and
glue does nothing outside myst-nb. The published book's Colab button therefore opens these
exports (the book workflow pushes OUTDIR to the `colab` branch, `repository.branch` in
_config.yml points the button there). What changes, in Markdown cells only:

    {glue:text}`key:.3f`          -> "[printed by a cell: key]" (glue prints `key = value` outside myst-nb)
    {cite:p}`a,b` / {cite:t}`a`   -> "(Author et al., 2021; ...)" / "Author et al. (2021)", and a
                                     References cell at the end of the chapter
    {doc}`text <07_evaluation>`   -> a link to that page of the published book
    {ref}`label`                  -> a link to the page and anchor where the label is defined
    ```{exercise} 2.3 ...```      -> a heading "Exercise 2.3"
    ```{solution} ex-2-3 ...```   -> a collapsed <details> block
    {solution-start} / -end       -> a "Solution to Exercise 2.3" heading (Colab folds the cells under
                                     a heading) and an end line
    ```{admonition} Title ...```  -> a block quote with the title in bold
    (label)=                      -> an HTML anchor
Code cells are copied as they are, without outputs.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml
from pybtex.database import parse_file

ROOT = Path(__file__).resolve().parents[2]
ROLE = re.compile(r"\{(glue:text|glue:any|glue|cite:p|cite:t|cite|doc|ref)\}`([^`]*)`")
FENCE = re.compile(r"^(`{3,}|:{3,})\{([\w-]+)\}[ \t]*(.*)$")
LABEL = re.compile(r"^\((?P<label>[\w-]+)\)=\s*$", re.M)


def book_settings() -> tuple[list[str], str]:
    """(the chapters' paths in _toc.yml order, e.g. "book/02_local_net", the published book's URL)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")
    owner, name = url.split("/")[-2:]
    return pages, f"https://{owner}.github.io/{name}/"


def bibliography() -> dict[str, dict]:
    """{key: {"cite": "Wang et al.", "year": "2021", "entry": "one line of the reference list"}}."""
    out = {}
    for key, e in parse_file(str(ROOT / "book" / "references.bib")).entries.items():
        last = [" ".join(p.last_names) for p in e.persons.get("author", [])]
        who = (last[0] if len(last) == 1 else " and ".join(last) if len(last) == 2
               else f"{last[0]} et al." if last else e.fields.get("title", key))
        year = e.fields.get("year", "n.d.")
        venue = e.fields.get("booktitle") or e.fields.get("journal") or e.fields.get("howpublished", "")
        entry = f"{', '.join(last) or who} ({year}). {e.fields.get('title', '')}." + (f" {venue}." if venue else "")
        out[key] = {"cite": who, "year": year, "entry": entry.replace("{", "").replace("}", "")}
    return out


def chapter_number(page: str) -> str:
    """'book/02_local_net' -> '2', 'book/appendix_a_paper_schedule' -> 'A', other pages -> ''."""
    stem = Path(page).name
    if re.match(r"\d\d_", stem):
        return str(int(stem[:2]))
    return stem.split("_")[1].upper() if stem.startswith("appendix_") else ""


class Exporter:
    """The state one export needs: pages, labels (page, anchor) and the bibliography."""

    def __init__(self, pages: list[str], base_url: str, notebooks: dict[str, dict]):
        self.pages, self.base, self.bib = pages, base_url, bibliography()
        self.labels: dict[str, tuple[str, str]] = {}  # label -> (page, what a link to it says)
        for page, nb in notebooks.items():
            for cell in nb["cells"]:
                src = "".join(cell["source"])
                for m in LABEL.finditer(src):
                    self.labels[m["label"]] = (page, m["label"])
                for m in re.finditer(r"```\{exercise\}\s*(\S*)\n:label:\s*([\w-]+)", src):
                    self.labels[m[2]] = (page, f"Exercise {m[1]}")
        self.cited: list[str] = []

    def page_url(self, page: str, anchor: str = "") -> str:
        return f"{self.base}{page}.html" + (f"#{anchor}" if anchor else "")

    def role(self, m: re.Match, page: str) -> str:
        """One MyST role -> plain Markdown."""
        name, text = m[1], m[2]
        if name.startswith("glue"):
            return f"[printed by a cell: `{text.split(':')[0]}`]"
        if name.startswith("cite"):
            keys = [k.strip() for k in text.split(",")]
            self.cited += [k for k in keys if k not in self.cited]
            refs = [self.bib.get(k, {"cite": k, "year": "?"}) for k in keys]
            if name == "cite:t":
                return "; ".join(f"{r['cite']} ({r['year']})" for r in refs)
            return "(" + "; ".join(f"{r['cite']}, {r['year']}" for r in refs) + ")"
        label, target = (re.match(r"(.*?)\s*<(.+)>$", text).groups() if "<" in text else (None, text))
        if name == "doc":
            target_page = str((Path(page).parent / target)) if not target.startswith("/") else target.lstrip("/")
            return f"[{label or Path(target).name}]({self.page_url(target_page)})"
        where, title = self.labels.get(target, (page, target))
        return f"[{label or title}]({self.page_url(where, target)})"

    def directive(self, name: str, arg: str, options: dict, body: str, page: str) -> str:
        """One MyST directive -> plain Markdown (its body converted first)."""
        body = self.markdown(body, page)
        if name == "exercise":
            return f"#### Exercise {arg}\n\n{body}"
        title = self.labels.get(arg, (page, arg))[1]
        if name == "solution":
            return f"<details>\n<summary>Solution to {title}</summary>\n\n{body}\n\n</details>"
        if name == "solution-start":
            return f"#### Solution to {title}\n\n(The cells below, up to the end of the solution.)\n\n{body}"
        if name == "solution-end":
            return "*(End of the solution.)*"
        if name == "nb-exec-table":
            return ""
        quoted = "\n".join("> " + line if line else ">" for line in body.splitlines())
        return f"> **{arg or name.capitalize()}**\n>\n{quoted}"

    def markdown(self, text: str, page: str) -> str:
        """A Markdown cell's source -> plain Markdown: directives, then roles, then labels."""
        out, lines, i = [], text.splitlines(), 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                out.append(lines[i])
                i += 1
                continue
            fence, name, arg = m.groups()
            j = i + 1
            while j < len(lines) and lines[j].strip() != fence:
                j += 1
            body = lines[i + 1:j]
            options = {}
            while body and re.match(r"^:[\w-]+:", body[0]):
                key, _, value = body.pop(0)[1:].partition(":")
                options[key] = value.strip()
            out.append(self.directive(name, arg.strip(), options, "\n".join(body), page))
            i = j + 1
        text = ROLE.sub(lambda r: self.role(r, page), "\n".join(out))
        return LABEL.sub(lambda r: f'<a id="{r["label"]}"></a>', text)

    def references(self) -> str:
        return "## References\n\n" + "\n".join(f"* {self.bib[k]['entry']}" for k in self.cited if k in self.bib)


def export(out_dir: Path) -> list[Path]:
    """Write OUT/<page>.ipynb for every page of the book -> the paths written."""
    pages, base = book_settings()
    notebooks = {p: json.loads((ROOT / f"{p}.ipynb").read_text()) for p in pages if (ROOT / f"{p}.ipynb").is_file()}
    exporter, written = Exporter(pages, base, notebooks), []
    for page, nb in notebooks.items():
        exporter.cited = []
        cells = []
        for cell in nb["cells"]:
            src = "".join(cell["source"])
            if cell["cell_type"] == "markdown":
                cells.append({"cell_type": "markdown", "metadata": {},
                              "source": exporter.markdown(src, page).splitlines(keepends=True)})
            else:
                cells.append({**cell, "outputs": [], "execution_count": None} if cell["cell_type"] == "code"
                             else cell)
        if exporter.cited:
            cells.append({"cell_type": "markdown", "metadata": {}, "source": exporter.references()})
        plain = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                             "name": "python3"},
                                              "colab": {"provenance": []}, "accelerator": "GPU"},
                 "nbformat": 4, "nbformat_minor": 5}
        path = out_dir / f"{page}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(plain, indent=1, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path, help="folder for the plain notebooks (e.g. _colab)")
    args = ap.parse_args(argv)
    for path in export(args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
