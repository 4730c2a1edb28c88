"""Retrain only Global-Net + the DAD head on an existing run's Local-Net, then evaluate.

    python benchmarks/global_phase.py SRC_RUN DST_RUN --data data/synthetic-cpu --category fabric \
        [--seed 1] [--set train_steps=3000 hard_holes_gamma=0.5 ...]

SRC_RUN holds local.pt (e.g. runs/accuracy/cpu-coords/fabric/seed1/glance_run). DST_RUN is
emptied, gets a copy of local.pt and trains the Global-Net phase of the `cpu` profile with the
--set overrides (Profile fields). With the same --seed as SRC_RUN's and no overrides it repeats
SRC_RUN's Global-Net phase exactly (the fabric seed-1 benchmark run: PRO 0.645, R^2 0.430 both times).
Prints the Global-Net phase's seconds and one JSON line: PRO, PRO per defect, the context diagnostic.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from glance_lite.evaluate import evaluate
from glance_lite.profiles import get_profile, parse_overrides
from glance_lite.train import train


def overrides(items: list[str]) -> dict:
    """`profiles.parse_overrides`, ending the script with its one-line error."""
    try:
        return parse_overrides(items)
    except ValueError as e:
        raise SystemExit(f"--set {e}") from None


def run_parser(description: str) -> argparse.ArgumentParser:
    """The arguments this script shares with rescore.py: SRC_RUN DST_RUN --data --category."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--data", required=True, type=Path, help="dataset root (MVTec layout)")
    ap.add_argument("--category", required=True)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = run_parser(__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="Profile overrides")
    args = ap.parse_args(argv)
    if not (args.src / "local.pt").is_file():
        raise SystemExit(f"{args.src / 'local.pt'} not found: SRC_RUN must be a run folder with a trained Local-Net")
    if args.dst.resolve() == args.src.resolve():
        raise SystemExit("DST_RUN must differ from SRC_RUN (it is emptied first)")
    if args.dst.exists() and any(args.dst.iterdir()) and not (args.dst / "local.pt").is_file():
        raise SystemExit(f"{args.dst} is not empty and is not a run folder (no local.pt): "
                         "pick a new or an earlier DST_RUN; it is emptied first")
    try:
        prof = get_profile(args.profile, **overrides(args.set))
    except ValueError as e:  # a value out of range (the name and format were checked above)
        raise SystemExit(f"--set: {e}") from None
    shutil.rmtree(args.dst, ignore_errors=True)
    args.dst.mkdir(parents=True)
    shutil.copy(args.src / "local.pt", args.dst / "local.pt")
    t = time.perf_counter()
    train(args.dst, args.data, args.category, prof, teacher="random", seed=args.seed, resume=True, progress=False)
    print(f"Global-Net phase {time.perf_counter() - t:.0f} s", flush=True)
    ev = evaluate(args.dst, args.data, args.category, args.dst / "eval", figure=False)
    print(json.dumps({"pro": round(ev["pro"], 3), **{k: round(v["pro"], 3) for k, v in ev["per_defect"].items()},
                      **{k: round(v, 3) for k, v in ev.get("context", {}).items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
