"""Does the compactness loss (Eq. 2, its weight lambda_c in Eq. 3) help Local-Net?

    python benchmarks/compactness.py                       # circuit, lambda_c = 0, 1, 10
    python benchmarks/compactness.py --category cable --lambdas 0 1

For each lambda_c, Local-Net alone is distilled and fine-tuned with the profile's schedule
(`train(..., until="finetune")`, the untrained teacher offline) and scored by the local-only
baseline (nearest training patch in Local-Net's feature space), so the figure isolates what the
loss does to Local-Net's features. Prints, per lambda_c: the final l_k and l_c (mean of the last
20 logged steps), the RMS off-diagonal correlation of the features of four test images, the
local-only PRO (all / structural / logical) and the training time. One training at a time.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch

from glance_lite.baselines.local_only import LocalOnly, load_local_net
from glance_lite.data import load_mvtec, make_synthetic
from glance_lite.evaluate import metrics_for
from glance_lite.explorer import read_log
from glance_lite.losses import compactness_loss
from glance_lite.patches import PatchGrid
from glance_lite.profiles import get_profile
from glance_lite.scoring import PatchScores
from glance_lite.train import train

ROOT = Path(__file__).resolve().parents[1]


def rms_correlation(z: torch.Tensor) -> float:
    """RMS of the off-diagonal correlations between the columns of `(M, n)` features: the square
    root of our l_c (losses.compactness_loss is their mean square)."""
    return compactness_loss(z).sqrt().item()


def one(category: str, lambda_c: float, profile: str, data_root: Path, out: Path, seed: int) -> dict:
    prof = get_profile(profile, lambda_c=lambda_c)
    run = out / f"{category}-lc{lambda_c:g}-seed{seed}"
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    train(run, data_root, category, prof, teacher="random", seed=seed, progress=False, until="finetune")
    seconds = time.perf_counter() - t0
    last = read_log(run)["finetune"]
    train_split, test = load_mvtec(data_root, category, "train"), load_mvtec(data_root, category, "test")
    grid = PatchGrid(per_side=prof.grid_per_side)
    local = LocalOnly(load_local_net(run / "local.pt"), grid).fit(train_split.images)
    s = local.patch_scores(test.images)
    m = metrics_for(PatchScores(s, torch.zeros_like(s), grid), test, 1.0)
    return {"category": category, "lambda_c": lambda_c, "seed": seed,
            "l_k": round(float(last["l_k"][-20:].mean()), 3),
            "l_c": round(float(last["l_c"][-20:].mean()), 3),
            "rms_correlation": round(rms_correlation(local.embed(test.images[:4]).flatten(0, 1)), 3),
            "local_only_pro": round(m["pro"], 3),
            **{f"pro_{k}": round(v["pro"], 3) for k, v in m["per_kind"].items()},
            "seconds": round(seconds)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--category", default="circuit")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 1.0, 10.0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "compactness")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "synthetic")
    args = ap.parse_args(argv)
    prof = get_profile(args.profile)
    data_root = args.data
    make_synthetic(data_root, seed=0, categories=[args.category], **dict(prof.synthetic))
    print("| lambda_c | l_k | l_c | RMS corr | local-only PRO | structural | logical | s |")
    print("|---|---|---|---|---|---|---|---|")
    for lc in args.lambdas:
        r = one(args.category, lc, args.profile, data_root, args.out, args.seed)
        print(f"| {lc:g} | {r['l_k']} | {r['l_c']} | {r['rms_correlation']} | {r['local_only_pro']} | "
              f"{r.get('pro_structural', '–')} | {r.get('pro_logical', '–')} | {r['seconds']} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
