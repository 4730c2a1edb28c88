"""Glance against local-only and MFFA-lite baselines on one category (`glance-lite compare`).

    glance      the paper's method: trained with training.py into OUT/glance_run (a finished or
                interrupted run with the same settings is resumed), evaluated into OUT/glance_eval
    local_only  nearest-neighbour distance of Local-Net patch features (local_only.py), the
                same Local-Net and raster grid as Glance but no context
    nns         MFFA's nearest-neighbour branch (nns.py), after PSG fine-tuning (psg.py)
    gaussian    MFFA's per-position Gaussian branch (gaussian.py), same backbone
    amc         MFFA's combined map (amc.py)

Every method is scored on the same test split with the same metrics (metrics.evaluate_maps,
defect kinds from data.DEFECT_KINDS). Writes
    OUT/comparison.json           {method: {pro, pixel_auroc, image_auroc, per_defect, per_kind,
                                            seconds_per_image}}; Glance's also image_auroc_max
                                  (the maximum of its map, beside its own image score)
    OUT/comparison_settings.json  profile, teacher, seed, device, MFFA-lite sizes, fit times
    OUT/maps.npz                  the baselines' test maps (N,256,256) float16, one key per method
seconds_per_image is test-time scoring only (fitting and training are in the settings file).
Every memory bank (local-only, NNS, Gaussian) is sized before anything is trained or written, and a
bank above `max_bank_gb` (--max-bank-gb) stops the run with its size and the limit.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..data import MVTecSplit, load_mvtec
from ..devices import resolve_device
from ..evaluation import evaluate, split_metrics
from ..metrics import metrics_table
from ..patches import PatchGrid
from ..profiles import Profile, get_profile
from ..teacher import load_teacher, resolve_teacher
from ..training import RunError, train
from .common import DEFAULT_MAX_BYTES, max_bank_bytes
from .local_only import LocalOnly, load_local_net, local_bank_bytes
from .mffa import MFFAConfig, MFFALite, settings_for

METHODS = ("glance", "local_only", "nns", "gaussian", "amc")
KEYS = ("pro", "pixel_auroc", "image_auroc", "per_defect", "per_kind", "seconds_per_image")
GLANCE_EXTRA = ("image_auroc_max",)  # Glance's own image score is image_auroc; this is supp. D.1's max


def local_only_maps(run_dir: Path, train_images: torch.Tensor, test_images: torch.Tensor, prof: Profile,
                    device: torch.device, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[torch.Tensor, dict]:
    """The local-only baseline of a Glance run (its RUN/local.pt, the profile's grid): test maps
    `(N,S,S)` and {"fit": s, "score": s}."""
    t = time.perf_counter()
    local = LocalOnly(load_local_net(run_dir / "local.pt").to(device), PatchGrid(per_side=prof.grid_per_side),
                      prof.idw_power, prof.score_chunk, max_bytes).fit(train_images)
    t1 = time.perf_counter()
    maps = local.anomaly_maps(test_images)
    return maps, {"fit": t1 - t, "score": time.perf_counter() - t1}


def _train_glance(data_root, category: str, run_dir: Path, prof: Profile, teacher: str, seed: int,
                  overwrite: bool, device: torch.device, progress: bool) -> None:
    """Train (or resume, or reuse) Glance; with `overwrite`, a run with other settings is redone."""
    kw = dict(profile=prof, teacher=teacher, seed=seed, device=device, progress=progress)
    try:
        train(data_root, category, run_dir, resume=True, **kw)
    except RunError:
        if not overwrite:
            raise
        # training.py decides whether to pre-train Local-Net before its overwrite deletes local.pt,
        # so remove the stale one first (the whole run is redone anyway)
        (run_dir / "local.pt").unlink(missing_ok=True)
        train(data_root, category, run_dir, resume=False, overwrite=True, **kw)


def _prepare(out_dir: Path, overwrite: bool, train_set: MVTecSplit, prof: Profile, mffa: MFFALite,
             cfg: MFFAConfig) -> None:
    """Everything that can refuse before training: an existing result, a bank over its limit, an
    unwritable output folder."""
    if (out_dir / "comparison.json").exists() and not overwrite:
        raise ValueError(f"{out_dir / 'comparison.json'} already exists; pass --overwrite to compute the "
                         f"comparison again (a finished Glance run in {out_dir / 'glance_run'} is reused)")
    local_bank_bytes(len(train_set), PatchGrid(per_side=prof.grid_per_side), cfg.max_bank_bytes)
    mffa.check_memory(len(train_set), train_set.images.shape[-1])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot write to output folder {out_dir}: {err}") from err


def compare(data_root: str | Path, category: str, out_dir: str | Path, *, profile: Profile | str | None = None,
            teacher: str | None = "auto", seed: int = 0, overwrite: bool = False,
            device: str | torch.device | None = None, progress: bool = True,
            mffa_config: MFFAConfig | None = None, max_bank_gb: float | None = None) -> dict:
    """Run all five methods on `category` and write OUT/comparison.json -> its content
    {method: {pro, pixel_auroc, image_auroc, per_defect, per_kind, seconds_per_image}}.

    `max_bank_gb` (GiB) limits every memory bank; None keeps the MFFA config's max_bank_bytes (2 GiB).
    """
    prof, out_dir, dev = get_profile(profile), Path(out_dir), resolve_device(device)
    teacher, _ = resolve_teacher(teacher, prof)
    cfg = mffa_config or settings_for(prof.name)
    if max_bank_gb is not None:
        cfg = replace(cfg, max_bank_bytes=max_bank_bytes(max_bank_gb))
    train_set, test_set = load_mvtec(data_root, category, "train"), load_mvtec(data_root, category, "test")
    mffa = MFFALite(load_teacher(teacher, prof.teacher_input, seed=seed).backbone, cfg, seed, dev)
    _prepare(out_dir, overwrite, train_set, prof, mffa, cfg)

    t, run_dir = time.perf_counter(), out_dir / "glance_run"
    _train_glance(data_root, category, run_dir, prof, teacher, seed, overwrite, dev, progress)
    times = {"glance_train": time.perf_counter() - t}
    glance = evaluate(run_dir, data_root, category, out_dir=out_dir / "glance_eval", device=dev)
    maps, local_s = {}, {}
    maps["local_only"], local_s = local_only_maps(run_dir, train_set.images, test_set.images, prof, dev,
                                                  cfg.max_bank_bytes)
    times["local_only_fit"] = local_s["fit"]
    mffa.fit(train_set.images)
    times.update({f"mffa_fit_{k}": v for k, v in mffa.fit_seconds.items()})
    mffa_maps, secs = mffa.timed_maps(test_set.images)
    maps.update(mffa_maps)
    secs.update({"glance": glance["seconds_per_image"] * len(test_set), "local_only": local_s["score"]})

    results = {"glance": {k: glance[k] for k in KEYS + GLANCE_EXTRA if k in glance}}
    for name in METHODS[1:]:
        m = split_metrics(maps[name], test_set)
        results[name] = {**{k: m[k] for k in KEYS[:-1]}, "seconds_per_image": secs[name] / len(test_set)}
    settings = {"category": category, "profile": prof.name, "teacher": teacher, "seed": seed,
                "device": str(dev), "n_train": len(train_set), "n_test": len(test_set),
                "mffa": cfg.to_dict(), "psg_losses": mffa.psg_losses, "fit_seconds": times,
                "nns_bank_size": int(mffa.nns.bank.shape[0])}
    np.savez_compressed(out_dir / "maps.npz", **{k: v.numpy().astype(np.float16) for k, v in maps.items()})
    (out_dir / "comparison_settings.json").write_text(json.dumps(settings, indent=2))
    (out_dir / "comparison.json").write_text(json.dumps(results, indent=2))
    print(f"\n{category}: profile {prof.name}, teacher {teacher}, {len(train_set)} train / "
          f"{len(test_set)} test images, device {dev}\n{metrics_table(results)}\n-> {out_dir / 'comparison.json'}")
    return results
