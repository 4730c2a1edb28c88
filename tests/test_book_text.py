"""The book's text and table helpers (glance_lite.book_text): glue, Markdown tables."""
import sys

import numpy as np
import torch

from glance_lite import book_text
from glance_lite.book_text import api_table, glue, metrics_table


def test_metrics_table_rows_and_missing_values():
    m = {"Glance": {"pro": 0.9, "pixel_auroc": 0.95, "image_auroc": 0.8,
                    "per_kind": {"structural": {"pro": 0.91}, "logical": {"pro": 0.88}}},
         "local only": {"pro": 0.5, "pixel_auroc": 0.6, "image_auroc": None, "per_kind": {}}}
    lines = metrics_table(m, caption="cable").splitlines()
    assert lines[0] == "**cable**" and lines[2].startswith("| method | PRO |")
    assert lines[4] == "| Glance | 0.900 | 0.910 | 0.880 | 0.950 | 0.800 |"
    assert lines[5] == "| local only | 0.500 | n/a | n/a | 0.600 | n/a |"
    assert metrics_table(m).splitlines()[0].startswith("| method")


def test_api_table_lists_public_functions_and_unimportable_modules():
    lines = api_table(["glance_lite.book_text", "glance_lite.no_such_module"]).splitlines()
    assert lines[:2] == ["| module | name | what it does |", "|---|---|---|"]
    assert lines[2].startswith("| **`glance_lite.book_text`** | | Text and tables of the teaching book")
    assert any(line.startswith("| | `api_table` | A Markdown table of the package") for line in lines)
    assert not any("`_public_names`" in line for line in lines)
    assert lines[-1].startswith("| `glance_lite.no_such_module` | - | not available here")


def test_glue_turns_scalars_into_plain_numbers_and_works_without_myst_nb(monkeypatch, capsys):
    seen = []
    fake = type(sys)("myst_nb")
    fake.glue = lambda name, value, display=True: seen.append((name, value, display))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    assert glue("a", np.float64(0.25)) is None          # None: a glue call that ends a cell shows nothing
    glue("b", torch.tensor(3))
    assert seen == [("a", 0.25, False), ("b", 3, False)] and type(seen[0][1]) is float
    assert capsys.readouterr().out == ""                                # the build: the prose shows it
    monkeypatch.setitem(sys.modules, "myst_nb", None)                   # not installed (Colab): printed
    book_text.glue("c", "lower")
    book_text.glue("d", np.float64(0.123456))
    assert len(seen) == 2 and capsys.readouterr().out == "c = lower\nd = 0.1235\n"
