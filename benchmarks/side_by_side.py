"""Two accuracy tables side by side: Glance of one recipe against another, same datasets and seeds.

    python benchmarks/side_by_side.py benchmarks/results/accuracy-cpu-coords.json \\
        benchmarks/results/accuracy-cpu-coords-hard_holes_gamma-0.0-mismatch_negatives-0.0.json

Both files come from `benchmarks/accuracy.py` (the second typically from a `--set` variant, e.g.
one of our deviations turned off). For every (dataset, seed) finished in both it prints one row:
Glance's PRO, logical and structural PRO, Global-Net's R^2, the DAD head's final loss, PRO with
s_IAD alone (lambda_s = 1) and the seconds, each as "A / B", next to local-only's PRO (the same
Local-Net in both when the variant changes only the Global-Net phase). Markdown on stdout.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

COLUMNS = [("PRO", ("pro",)), ("PRO logic", ("per_kind", "logical", "pro")),
           ("PRO struct", ("per_kind", "structural", "pro")), ("R² Global-Net", ("r2_global",)),
           ("DAD loss", ("dad_loss",)), ("PRO λs=1", ("pro_iad_only",)), ("s", ("seconds",))]


def get(d: dict, path: tuple) -> float | None:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return None if d is None or (isinstance(d, float) and math.isnan(d)) else d


def fmt(v: float | None, key: str) -> str:
    return "–" if v is None else (f"{v:.0f}" if key == "s" else f"{v:.3f}")


def table(a: dict, b: dict, name_a: str = "A", name_b: str = "B") -> str:
    """Markdown rows "A / B" for every (dataset, seed) present in both result dicts."""
    lines = [f"Each cell: {name_a} / {name_b}.", "",
             "| dataset | seed | local-only PRO | " + " | ".join(c for c, _ in COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(COLUMNS)]
    for ds in a:
        for seed in a[ds]:
            if seed not in b.get(ds, {}):
                continue
            ga, gb = a[ds][seed]["glance"], b[ds][seed]["glance"]
            local = fmt(get(a[ds][seed], ("local_only", "pro")), "pro")
            cells = [f"{fmt(get(ga, p), c)} / {fmt(get(gb, p), c)}" for c, p in COLUMNS]
            lines.append(f"| {ds} | {seed} | {local} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="accuracy-<tag>.json (left of each cell)")
    ap.add_argument("b", type=Path, help="accuracy-<tag>.json (right of each cell)")
    args = ap.parse_args(argv)
    results = []
    for path in (args.a, args.b):
        try:
            results.append(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            raise SystemExit(f"side_by_side.py: cannot read {path} ({e}); pass a benchmarks/results/accuracy-*.json")
    print(table(*results, args.a.stem.removeprefix("accuracy-"), args.b.stem.removeprefix("accuracy-")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
