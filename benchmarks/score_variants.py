"""Can the scoring alone give Glance back what the local feature sees? (no retraining)

    python benchmarks/score_variants.py RUN_DIR --data data/synthetic --category fabric

RUN_DIR is a finished run (RUN/glance.pt, e.g. runs/accuracy/cpu-coords/fabric/seed1/glance_run).
The run's networks compute (Z_l, Z_g) of every grid patch of the training and test images once;
then the test set is scored with variants of Eq. (11) and Eq. (13) and one line per variant
gives PRO, image AUROC and PRO per defect type:

* `bank`: the run's own s_IAD (whitened residual, distance to the nearest normal training
  residual; heads.py), combined with s_DAD at the run's lambda_s: what `evaluate` reports;
* `bank + local`: sqrt(s_IAD^2 + d_l^2), d_l the RMS distance of the standardised Z_l to the
  nearest training Z_l (a local-only score on the same grid): a patch must look normal *and*
  agree with its context as normal patches do;
* `joint bank`: the nearest training patch in the joint space [W r, Z_l] (one normal patch must
  explain both at once);
* `local only`: d_l alone, on the same grid and features (for reference);
* `spread-normalised Eq. 13`: s_IAD and s_DAD each divided by its standard deviation on the
  training patches (s_IAD leave-one-image-out, since every training residual is in the bank);
* `bank, s_DAD above its nearest normal`: s_DAD minus the s_DAD of the training patch whose
  whitened residual is nearest (the neighbour the bank already uses for s_IAD), floored at 0:
  "does this patch look more distorted than the normal patch that disagrees with its context
  most like it?" (DAD's counterpart of the nearest-residual s_IAD; training patches only);
* `bank` at other lambda_s.

Measured on fabric seed 1 (cpu profile; README, fabric bullet): no variant reaches PRO 0.9.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from glance_lite.baselines.common import nearest_distances
from glance_lite.data import DEFECT_KINDS, load_mvtec
from glance_lite.evaluate import score_split
from glance_lite.heads import dad_score
from glance_lite.idw import idw_maps
from glance_lite.metrics import evaluate_maps
from glance_lite.model import load_model
from glance_lite.patches import PatchGrid
from glance_lite.profiles import profile_from_config
from glance_lite.scoring import combine


def leave_one_out(r: torch.Tensor) -> torch.Tensor:
    """Residuals `(N, P, n)` of N images -> `(N, P)` RMS distance of each to the nearest residual
    of the *other* images (what a normal training patch would score if it were not in the bank)."""
    n = r.shape[-1] ** 0.5
    return torch.stack([nearest_distances(r[i], torch.cat([r[:i], r[i + 1:]]).flatten(0, 1)) / n
                        for i in range(len(r))])


def nearest_index(queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Index of the nearest bank row `(M,D)` for each query `(Q,D)` -> `(Q,)`."""
    return nearest_distances(queries, bank, return_index=True)[1]


def variants(model, z_tr: tuple, z_te: tuple, lambda_s: float) -> dict:
    """(Z_l, Z_g) `(N, P, 128)` of training and test images -> {name: (s_iad, s_dad, lambda_s)}."""
    (zl_tr, zg_tr), (zl_te, zg_te) = z_tr, z_te
    shape, n = zl_te.shape[:2], zl_te.shape[-1] ** 0.5
    r_tr, r_te = model.whitener(zl_tr - zg_tr), model.whitener(zl_te - zg_te).flatten(0, 1)
    s_iad = (nearest_distances(r_te, r_tr.flatten(0, 1)) / n).view(shape)
    d_l = (nearest_distances(zl_te.flatten(0, 1), zl_tr.flatten(0, 1)) / n).view(shape)
    joint = nearest_distances(torch.cat([r_te, zl_te.flatten(0, 1)], 1),
                              torch.cat([r_tr, zl_tr], 2).flatten(0, 1)).view(shape) / n
    dad = lambda zl, zg: dad_score(model.head, zl.flatten(0, 1), zg.flatten(0, 1)).float()  # noqa: E731
    s_dad, dad_tr = dad(zl_te, zg_te).view(shape), dad(zl_tr, zg_tr)
    out = {"bank": (s_iad, s_dad, lambda_s),
           "bank + local": ((s_iad ** 2 + d_l ** 2).sqrt(), s_dad, lambda_s),
           "joint bank": (joint, s_dad, lambda_s),
           "local only": (d_l, s_dad, 1.0),
           "spread-normalised Eq. 13": (s_iad / leave_one_out(r_tr).std(), s_dad / dad_tr.std(), lambda_s),
           "bank, s_DAD above its nearest normal": (
               s_iad, (s_dad - dad_tr[nearest_index(r_te, r_tr.flatten(0, 1))].view(shape)).clamp(min=0), lambda_s)}
    for lam in (0.6, 0.7, 0.9, 1.0):
        out[f"bank, lambda_s {lam}"] = (s_iad, s_dad, lam)
    return out


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", required=True, type=Path, help="dataset root (MVTec layout)")
    ap.add_argument("--category", required=True)
    args = ap.parse_args(argv)
    if not (args.run / "glance.pt").is_file():
        raise SystemExit(f"{args.run / 'glance.pt'} not found: RUN_DIR must be a finished run")
    model, config = load_model(args.run / "glance.pt")
    prof = profile_from_config(config["profile"])
    grid = PatchGrid(per_side=prof.grid_per_side)
    train, test = (load_mvtec(args.data, args.category, s) for s in ("train", "test"))
    _, z_tr = score_split(model, train, grid, prof.score_chunk, keep=torch.ones(len(train), dtype=torch.bool))
    _, z_te = score_split(model, test, grid, prof.score_chunk, keep=torch.ones(len(test), dtype=torch.bool))
    masks = test.masks[:, 0].numpy() > 0.5
    print(f"{args.run}: {args.category}, {len(train)} training / {len(test)} test images, "
          f"grid {grid.per_side}x{grid.per_side}")
    print("| variant | λs | PRO | image AUROC | " + " | ".join(sorted(set(test.defects) - {"good"})) + " |")
    for name, (s_iad, s_dad, lam) in variants(model, z_tr, z_te, prof.lambda_s).items():
        maps = idw_maps(combine(s_iad, s_dad, lam), grid, prof.idw_power).numpy()
        m = evaluate_maps(masks, maps, test.labels.numpy(), list(test.defects), DEFECT_KINDS)
        per = " | ".join(f"{m['per_defect'][d]['pro']:.3f}" for d in sorted(m["per_defect"]))
        print(f"| {name} | {lam} | {m['pro']:.3f} | {m['image_auroc']:.3f} | {per} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
