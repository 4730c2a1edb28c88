"""One deviation at a time on an existing run: retrain its Global-Net phase, or re-fit its scoring.

    python benchmarks/ablation.py retrain SRC_RUN DST_RUN --data data/synthetic --category fabric \
        [--seed 1] [--set context_stain_grey=False hard_holes_gamma=0 ...]
    python benchmarks/ablation.py rescore SRC_RUN DST_RUN --data data/synthetic --category fabric \
        --set calibrate_dad=False [--amp bf16]

retrain: DST_RUN is emptied, gets SRC_RUN's local.pt (the same Local-Net) and trains the Global-Net
phase of the profile (default cpu) with the --set overrides. With SRC_RUN's seed and no override it
repeats SRC_RUN's Global-Net phase exactly. rescore: DST_RUN gets SRC_RUN's trained networks with the
run's profile plus the --set overrides of the scoring fields, the whitener and residual bank fitted
again (`context_train.fit_residual_model`, as `train` does after its last step); no network is
trained. Both evaluate DST_RUN (DST_RUN/eval) and print the seconds and one JSON line: PRO, PRO per
defect type and, after retrain, the context diagnostic. SRC_RUN is e.g.
runs/accuracy/cpu-centred/fabric/seed1/glance_run (benchmarks/accuracy.py).
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from glance_lite.context_train import fit_residual_model
from glance_lite.data import load_mvtec
from glance_lite.devices import AMP_CHOICES, amp_dtype_for
from glance_lite.evaluation import evaluate
from glance_lite.model import load_model, save_model
from glance_lite.profiles import get_profile, parse_overrides
from glance_lite.training import train

SCORING = ("whiten_iad", "nearest_iad", "calibrate_dad", "position_image_score", "lambda_s", "grid_per_side", "idw_power", "score_chunk")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["retrain", "rescore"])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--data", required=True, type=Path, help="dataset root (MVTec layout)")
    ap.add_argument("--category", required=True)
    ap.add_argument("--profile", default="cpu", help="retrain: the run profile (default cpu)")
    ap.add_argument("--seed", type=int, default=0, help="retrain: the seed (SRC_RUN's repeats it)")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="Profile overrides")
    ap.add_argument("--amp", choices=AMP_CHOICES, default="auto",
                    help="rescore: autocast of the feature passes, bank fit included (devices.py)")
    return ap


def retrain(args, changes: dict) -> dict:
    """DST_RUN = SRC_RUN's Local-Net + a Global-Net phase trained with `changes` -> evaluate's metrics."""
    if not (args.src / "local.pt").is_file():
        raise SystemExit(f"{args.src / 'local.pt'} not found: SRC_RUN must be a run folder with a trained Local-Net")
    if args.dst.exists() and any(args.dst.iterdir()) and not (args.dst / "local.pt").is_file():
        raise SystemExit(f"{args.dst} is not empty and is not a run folder (no local.pt): "
                         "pick a new or an earlier DST_RUN; it is emptied first")
    prof = get_profile(args.profile, **changes)
    shutil.rmtree(args.dst, ignore_errors=True)
    args.dst.mkdir(parents=True)
    shutil.copy(args.src / "local.pt", args.dst / "local.pt")
    t = time.perf_counter()
    train(args.data, args.category, args.dst, profile=prof, teacher="random", seed=args.seed, resume=True,
          progress=False)
    print(f"Global-Net phase {time.perf_counter() - t:.0f} s", flush=True)
    return evaluate(args.dst, args.data, args.category, figure=False)


def rescore(args, changes: dict) -> dict:
    """DST_RUN = SRC_RUN's networks, scoring options `changes`, residual model fitted again -> metrics."""
    if not (args.src / "glance.pt").is_file():
        raise SystemExit(f"{args.src / 'glance.pt'} not found: SRC_RUN must be a finished run")
    training = sorted(set(changes) - set(SCORING))
    if training:
        raise SystemExit(f"--set {', '.join(training)}: not a scoring field (use one of {', '.join(SCORING)}; "
                         "`ablation.py retrain` for the others)")
    model = load_model(args.src)
    prof = get_profile(model.profile, **changes)
    dev, t = prof.deviations, time.perf_counter()
    model.profile = prof
    fit_residual_model(model, load_mvtec(args.data, args.category, "train").images, model.grid,
                       whiten=dev.whiten_iad, bank=dev.nearest_iad, chunk=prof.score_chunk, dad=dev.calibrate_dad,
                       amp_dtype=amp_dtype_for(torch.device("cpu"), args.amp),
                       position_norm=dev.position_image_score)
    print(f"re-fitted in {time.perf_counter() - t:.0f} s", flush=True)
    args.dst.mkdir(parents=True, exist_ok=True)
    save_model(args.dst / "glance.pt", model, {**model.config, "profile": prof.to_dict()})
    return evaluate(args.dst, args.data, args.category, figure=False, device="cpu", amp=args.amp)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.dst.resolve() == args.src.resolve():
        raise SystemExit("DST_RUN must differ from SRC_RUN (it is rewritten)")
    try:
        changes = parse_overrides(args.set)
        ev = (retrain if args.mode == "retrain" else rescore)(args, changes)
    except ValueError as e:  # a malformed --set, or a combination get_profile refuses
        raise SystemExit(f"--set: {e}") from None
    print(f"{ev['seconds_per_image']:.3f} s per test image, amp {ev['amp']}")
    print(json.dumps({"pro": round(ev["pro"], 4), **{k: round(v["pro"], 3) for k, v in ev["per_defect"].items()},
                      **{k: round(v, 3) for k, v in ev.get("context", {}).items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
