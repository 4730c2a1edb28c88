"""Evaluation of a trained run on a test split (paper Sec. 4.2, supplementary Sec. D.1).

`evaluate(run_dir, data_root, category, out_dir)` scores every test image on the raster grid,
stores the per-patch s_IAD / s_DAD scores and their IDW maps separately (so any lambda_s can be
re-scored later without the networks), and writes
  OUT/metrics.json   pro, pixel_auroc, image_auroc, per_defect, per_kind (+ settings, timing)
  OUT/scores.npz     s_iad, s_dad (N, K*K), labels, defects, paths
  OUT/maps.npz       maps_iad, maps_dad (N, 256, 256) float16
  OUT/figure.png     image | ground truth | score map for a few defective images (like Fig. 3)
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .data import DEFECT_KINDS, MVTecSplit, load_mvtec
from .idw import idw_maps
from .metrics import evaluate_maps
from .model import Glance, load_model
from .patches import PatchGrid
from .devices import amp_dtype_for, resolve_device
from .diagnostics import context_r2, dad_auroc, grid_targets
from .profiles import profile_from_config
from .scoring import PatchScores, combine, head_scores, patch_features


F16_MAX = float(np.finfo(np.float16).max)  # maps.npz is float16; whitened s_IAD can exceed it


def _writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / ".write-test").write_bytes(b"")
        (out_dir / ".write-test").unlink()
    except OSError as err:
        raise ValueError(f"cannot write to output folder {out_dir}: {err}") from err


def score_split(model: Glance, split: MVTecSplit, grid: PatchGrid, chunk: int = 48,
                batch_images: int = 8, amp_dtype: torch.dtype | None = None,
                keep: torch.Tensor | None = None) -> tuple[PatchScores, tuple[torch.Tensor, torch.Tensor]]:
    """PatchScores for every image of a split, a few images at a time (bounded memory), and the
    scaled features (Z_l, Z_g) `(M, K*K, 128)` of the images where `keep` `(N,)` is True
    (the normal ones, for diagnostics.context_r2)."""
    keep = torch.zeros(len(split), dtype=torch.bool) if keep is None else keep
    model.eval()
    s_iad, s_dad, z_l, z_g = [], [], [], []
    for i in range(0, len(split), batch_images):
        zl, zg = patch_features(model.local_net, model.global_net, split.images[i:i + batch_images],
                                grid, chunk, amp_dtype=amp_dtype)
        zl = model.scaler(zl)
        a, b = head_scores(model.head, zl, zg, model.whitener, model.bank)
        s_iad.append(a), s_dad.append(b)
        k = keep[i:i + batch_images]
        z_l.append(zl[k]), z_g.append(zg[k])
    return PatchScores(torch.cat(s_iad), torch.cat(s_dad), grid), (torch.cat(z_l), torch.cat(z_g))


def metrics_for(scores: PatchScores, split: MVTecSplit, lambda_s: float, power: float = 5.0) -> dict:
    """Metrics of `evaluate_maps` for one lambda_s (cheap: no network runs)."""
    maps = idw_maps(combine(scores.s_iad, scores.s_dad, lambda_s), scores.grid, power).numpy()
    masks = split.masks[:, 0].numpy() > 0.5
    return evaluate_maps(masks, maps, split.labels.numpy(), list(split.defects), DEFECT_KINDS)


def evaluate(run_dir: str | Path, data_root: str | Path, category: str, out_dir: str | Path,
             lambda_s: float | None = None, device: str | torch.device | None = None,
             figure: bool = True, amp: str = "auto") -> dict:
    """Score the test split of `category` with RUN/glance.pt and write OUT/metrics.json etc.

    amp: autocast for scoring (devices.py): auto = bf16 on GPUs that do it natively, fp16 on
    older ones (Colab's T4), float32 on a CPU; or bf16 | fp16 | off."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    model, config = load_model(run_dir / "glance.pt")
    prof = profile_from_config(config["profile"])  # the run's own settings, overrides included
    lambda_s = prof.lambda_s if lambda_s is None else lambda_s
    split = load_mvtec(data_root, category, "test")
    _writable(out_dir)
    dev = resolve_device(device)
    amp_dtype = amp_dtype_for(dev, amp)
    model.to(dev)
    grid = PatchGrid(per_side=prof.grid_per_side)
    t0 = time.perf_counter()
    scores, (z_l, z_g) = score_split(model, split, grid, prof.score_chunk, amp_dtype=amp_dtype,
                                     keep=split.labels == 0)
    seconds = time.perf_counter() - t0
    result = metrics_for(scores, split, lambda_s, prof.idw_power)
    if len(z_l):  # did Global-Net learn the context? (diagnostics.py)
        train_images = load_mvtec(data_root, category, "train").images
        result["context"] = context_r2(z_l, z_g, grid_targets(model, train_images, grid))
        result["context"]["dad_auroc_stains"] = dad_auroc(model, split.images[split.labels == 0], z_g, grid,
                                                       stains=prof.stain_kwargs())
    result.update({"category": category, "lambda_s": lambda_s, "grid_per_side": grid.per_side,
                   "grid_align": grid.align,
                   "n_images": len(split), "seconds_per_image": seconds / max(len(split), 1),
                   "device": str(dev), "teacher": config.get("teacher"), "profile": prof.name,
                   "global_arch": prof.global_arch, "standardize": prof.standardize,
                   "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "float32"})
    np.savez_compressed(out_dir / "scores.npz", s_iad=scores.s_iad.numpy(), s_dad=scores.s_dad.numpy(),
                        labels=split.labels.numpy(), defects=np.array(split.defects),
                        paths=np.array(split.paths), grid_align=grid.align)
    half = lambda m: np.clip(m.numpy(), -F16_MAX, F16_MAX).astype(np.float16)  # noqa: E731 (no inf)
    np.savez_compressed(out_dir / "maps.npz", maps_iad=half(idw_maps(scores.s_iad, grid, prof.idw_power)),
                        maps_dad=half(idw_maps(scores.s_dad, grid, prof.idw_power)))
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    if figure:
        from .viz import figure_grid
        maps = scores.maps(lambda_s, prof.idw_power)
        pick = figure_picks(list(split.defects), split.labels.tolist())
        if pick:
            figure_grid(split.images[pick], split.masks[pick], maps[pick],
                        [split.defects[i] for i in pick], out_dir / "figure.png",
                        title=f"Glance ({prof.global_arch} Global-Net), {category}: profile {prof.name}, "
                              f"teacher {config.get('teacher')}, lambda_s {lambda_s}")
    return result


def figure_picks(defects: list[str], labels: list[int], n: int = 6) -> list[int]:
    """Up to `n` defective images for the figure: the first of each defect type, then the
    second of each, ... so that every type (structural and logical) is shown."""
    by_type: dict[str, list[int]] = {}
    for i, (d, y) in enumerate(zip(defects, labels)):
        if y == 1:
            by_type.setdefault(d, []).append(i)
    rounds = max((len(v) for v in by_type.values()), default=0)
    order = [v[r] for r in range(rounds) for v in by_type.values() if r < len(v)]
    return order[:n]


def load_scores(eval_dir: str | Path, grid: PatchGrid | None = None) -> tuple[PatchScores, dict]:
    """Read OUT/scores.npz back -> (PatchScores, {"labels", "defects", "paths"}).

    The grid is rebuilt from the stored scores (K from their number, `align` as stored; files
    written before `align` existed used the unaligned grid, align = 1).
    """
    z = np.load(Path(eval_dir) / "scores.npz")
    k = int(round(z["s_iad"].shape[1] ** 0.5))
    align = int(z["grid_align"]) if "grid_align" in z.files else 1
    grid = grid or PatchGrid(per_side=k, align=align)
    meta = {"labels": z["labels"], "defects": list(z["defects"]), "paths": list(z["paths"])}
    return PatchScores(torch.from_numpy(z["s_iad"]), torch.from_numpy(z["s_dad"]), grid), meta
