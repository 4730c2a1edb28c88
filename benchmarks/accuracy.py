"""Accuracy benchmark: Glance and its peers on the synthetic categories and the real development sets.

    python benchmarks/accuracy.py                          # cpu profile, seed 0, all datasets
    python benchmarks/accuracy.py --seeds 0 1 --datasets circuit cable
    python benchmarks/accuracy.py --recipe paper --datasets circuit  # the paper's Global-Net recipe
    python benchmarks/accuracy.py --collect                # one table of every finished run
    python benchmarks/accuracy.py --set hard_holes_gamma=0 mismatch_negatives=0  # a variant (two deviations off): own runs and table

For every dataset and seed it runs `glance_lite.baselines.compare` (Glance trained and evaluated
with the profile, then local-only, NNS, Gaussian and AMC on the same data, seed and metrics) and
prints one table: PRO, pixel / image AUROC, PRO on structural / logical defects, and for Glance
the context diagnostic (R^2 of Global-Net and of the per-position mean on normal test patches,
diagnostics.py), the DAD head's final loss (mean of the last 50 steps; ln 2 = 0.693 is chance),
how well s_DAD alone ranks stained above real patches of normal test images (AUROC),
Glance's PRO with s_IAD alone (lambda_s = 1: what the DAD head adds or costs)
and the seconds of training + evaluation. The table and the raw numbers go to
benchmarks/results/accuracy-<profile>-<arch>.{md,json} (with --set, accuracy-<profile>-<arch>-<field>-<value>...);
with a record of the run beside them (accuracy-<tag>.meta.json: date, commit, machine, torch);
benchmarks/tables.py turns them into the tables of the READMEs.

Datasets: the synthetic categories (generated into --data at the profile's size) and, when the
folder --real exists (../shared/data/real in this project's workspace, not shipped), every
category in it. Finished comparisons are reused (delete --out or pass --overwrite to redo them).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from glance_lite.baselines.compare import METHODS, compare
from glance_lite.data import SYNTHETIC_CATEGORIES, list_categories, load_mvtec, make_synthetic
from glance_lite.evaluation import load_scores, metrics_for
from glance_lite.global_net import ARCHS
from glance_lite.profiles import PAPER, get_profile, parse_overrides

# the paper's Global-Net recipe (no deviation) in the cpu profile's budget: one hole per image is
# slower per step, so fewer, larger steps
PAPER_RECIPE = dict(deviations=PAPER, train_steps=600, train_batch=16, lr_global=5e-4)
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REAL = ROOT.parent / "shared" / "data" / "real"


def dad_final_loss(run_dir: Path, last: int = 50) -> float | None:
    """Mean l_DAD of the last `last` Global-Net steps in RUN/log.jsonl."""
    log = run_dir / "log.jsonl"
    if not log.exists():
        return None
    vals = [json.loads(ln)["l_dad"] for ln in log.read_text().splitlines() if '"train"' in ln]
    return sum(vals[-last:]) / len(vals[-last:]) if vals else None


def run_one(data_root: Path, category: str, out: Path, prof, teacher: str, seed: int, overwrite: bool,
            max_bank_gb: float = 8.0) -> dict:
    """compare() for one dataset and seed (reused when finished) -> {method: metrics} + Glance extras."""
    if overwrite or not (out / "comparison.json").exists():
        compare(data_root, category, out, profile=prof, teacher=teacher, seed=seed, overwrite=True,
                progress=False, max_bank_gb=max_bank_gb)
    rows = json.loads((out / "comparison.json").read_text())
    ev = json.loads((out / "glance_eval" / "metrics.json").read_text())
    settings = json.loads((out / "comparison_settings.json").read_text())
    rows["glance"].update(ev.get("context", {}))
    rows["glance"]["dad_loss"] = dad_final_loss(out / "glance_run")
    rows["glance"]["seconds"] = settings["fit_seconds"]["glance_train"] + ev["seconds_per_image"] * ev["n_images"]
    scores, _ = load_scores(out / "glance_eval")  # Glance with s_IAD alone (lambda_s = 1, no DAD)
    rows["glance"]["pro_iad_only"] = metrics_for(scores, load_mvtec(data_root, category, "test"), 1.0)["pro"]
    return rows


def run_record(prof, teacher: str) -> dict:
    """When, where and with what a benchmark ran: the results' provenance (nowhere else)."""
    import datetime
    import platform
    import subprocess
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    cpu = Path("/proc/cpuinfo")
    model = next((ln.split(":", 1)[1].strip() for ln in (cpu.read_text().splitlines() if cpu.exists() else [])
                  if ln.startswith("model name")), platform.processor() or platform.machine())
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": (commit.stdout.strip() + ("+changes" if dirty else "")) or None, "machine": model,
            "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "profile": prof.to_dict(), "teacher": teacher}


def fmt(v, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def table(results: dict) -> str:
    """{dataset: {seed: {method: row}}} -> a Markdown table (one line per dataset, method and seed)."""
    head = ("| dataset | method | seed | PRO | pixel AUROC | image AUROC | PRO struct | PRO logic "
            "| R² Global-Net | R² position mean | DAD loss | DAD AUROC stains | PRO λs=1 | s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for ds, seeds in results.items():
        for method in METHODS:
            for seed, rows in seeds.items():
                m = rows[method]
                k = m.get("per_kind", {})
                lines.append(f"| {ds} | {method} | {seed} | {fmt(m['pro'])} | {fmt(m['pixel_auroc'])} "
                             f"| {fmt(m['image_auroc'])} | {fmt(k.get('structural', {}).get('pro'))} "
                             f"| {fmt(k.get('logical', {}).get('pro'))} | {fmt(m.get('r2_global'))} "
                             f"| {fmt(m.get('r2_position_mean'))} | {fmt(m.get('dad_loss'))} "
                             f"| {fmt(m.get('dad_auroc_stains'))} | {fmt(m.get('pro_iad_only'))} "
                             f"| {fmt(m.get('seconds'), 0)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="cpu", help="run profile (default cpu)")
    ap.add_argument("--arch", choices=list(ARCHS), default=None,
                    help="Global-Net architecture (default: the profile's)")
    ap.add_argument("--recipe", choices=["profile", "paper"], default="profile",
                    help="paper: the paper's Global-Net training in the profile's budget (Tab. 2, raw "
                         "targets, one hole per image, plain Eq. 11, constant learning rates: the "
                         "cpu profile before our deviations); default: the profile as it is")
    ap.add_argument("--teacher", default="random", help="teacher (default random: offline)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (default 0)")
    ap.add_argument("--datasets", nargs="+", default=None,
                    help="subset of the synthetic categories and real category names (default: all)")
    ap.add_argument("--data", default=str(ROOT / "data" / "synthetic"), help="synthetic data folder")
    ap.add_argument("--real", default=str(DEFAULT_REAL), help="folder of real sets in MVTec layout")
    ap.add_argument("--out", default=str(ROOT / "runs" / "accuracy"), help="runs folder")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"),
                    help="where the tables and their record go (default benchmarks/results)")
    ap.add_argument("--overwrite", action="store_true", help="recompute finished comparisons")
    ap.add_argument("--collect", action="store_true",
                    help="train nothing: tabulate every finished comparison under --out for this "
                         "profile and recipe (e.g. seed 1 run for some datasets only)")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="Profile overrides (a variant: its runs and table get their own tag)")
    ap.add_argument("--max-bank-gb", type=float, default=8.0,
                    help="memory limit of the baselines' banks in GiB (default 8: magnetic_tile's 300 "
                         "training images need about 3.2 GiB for the Gaussian)")
    args = ap.parse_args(argv)

    try:
        variant = parse_overrides(args.set)
    except ValueError as e:
        raise SystemExit(f"accuracy.py: --set {e}") from None
    overrides = {**(PAPER_RECIPE if args.recipe == "paper" else {}),
                 **({"global_arch": args.arch} if args.arch else {}), **variant}
    try:
        prof = get_profile(args.profile, **overrides)
    except ValueError as e:  # an unknown profile, or a --set value out of range
        raise SystemExit(f"accuracy.py: {e}") from None
    record = run_record(prof, args.teacher)  # at the start: the commit that ran
    real = Path(args.real)
    sets = {c: Path(args.data) for c in SYNTHETIC_CATEGORIES}
    if real.is_dir():
        sets.update({c: real for c in list_categories(real)})
    else:
        print(f"NOTE: no real development sets at {real}; synthetic categories only", file=sys.stderr)
    if args.datasets:
        unknown = [d for d in args.datasets if d not in sets]
        if unknown:
            raise SystemExit(f"accuracy.py: unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(sets)}")
        sets = {d: sets[d] for d in args.datasets}
    synth = [c for c, root in sets.items() if c in SYNTHETIC_CATEGORIES]
    if synth:
        make_synthetic(args.data, seed=0, categories=synth, **dict(prof.synthetic))

    tag = (f"{prof.name}-{prof.deviations.global_arch}" + ("-paper-recipe" if args.recipe == "paper" else "")
           + "".join(f"-{k}-{v}" for k, v in variant.items()))
    results: dict = {}
    if args.collect:  # every finished (dataset, seed) of this tag, in the usual dataset order
        done = {ds: sorted(int(p.parent.name[4:]) for p in (Path(args.out) / tag / ds).glob("seed*/comparison.json"))
                for ds in sets}
        for ds, seeds in done.items():
            for seed in seeds:
                results.setdefault(ds, {})[seed] = run_one(sets[ds], ds, Path(args.out) / tag / ds / f"seed{seed}",
                                                            prof, args.teacher, seed, False, args.max_bank_gb)
    for ds, root in ({} if args.collect else sets).items():
        for seed in args.seeds:
            t = time.perf_counter()
            out = Path(args.out) / tag / ds / f"seed{seed}"
            results.setdefault(ds, {})[seed] = run_one(root, ds, out, prof, args.teacher, seed, args.overwrite,
                                                        args.max_bank_gb)
            print(f"{ds} seed {seed}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    text = (f"Profile `{prof.name}`" + "".join(f", {k}={v}" for k, v in variant.items())
            + f", Global-Net `{prof.deviations.global_arch}`, teacher `{args.teacher}`, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads.\n\n" + table(results))
    print(text)
    res_dir = Path(args.results)
    res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir / f"accuracy-{tag}.md").write_text(text + "\n")
    (res_dir / f"accuracy-{tag}.json").write_text(json.dumps(results, indent=2))
    (res_dir / f"accuracy-{tag}.meta.json").write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
