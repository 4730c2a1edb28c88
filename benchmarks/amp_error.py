"""Where mixed precision hurts a trained model: Local-Net or Global-Net in low precision.

    python benchmarks/amp_error.py runs/accuracy/cpu-centred/mvtec3d_tire/seed1/glance_run \
        --data ../shared/data/real --category mvtec3d_tire --images 12

Runs the scoring feature passes of RUN/glance.pt on the first test images three ways (Local-Net
in low precision, Global-Net in low precision, both) and prints, for each, the seconds per image
of each network and the error against float32 as a fraction of the variance of: standardised Z_l,
Z_g, and the whitened residual that s_IAD is computed from (Eq. 11, heads.py). It calls the two
networks' scoring paths (`fast_local`, `fast_global`) directly, as `scoring.patch_features` does,
because `patch_features` keeps Local-Net in float32 whatever amp is asked for (this script is why).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from glance_lite.data import load_mvtec
from glance_lite.fast_global import global_features_holes, hole_free_front
from glance_lite.fast_local import grid_local_features
from glance_lite.model import load_model
from glance_lite.patches import PatchGrid
from glance_lite.profiles import profile_from_config
from glance_lite.scoring import _grid_plan
from glance_lite.teacher import normalize

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@torch.inference_mode()
def features(model, images: torch.Tensor, grid: PatchGrid, chunk: int, local_dtype, global_dtype,
             device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float]:
    """(standardised Z_l, Z_g, whitened residual) `(N*K*K, 128)` and the seconds per image of each net."""
    k2, n = grid.n_patches, len(images)
    x = normalize(images.to(device))
    t = time.perf_counter()
    with torch.autocast(device, dtype=local_dtype or torch.bfloat16, enabled=local_dtype is not None):
        z_l = grid_local_features(model.local_net, x, grid.top_left, grid.patch_size, chunk).float().cpu()
    t_l, t = (time.perf_counter() - t) / n, time.perf_counter()
    plan = _grid_plan(grid, device)
    with torch.autocast(device, dtype=global_dtype or torch.bfloat16, enabled=global_dtype is not None):
        base = hole_free_front(model.global_net, x)
        z_g = torch.cat([global_features_holes(model.global_net, x, p // k2, p % k2, grid, plan, base).float().cpu()
                         for p in torch.arange(n * k2, device=device).split(chunk)])
    t_g = (time.perf_counter() - t) / n
    z_l = model.scaler(z_l.view(n, k2, -1)).reshape(-1, z_l.shape[-1])
    return z_l, z_g, model.whitener(z_l - z_g), t_l, t_g


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a finished run (holds glance.pt)")
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--category", required=True)
    ap.add_argument("--images", type=int, default=12, help="test images to use (the first N)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    if not (args.run / "glance.pt").is_file():
        raise SystemExit(f"{args.run / 'glance.pt'} not found: RUN must be a finished run")
    model, config = load_model(args.run / "glance.pt")
    model.to(args.device).eval()
    prof = profile_from_config(config["profile"])
    grid = PatchGrid(per_side=prof.grid_per_side)
    images = load_mvtec(args.data, args.category, "test").images[:args.images]
    low = DTYPES[args.dtype]
    ref = features(model, images, grid, prof.score_chunk, None, None, args.device)
    print(f"float32: {ref[3]:.3f} s/image Local-Net, {ref[4]:.3f} s/image Global-Net ({len(images)} images)")
    err = lambda a, b: ((a - b).pow(2).mean() / b.var()).item()  # noqa: E731
    for name, ld, gd in [("Local-Net", low, None), ("Global-Net", None, low), ("both", low, low)]:
        z_l, z_g, r, t_l, t_g = features(model, images, grid, prof.score_chunk, ld, gd, args.device)
        print(f"{args.dtype} {name:10s}: {t_l:.3f} / {t_g:.3f} s/image; error / variance: standardised Z_l "
              f"{err(z_l, ref[0]):.1e}, Z_g {err(z_g, ref[1]):.1e}, whitened residual {err(r, ref[2]):.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
