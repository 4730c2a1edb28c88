"""Evaluation of a trained run on a test split (paper Sec. 4.2, supplementary Sec. D.1).

`evaluate(run, data_root, category)` scores every test image on the raster grid,
stores the per-patch s_IAD / s_DAD scores and their IDW maps separately (so any lambda_s can be
re-scored later without the networks), and writes
  OUT/metrics.json   pro, pixel_auroc, image_auroc, per_defect, per_kind (+ settings, timing)
  OUT/scores.npz     s_iad, s_dad (N, K*K), labels, defects, paths, and the run's PositionNorm
                     (norm_iad, norm_dad (M, K*K); image_score.py)
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
from .idw import IDW_POWER, idw_maps
from .image_score import PositionNorm
from .metrics import evaluate_maps
from .model import Glance, load_model
from .patches import PatchGrid
from .devices import amp_dtype_for, resolve_device
from .diagnostics import context_r2, dad_auroc, grid_targets
from .scoring import PatchScores


F16_MAX = float(np.finfo(np.float16).max)  # maps.npz is float16; whitened s_IAD can exceed it


def _writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / ".write-test").write_bytes(b"")
        (out_dir / ".write-test").unlink()
    except OSError as err:
        raise ValueError(f"cannot write to output folder {out_dir}: {err}") from err


def split_metrics(maps: torch.Tensor, split: MVTecSplit, image_scores: torch.Tensor | None = None) -> dict:
    """Metrics of `evaluate_maps` (PRO, AUROCs, per defect and defect kind) of maps `(N,S,S)` of
    a test split: the one scoring of every method (image scores `(N,)`: the method's own, else
    each map's maximum)."""
    masks = split.masks[:, 0].numpy() > 0.5
    return evaluate_maps(masks, maps.float().numpy(), split.labels.numpy(), list(split.defects), DEFECT_KINDS,
                         scores=None if image_scores is None else image_scores.float().numpy())


def metrics_for(scores: PatchScores, split: MVTecSplit, lambda_s: float, power: float = IDW_POWER) -> dict:
    """`split_metrics` of Glance's maps and image scores for one lambda_s (cheap: no network runs)."""
    return split_metrics(scores.maps(lambda_s, power), split, scores.image_scores(lambda_s))


def _context_checks(model: Glance, features: tuple[torch.Tensor, torch.Tensor], split: MVTecSplit,
                    train_images: torch.Tensor) -> dict:
    """Did Global-Net learn the context, and does s_DAD see stains? (diagnostics.py)"""
    z_l, z_g = features
    out = context_r2(z_l, z_g, grid_targets(model, train_images, model.grid))
    out["dad_auroc_stains"] = dad_auroc(model, split.images[split.labels == 0], z_g, model.grid,
                                        stains=model.profile.deviations.stain_kwargs())
    return out


def _save_scores(out_dir: Path, scores: PatchScores, split: MVTecSplit, power: float) -> None:
    """OUT/scores.npz (per-patch scores) and OUT/maps.npz (the two heads' maps, float16)."""
    norm = scores.norm if scores.norm is not None else PositionNorm()
    np.savez_compressed(out_dir / "scores.npz", s_iad=scores.s_iad.numpy(), s_dad=scores.s_dad.numpy(),
                        labels=split.labels.numpy(), defects=np.array(split.defects),
                        paths=np.array(split.paths), grid_align=scores.grid.align,
                        norm_iad=norm.iad.numpy(), norm_dad=norm.dad.numpy())
    half = lambda m: np.clip(m.numpy(), -F16_MAX, F16_MAX).astype(np.float16)  # noqa: E731 (no inf)
    np.savez_compressed(out_dir / "maps.npz", maps_iad=half(idw_maps(scores.s_iad, scores.grid, power)),
                        maps_dad=half(idw_maps(scores.s_dad, scores.grid, power)))


def _save_figure(out_dir: Path, model: Glance, scores: PatchScores, split: MVTecSplit, lambda_s: float,
                 category: str) -> None:
    """OUT/figure.png: image | ground truth | map for a few defective images of every type."""
    from .viz import figure_grid
    prof, pick = model.profile, figure_picks(list(split.defects), split.labels.tolist())
    if pick:
        maps = scores.maps(lambda_s, prof.idw_power)
        figure_grid(split.images[pick], split.masks[pick], maps[pick], [split.defects[i] for i in pick],
                    out_dir / "figure.png",
                    title=f"Glance ({prof.deviations.global_arch} Global-Net), {category}: profile {prof.name}, "
                          f"teacher {model.config.get('teacher')}, lambda_s {lambda_s}")


def evaluate(run: str | Path, data_root: str | Path, category: str, *, out_dir: str | Path | None = None,
             lambda_s: float | None = None, device: str | torch.device | None = None,
             figure: bool = True, amp: str = "auto") -> dict:
    """Score the test split of `category` with the run's model and write OUT/metrics.json etc.
    (OUT = `out_dir`, default RUN/eval) -> the metrics dict.

    amp: autocast for scoring (devices.py): auto = bf16 on GPUs that do it natively, fp16 on
    older ones (Colab's T4), float32 on a CPU; or bf16 | fp16 | off."""
    out_dir = Path(run) / "eval" if out_dir is None else Path(out_dir)
    model = load_model(run)
    prof = model.profile  # the run's own settings, overrides included
    lambda_s = prof.lambda_s if lambda_s is None else lambda_s
    split = load_mvtec(data_root, category, "test")
    _writable(out_dir)
    dev = resolve_device(device)
    model.to(dev)
    t0 = time.perf_counter()
    scores, features = model.scores_and_features(split.images, amp, keep=split.labels == 0)
    seconds = time.perf_counter() - t0
    result = metrics_for(scores, split, lambda_s, prof.idw_power)
    if len(features[0]):
        result["context"] = _context_checks(model, features, split, load_mvtec(data_root, category, "train").images)
    amp_dtype = amp_dtype_for(dev, amp)
    result.update({"category": category, "lambda_s": lambda_s, "grid_per_side": scores.grid.per_side,
                   "grid_align": scores.grid.align, "n_images": len(split),
                   "seconds_per_image": seconds / max(len(split), 1), "device": str(dev),
                   "teacher": model.config.get("teacher"), "profile": prof.name,
                   "global_arch": prof.deviations.global_arch, "standardize": prof.deviations.standardize,
                   "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "float32"})
    _save_scores(out_dir, scores, split, prof.idw_power)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    if figure:
        _save_figure(out_dir, model, scores, split, lambda_s, category)
    return result


SCORING_VARIANTS = ("paper: Eq. 11 and Eq. 12", "+ whitened residual (whiten_iad)",
                    "+ nearest normal residual (nearest_iad)", "+ calibrated s_DAD (calibrate_dad)")


@torch.no_grad()
def scoring_variants(model: Glance, train_images: torch.Tensor, test: MVTecSplit,
                     lambda_s: float | None = None) -> dict[str, dict]:
    """Our scoring deviations (docs/deviations.md) switched on one after another on one trained
    model: the paper's Eq. 11-12, + the whitened residual, + the nearest normal residual, + the
    calibrated s_DAD -> {SCORING_VARIANTS[i]: metrics of `split_metrics`}. The networks and features
    are computed once; each variant only re-fits the whitener and bank as `train` does."""
    from .context_train import residual_picks, training_residuals
    from .heads import ResidualBank, ResidualWhitener
    from .scoring import head_scores
    prof = model.profile
    lambda_s = prof.lambda_s if lambda_s is None else lambda_s
    pick_w, pick_b = residual_picks(len(train_images))
    res, s_dad = training_residuals(model, train_images, model.grid, prof.score_chunk, dad=True)
    z_l, z_g = model.features(test.images)
    whitener = ResidualWhitener().fit(res[pick_w])
    variants = [(ResidualWhitener(), None), (whitener, None),
                (whitener, ResidualBank().fit(whitener(res[pick_b]))),
                (whitener, ResidualBank().fit(whitener(res[pick_b]), s_dad[pick_b]))]
    out = {}
    for name, (w, bank) in zip(SCORING_VARIANTS, variants):
        scores = PatchScores(*head_scores(model.head, z_l, z_g, w, bank), model.grid)
        out[name] = metrics_for(scores, test, lambda_s, prof.idw_power)
    return out


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

    The grid is rebuilt from the stored scores (K from their number, `align` as stored).
    """
    z = np.load(Path(eval_dir) / "scores.npz")
    k = int(round(z["s_iad"].shape[1] ** 0.5))
    grid = grid or PatchGrid(per_side=k, align=int(z["grid_align"]))
    meta = {"labels": z["labels"], "defects": list(z["defects"]), "paths": list(z["paths"])}
    norm = (PositionNorm().fit(torch.from_numpy(z["norm_iad"]), torch.from_numpy(z["norm_dad"]))
            if "norm_iad" in z.files and len(z["norm_iad"]) >= 2 else None)  # older evals: none
    return PatchScores(torch.from_numpy(z["s_iad"]), torch.from_numpy(z["s_dad"]), grid, norm), meta
