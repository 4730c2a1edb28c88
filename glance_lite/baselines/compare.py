"""Glance against local-only and MFFA-lite baselines on one category (`glance-lite compare`).

    glance      the paper's method: trained with train.py into OUT/glance_run (a finished or
                interrupted run with the same settings is resumed), evaluated into OUT/glance_eval
    local_only  nearest-neighbour distance of Local-Net patch features (local_only.py), the
                same Local-Net and raster grid as Glance but no context
    nns         MFFA's nearest-neighbour branch (nns.py), after PSG fine-tuning (psg.py)
    gaussian    MFFA's per-position Gaussian branch (gaussian.py), same backbone
    amc         MFFA's combined map (amc.py)

Every method is scored on the same test split with the same metrics (metrics.evaluate_maps,
defect kinds from data.DEFECT_KINDS). Writes
    OUT/comparison.json           {method: {pro, pixel_auroc, image_auroc, per_defect, per_kind,
                                            seconds_per_image}}
    OUT/comparison_settings.json  profile, teacher, seed, device, MFFA-lite sizes, fit times
    OUT/maps.npz                  the baselines' test maps (N,256,256) float16, one key per method
seconds_per_image is test-time scoring only (fitting and training are in the settings file).
Every memory bank (local-only, NNS, Gaussian) is sized before anything is trained or written, and a
bank above `max_bank_gb` (--max-bank-gb) stops the run with its size and the limit.
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..data import DEFECT_KINDS, load_mvtec
from ..devices import resolve_device
from ..evaluate import evaluate
from ..metrics import evaluate_maps
from ..patches import PatchGrid
from ..profiles import Profile, get_profile
from ..teacher import load_teacher
from ..train import RunError, train
from .common import max_bank_bytes
from .local_only import LocalOnly, load_local_net, local_bank_bytes
from .mffa import MFFAConfig, MFFALite, settings_for

METHODS = ("glance", "local_only", "nns", "gaussian", "amc")
KEYS = ("pro", "pixel_auroc", "image_auroc", "per_defect", "per_kind", "seconds_per_image")


def comparison_table(rows: dict[str, dict]) -> str:
    """{method: comparison entry} -> aligned text table (PRO, AUROCs, PRO per kind, s/image)."""
    head = (f"{'method':<12}{'PRO':>7}{'pixAUROC':>10}{'imgAUROC':>10}{'PRO struct':>12}"
            f"{'PRO logic':>11}{'s/image':>10}")
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [head, "-" * len(head)]
    for name, m in rows.items():
        kinds = m.get("per_kind", {})
        lines.append(f"{name:<12}{fmt(m['pro']):>7}{fmt(m['pixel_auroc']):>10}{fmt(m['image_auroc']):>10}"
                     f"{fmt(kinds.get('structural', {}).get('pro')):>12}"
                     f"{fmt(kinds.get('logical', {}).get('pro')):>11}{m['seconds_per_image']:>10.3f}")
    return "\n".join(lines)


def _train_glance(run_dir: Path, data_root, category: str, prof: Profile, teacher: str, seed: int,
                  overwrite: bool, device: torch.device, progress: bool) -> None:
    """Train (or resume, or reuse) Glance; with `overwrite`, a run with other settings is redone."""
    args = (run_dir, data_root, category, prof, teacher, seed)
    try:
        train(*args, resume=True, device=device, progress=progress)
    except RunError:
        if not overwrite:
            raise
        # train.py decides whether to pre-train Local-Net before its overwrite deletes local.pt,
        # so remove the stale one first (the whole run is redone anyway)
        (run_dir / "local.pt").unlink(missing_ok=True)
        train(*args, resume=False, overwrite=True, device=device, progress=progress)


def compare(data_root: str | Path, category: str, out_dir: str | Path, prof: Profile | str | None = None,
            teacher: str | None = None, seed: int = 0, overwrite: bool = False,
            device: str | torch.device | None = None, progress: bool = True,
            mffa_config: MFFAConfig | None = None, max_bank_gb: float | None = None) -> dict:
    """Run all five methods on `category` and write OUT/comparison.json; returns its content.

    `max_bank_gb` (GiB) limits every memory bank; None keeps the MFFA config's max_bank_bytes (2 GiB).
    """
    prof = prof if isinstance(prof, Profile) else get_profile(prof)
    teacher = teacher or prof.default_teacher
    cfg = mffa_config or settings_for(prof.name)
    if max_bank_gb is not None:
        cfg = replace(cfg, max_bank_bytes=max_bank_bytes(max_bank_gb))
    out_dir = Path(out_dir)
    result_path = out_dir / "comparison.json"
    if result_path.exists() and not overwrite:
        raise ValueError(f"{result_path} already exists; pass --overwrite to compute the comparison again "
                         f"(a finished Glance run in {out_dir / 'glance_run'} is reused)")
    dev = resolve_device(device)
    # bad data fails here, with the file names, before any training
    train_set = load_mvtec(data_root, category, "train")
    test_set = load_mvtec(data_root, category, "test")
    # the teacher once (an untrained one is announced here, once), and every bank's size before
    # anything is trained or written
    backbone = load_teacher(teacher, prof.teacher_input, seed=seed).backbone
    mffa = MFFALite(backbone, cfg, seed, dev)
    local_bank_bytes(len(train_set), PatchGrid(per_side=prof.grid_per_side), cfg.max_bank_bytes)
    mffa.check_memory(len(train_set), train_set.images.shape[-1])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot write to output folder {out_dir}: {err}") from err

    times: dict[str, float] = {}
    t = time.perf_counter()
    run_dir = out_dir / "glance_run"
    with warnings.catch_warnings():  # train.py loads the same teacher: already announced above
        warnings.filterwarnings("ignore", message=r"(?s).*UNTRAINED TEACHER")
        _train_glance(run_dir, data_root, category, prof, teacher, seed, overwrite, dev, progress)
    times["glance_train"] = time.perf_counter() - t
    glance = evaluate(run_dir, data_root, category, out_dir / "glance_eval", device=dev)

    maps: dict[str, torch.Tensor] = {}
    secs: dict[str, float] = {"glance": glance["seconds_per_image"] * len(test_set)}
    t = time.perf_counter()
    local = LocalOnly(load_local_net(run_dir / "local.pt").to(dev), PatchGrid(per_side=prof.grid_per_side),
                      prof.idw_power, prof.score_chunk, cfg.max_bank_bytes).fit(train_set.images)
    times["local_only_fit"] = time.perf_counter() - t
    t = time.perf_counter()
    maps["local_only"] = local.maps(test_set.images)
    secs["local_only"] = time.perf_counter() - t

    mffa.fit(train_set.images)
    times.update({f"mffa_fit_{k}": v for k, v in mffa.fit_seconds.items()})
    mffa_maps, mffa_secs = mffa.score(test_set.images)
    maps.update(mffa_maps)
    secs.update(mffa_secs)

    masks = test_set.masks[:, 0].numpy() > 0.5
    labels, defects = test_set.labels.numpy(), list(test_set.defects)
    results = {"glance": {k: glance[k] for k in KEYS}}
    for name in METHODS[1:]:
        m = evaluate_maps(masks, maps[name].float().numpy(), labels, defects, DEFECT_KINDS)
        results[name] = {**{k: m[k] for k in KEYS[:-1]}, "seconds_per_image": secs[name] / len(test_set)}

    settings = {"category": category, "profile": prof.name, "teacher": teacher, "seed": seed,
                "device": str(dev), "n_train": len(train_set), "n_test": len(test_set),
                "mffa": cfg.to_dict(), "psg_losses": mffa.psg_losses, "fit_seconds": times,
                "nns_bank_size": int(mffa.nns.bank.shape[0])}
    np.savez_compressed(out_dir / "maps.npz", **{k: v.numpy().astype(np.float16) for k, v in maps.items()})
    (out_dir / "comparison_settings.json").write_text(json.dumps(settings, indent=2))
    result_path.write_text(json.dumps(results, indent=2))
    print(f"\n{category}: profile {prof.name}, teacher {teacher}, {len(train_set)} train / "
          f"{len(test_set)} test images, device {dev}\n{comparison_table(results)}\n-> {result_path}")
    return results
