"""Re-fit the scoring options of a finished run (Eq. 11 / 12 options, heads.py) and evaluate it.

    python benchmarks/rescore.py SRC_RUN DST_RUN --data data/synthetic --category fabric \
        --set calibrate_dad=True

SRC_RUN holds glance.pt (e.g. runs/accuracy/cpu-centred/fabric/seed1/glance_run). DST_RUN gets a
copy of its networks with the run's profile plus the --set overrides, the whitener and residual
bank fitted again from the training images under that profile (`context_train.fit_residual_model`,
as `train` does after its last step), and `evaluate`'s output in DST_RUN/eval. No network is
trained: Local-Net, Global-Net and the DAD head are SRC_RUN's. Prints the seconds and one JSON
line: PRO, PRO per defect type. Only the scoring fields make sense here (whiten_iad, nearest_iad,
calibrate_dad, lambda_s, grid_per_side); a training field is refused. --amp: the autocast of the
feature passes, bank fit included (devices.py; Local-Net stays float32, scoring.patch_features). Runs on
the CPU, like the benchmark it re-scores.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from glance_lite.context_train import fit_residual_model
from glance_lite.devices import AMP_CHOICES, amp_dtype_for
from glance_lite.data import load_mvtec
from glance_lite.evaluate import evaluate
from glance_lite.model import load_model, save_model
from glance_lite.patches import PatchGrid
from glance_lite.profiles import get_profile, profile_from_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from global_phase import overrides, run_parser  # noqa: E402  (the --set parsing and its one-line error)

SCORING = ("whiten_iad", "nearest_iad", "calibrate_dad", "lambda_s", "grid_per_side", "idw_power", "score_chunk")


def main(argv: list[str] | None = None) -> int:
    ap = run_parser(__doc__.splitlines()[0])
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="scoring overrides")
    ap.add_argument("--amp", choices=AMP_CHOICES, default="auto", help="autocast of the feature passes (devices.py)")
    args = ap.parse_args(argv)
    if not (args.src / "glance.pt").is_file():
        raise SystemExit(f"{args.src / 'glance.pt'} not found: SRC_RUN must be a finished run")
    if args.dst.resolve() == args.src.resolve():
        raise SystemExit("DST_RUN must differ from SRC_RUN (its glance.pt is rewritten)")
    changes = overrides(args.set)
    training = sorted(set(changes) - set(SCORING))
    if training:
        raise SystemExit(f"--set {', '.join(training)}: not a scoring field (use one of {', '.join(SCORING)}; "
                         "retrain with benchmarks/global_phase.py for the others)")
    model, config = load_model(args.src / "glance.pt")
    base = profile_from_config(config["profile"])
    try:  # get_profile's checks (e.g. calibrate_dad needs nearest_iad) on the run's profile + changes
        get_profile(base.name, **{k: v for k, v in {**base.to_dict(), **changes}.items() if k != "name"})
    except (ValueError, TypeError) as e:
        raise SystemExit(f"--set: {e}") from None
    prof = replace(base, **changes)
    t = time.perf_counter()
    train = load_mvtec(args.data, args.category, "train")
    fit_residual_model(model, train.images, PatchGrid(per_side=prof.grid_per_side), whiten=prof.whiten_iad,
                       bank=prof.nearest_iad, chunk=prof.score_chunk, dad=prof.calibrate_dad,
                       amp_dtype=amp_dtype_for(torch.device("cpu"), args.amp))
    t_fit = time.perf_counter() - t
    args.dst.mkdir(parents=True, exist_ok=True)
    save_model(args.dst / "glance.pt", model, {**config, "profile": prof.to_dict()})
    ev = evaluate(args.dst, args.data, args.category, args.dst / "eval", figure=False, device="cpu", amp=args.amp)
    print(f"re-fitted in {t_fit:.0f} s and evaluated in {time.perf_counter() - t:.0f} s "
          f"({ev['seconds_per_image']:.3f} s per test image, amp {ev['amp']})", flush=True)
    print(json.dumps({"pro": round(ev["pro"], 4), **{k: round(v["pro"], 3) for k, v in ev["per_defect"].items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
