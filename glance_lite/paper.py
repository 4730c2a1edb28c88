"""The numbers the paper publishes (Tab. 1-4, supp. Tab. 4), for the book's side-by-side tables
(chapters 7 and 9). They live in paper_tables.json, copied from the paper and its supplementary;
tests/test_metrics.py checks every table's "Mean" row against the mean of its categories.

All of them were measured with the ImageNet teacher and the full schedule, on MVTec AD (Tab. 3:
one-class CIFAR-10). "Ours"
in them is the paper's method, not a run of this package.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

TEXTURES = ("Carpet", "Grid", "Leather", "Tile", "Wood")


@lru_cache(maxsize=1)
def paper_tables() -> dict:
    """{"tab1" | "tab2" | "tab3" | "tab4" | "supp_tab4": {"title", "columns", "rows": {row: [values]}}}."""
    return json.loads((Path(__file__).parent / "paper_tables.json").read_text())


def fmt(v: float | None, missing: str = "–") -> str:
    """A metric for a Markdown table: three decimals, `missing` for None."""
    return missing if v is None else f"{v:.3f}"


def side_by_side(table: str, ours: dict[str, float | None], ours_label: str,
                 columns: tuple[str, ...] = ("TS", "Ours")) -> str:
    """A Markdown table: the paper's `columns` of `table` per MVTec AD category (only the
    "Mean" row for the categories, to stay short) and our value per dataset in `ours`
    ({dataset: value}) in one column headed `ours_label`."""
    tab = paper_tables()[table]
    idx = [tab["columns"].index(c) for c in columns if c in tab["columns"]]
    names = [tab["columns"][i] + " (paper)" if tab["columns"][i] != "Ours" else "Glance (paper)" for i in idx]
    head = "| data | " + " | ".join(names + [ours_label]) + " |\n|" + "---|" * (len(names) + 2) + "\n"
    rows = ""
    for kind, cats in (("textures", TEXTURES), ("objects", None)):
        sel = [c for c in tab["rows"] if c != "Mean" and ((c in cats) if cats else c not in TEXTURES)]
        means = [sum(tab["rows"][c][i] for c in sel) / len(sel) for i in idx]
        rows += f"| MVTec AD, mean of {len(sel)} {kind} | " + " | ".join(fmt(m) for m in means) + " | – |\n"
    rows += "| MVTec AD, all (paper's Mean row) | " + " | ".join(fmt(tab["rows"]["Mean"][i]) for i in idx) + " | – |\n"
    for name, v in ours.items():
        rows += f"| **{name}** | " + " | ".join("–" for _ in idx) + f" | **{fmt(v)}** |\n"
    return f"**{tab['title']}**\n\n" + head + rows
