"""One-class classification with Glance (paper Sec. 4.3, supplementary Sec. C.2).

Each image of a one-class split (`data.one_class_split`, CIFAR-10 protocol of GradCon) plays
both roles of the localisation setting:
  * resized to the patch size (33x33) it is the "patch" I_L, input of Local-Net;
  * resized to the image size (256x256) it is the "image" I_G, input of Global-Net, with an
    all-ones mask (nothing is hidden; partial convolution then equals plain convolution);
  * the negative local feature comes from a *different* training image resized to 33x33
    (`stains.shuffled_negatives`), not from a stain.

Phases, as in `training.py`:
  distill   Local-Net imitates the teacher on random 33x33 crops of natural images;
  finetune  the same loss on the I_L of the normal class (learning rate 1e-5 in supp. C.2);
  train     Global-Net + DAD head with Eq. 10 (both learning rates 1e-5 in supp. C.2).
Learning rates follow the profile, scaled by C.2's ratios to C.1 (`learning_rates`).
The image score is Eq. 13 on the single (I_L, I_G) pair: s = lambda_s s_IAD + (1-lambda_s) s_DAD.

Run folder: log.jsonl (losses per step), config.json, glance.pt (the trained model). With
`resume=True` an existing glance.pt is loaded instead of training again.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__
from .data import OneClassSplit, distillation_images_or_offline, random_crops
from .heads import dad_score, iad_score
from .patches import PATCH_SIZE
from .losses import joint_loss, local_loss
from .metrics import image_auroc
from .model import Glance, load_model, save_model
from .devices import resolve_device
from .profiles import PAPER, Profile, get_profile
from .stains import shuffled_negatives
from .teacher import load_teacher, normalize, resolve_teacher
from .training import TrainingDiverged, step_generator

PATCH, IMAGE = PATCH_SIZE, 256
# Learning rates of supplementary C.2 relative to C.1 (MVTec AD): fine-tuning 1e-5 instead of
# 2e-4, Global-Net 1e-5 instead of 1e-4, DAD head 1e-5 as before. We apply these ratios to the
# profile's MVTec learning rates, so the `paper` profile gets exactly C.2's values and the short
# profiles (which raise their rates to learn in fewer steps) keep the same proportions.
LR_SCALE_FINETUNE = 1e-5 / 2e-4
LR_SCALE_GLOBAL = 1e-5 / 1e-4
LR_SCALE_HEAD = 1e-5 / 1e-5


def learning_rates(prof: Profile) -> dict:
    """One-class learning rates for a profile: {"finetune", "global", "head"}."""
    return {"finetune": prof.lr_local * LR_SCALE_FINETUNE, "global": prof.lr_global * LR_SCALE_GLOBAL,
            "head": prof.lr_head * LR_SCALE_HEAD}


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N,3,h,w) in [0,1] -> (N,3,size,size), bilinear."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def _natural_images(source: str) -> torch.Tensor:
    return distillation_images_or_offline(source)[0]  # offline: the bundled photos, announced


def _log_line(f, phase: str, step: int, parts: dict) -> None:
    if not all(math.isfinite(v) for v in parts.values()):
        raise TrainingDiverged(f"one-class {phase} loss became {parts} at step {step}")
    f.write(json.dumps({"phase": phase, "step": step, **parts}) + "\n")


def _local_phases(model: Glance, tch, natural, patches, prof: Profile, lr_finetune: float, seed: int,
                  device, log) -> None:
    """Distillation on natural images, then fine-tuning on the training images resized to 33x33 (Eq. 3)."""
    local_params = list(model.local_net.parameters()) + list(model.decoder.parameters())
    for phase, steps, batch, lr, images in (
            ("distill", prof.distill_steps, prof.distill_batch, prof.lr_local, natural),
            ("finetune", prof.finetune_steps, prof.finetune_batch, lr_finetune, patches)):
        opt = torch.optim.Adam(local_params, lr=lr, betas=(0.9, 0.999))
        for step in range(steps):
            g = step_generator(seed, "oc-" + phase, step)
            p = normalize(random_crops(images, batch, PATCH, generator=g).to(device))
            z = model.local_net(p)
            loss, parts = local_loss(model.decoder(z), tch(p), z, prof.lambda_k, prof.lambda_c)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _log_line(log, phase, step + 1, parts)


def _global_phase(model: Glance, train_images, patches, prof: Profile, lrs: dict, seed: int, device, log) -> None:
    """Eq. 10 with the whole image as context (nothing hidden) and another image as p- (supp. C.2)."""
    model.local_net.requires_grad_(False).eval()
    opt = torch.optim.Adam([{"params": model.global_net.parameters(), "lr": lrs["global"]},
                            {"params": model.head.parameters(), "lr": lrs["head"]}], betas=(0.9, 0.999))
    n = train_images.shape[0]
    batch = min(prof.train_batch, n)
    for step in range(prof.train_steps):
        g = step_generator(seed, "oc-train", step)
        idx = torch.randperm(n, generator=g)[:batch]
        small = patches[idx]
        neg = shuffled_negatives(small, generator=g)            # another image as p-
        is_real = torch.rand(batch, generator=g) < 0.5
        big = resize(train_images[idx], IMAGE).to(device)
        small, neg, is_real = small.to(device), neg.to(device), is_real.to(device)
        with torch.no_grad():
            z_l = model.local_net(normalize(small))
            z_neg = model.local_net(normalize(neg))
        z_g = model.global_net(normalize(big), torch.ones(batch, 1, IMAGE, IMAGE, device=device))
        z_star = torch.where(is_real[:, None], z_l, z_neg)
        loss, parts = joint_loss(z_l, z_g, model.head.logits(z_star, z_g), is_real, prof.lambda_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _log_line(log, "train", step + 1, parts)


def train_one_class(run_dir: str | Path, split: OneClassSplit, profile: str | Profile | None = None,
                    teacher: str | None = "auto", seed: int = 0, resume: bool = True,
                    device: str | torch.device | None = None, progress: bool = False) -> Path:
    """Train Local-Net, Global-Net and the DAD head on the normal class of `split`.

    Returns the run folder (RUN/glance.pt, `load_model(run)`). With resume=True an existing model
    is returned as is.
    """
    # one-class runs follow the paper's Global-Net recipe (Tab. 2, raw targets, plain Eq. 11):
    # the whole image is the "patch" here, so there is no hole position to give (context_train.py)
    prof = get_profile(profile, deviations=PAPER)
    teacher, _ = resolve_teacher(teacher, prof)
    device, run_dir = resolve_device(device), Path(run_dir)
    if resume and (run_dir / "glance.pt").exists():
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    lrs = learning_rates(prof)
    config = {"task": "one-class", "profile": prof.to_dict(), "teacher": teacher, "seed": seed,
              "n_train": int(split.train.shape[0]), "learning_rates": lrs, "package_version": __version__}
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(seed)
    model = Glance(prof).to(device)
    tch = load_teacher(teacher, prof.teacher_input, seed=seed).to(device)
    natural = _natural_images(prof.distill_source) if prof.distill_steps else None
    patches = resize(split.train, PATCH)  # I_L of every training image (small: N x 3 x 33 x 33)
    with open(run_dir / "log.jsonl", "w") as log:
        _local_phases(model, tch, natural, patches, prof, lrs["finetune"], seed, device, log)
        _global_phase(model, split.train, patches, prof, lrs, seed, device, log)
    save_model(run_dir / "glance.pt", model.cpu(), config)
    return run_dir


@torch.no_grad()
def score_images(model: Glance, images: torch.Tensor, batch: int = 64,
                 device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(s_IAD, s_DAD) per image `(N,)` each, for images `(N,3,h,w)` in [0,1]."""
    device = torch.device(device) if device else next(model.parameters()).device
    model.eval()
    s_iad, s_dad = [], []
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch]
        z_l = model.local_net(normalize(resize(x, PATCH).to(device)))
        big = resize(x, IMAGE).to(device)
        z_g = model.global_net(normalize(big), torch.ones(x.shape[0], 1, IMAGE, IMAGE, device=device))
        s_iad.append(iad_score(z_l, z_g).float().cpu())
        s_dad.append(dad_score(model.head, z_l, z_g).float().cpu())
    return torch.cat(s_iad), torch.cat(s_dad)


def evaluate_one_class(run: str | Path, split: OneClassSplit,
                       lambdas=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0), device=None) -> dict:
    """Image AUROC of Eq. 13 on the test set for several lambda_s -> {lambda_s: auroc}, plus
    the raw scores under "s_iad", "s_dad"."""
    model = load_model(run, device or "cpu")
    s_iad, s_dad = score_images(model, split.test, device=device)
    labels = split.test_labels.numpy()
    out = {"s_iad": s_iad.numpy(), "s_dad": s_dad.numpy(), "auroc": {}}
    for lam in lambdas:
        s = lam * s_iad + (1 - lam) * s_dad
        out["auroc"][float(lam)] = image_auroc(labels, s.numpy()) if np.isfinite(s.numpy()).all() else None
    return out
