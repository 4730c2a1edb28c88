"""Text and tables of the teaching book: numbers quoted by the prose, Markdown tables.

The figure helpers are in viz_book.py; this file holds what a chapter shows as text. `glue` hands a
number computed by a chapter to its prose (myst-nb), `metrics_table` and `api_table` return
Markdown strings, shown with `IPython.display.Markdown`.
"""
from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .paper import fmt


def fmt_na(v: float | None) -> str:
    """paper.fmt with 'n/a' for a metric a run does not have."""
    return fmt(v, "n/a")


def glue(name: str, value: Any) -> None:
    """Store a number or word computed by a chapter for its prose (myst-nb glue).

    A Markdown cell of the same page shows it with the glue:text role (the key, then a format such
    as .3f). Wraps `myst_nb.glue(name, value, display=False)`; numpy and 0-d torch scalars become
    Python numbers first (their text form must read back as a number). Without myst-nb (Colab, a
    plain Jupyter) it prints `name = value`: the Colab export of a chapter (book/_tools/
    colab_export.py) replaces the role by "[printed by a cell: name]". Returns None.
    """
    if isinstance(value, (torch.Tensor, np.generic)):
        value = value.item()
    try:
        from myst_nb import glue as _myst_glue
    except ImportError:
        print(f"{name} = {value:.4g}" if isinstance(value, float) else f"{name} = {value}")
        return
    _myst_glue(name, value, display=False)


def metrics_table(metrics: Mapping[str, Mapping[str, Any]], caption: str | None = None) -> str:
    """A Markdown table of localisation metrics, one row per method.

    Takes `metrics.evaluate_maps` results and shows PRO overall, for structural and for logical
    defects, pixel AUROC and image AUROC (n/a where missing).

    Serves ch. 10: Glance against local-only and MFFA-lite (paper Tab. 1-2 columns, Fig. 4).
    """
    rows = ["| method | PRO | PRO structural | PRO logical | pixel AUROC | image AUROC |",
            "|---|---|---|---|---|---|"]
    for name, m in metrics.items():
        kinds = m.get("per_kind", {})
        rows.append(f"| {name} | {fmt_na(m.get('pro'))} | {fmt_na(kinds.get('structural', {}).get('pro'))} | "
                    f"{fmt_na(kinds.get('logical', {}).get('pro'))} | {fmt_na(m.get('pixel_auroc'))} | "
                    f"{fmt_na(m.get('image_auroc'))} |")
    return (f"**{caption}**\n\n" if caption else "") + "\n".join(rows)


def _public_names(mod: Any) -> list[str]:
    if hasattr(mod, "__all__"):
        return list(mod.__all__)
    return [n for n, o in vars(mod).items() if not n.startswith("_") and (inspect.isfunction(o)
            or inspect.isclass(o)) and getattr(o, "__module__", "") == mod.__name__]


def _first_line(obj: Any) -> str:
    """The first sentence of a docstring's first paragraph (which may wrap over several lines)."""
    doc = (inspect.getdoc(obj) or "").strip()
    paragraph = " ".join(doc.split("\n\n")[0].split())
    # a sentence ends at ". " before a capital, not after an abbreviation (Eq. 7, e.g. , supp. Tab. 2)
    sentence = re.split(r"(?<!\bEq)(?<!\bTab)(?<!\bSec)(?<!\bsupp)(?<!\be\.g)(?<!\bi\.e)\.\s+(?=[A-Z`(])",
                        paragraph)[0].rstrip(".")
    return (sentence + "." if sentence else "").replace("|", "\\|")


def api_table(modules: Sequence[str]) -> str:
    """A Markdown table of the package's modules and their public names.

    For every module (a bold row) it lists the public functions and classes (`__all__`, or those
    defined in it) with the first line of their docstrings; a module that cannot be imported gets a
    row that says why.

    Serves appendix B (which function implements which paper section).
    """
    rows = ["| module | name | what it does |", "|---|---|---|"]
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except ImportError as err:
            rows.append(f"| `{name}` | - | not available here ({err}) |")
            continue
        rows.append(f"| **`{name}`** | | {_first_line(mod)} |")
        for n in _public_names(mod):
            obj = getattr(mod, n, None)
            if obj is None or isinstance(obj, (str, int, float, tuple, dict)):
                continue
            rows.append(f"| | `{n}` | {_first_line(obj)} |")
    return "\n".join(rows)
