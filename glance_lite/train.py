"""Training (paper Sec. 3.1-3.2, supplementary Sec. C.1), resumable and reproducible.

Three phases, each a plain loop of Adam steps:
  distill   Local-Net + decoder D imitate the teacher R on random 33x33 crops of natural images
            (ImageNet in the paper), loss Eq. 3 = lambda_k l_k (Eq. 1) + lambda_c l_c (Eq. 2);
  finetune  the same loss on crops of the category's training images;
  train     Local-Net frozen; Global-Net and the DAD head learn from random patches p of the
            training images and their stained copies p- (stains.py), loss Eq. 10.

Reproducibility: the randomness of step t of a phase comes from a generator seeded with
(seed, phase, t), so a run resumed from a checkpoint draws exactly the batches the uninterrupted
run would have drawn, and on CPU ends with the same weights.

A run folder holds: config.json, log.jsonl (one line of losses per step), checkpoint.pt (the
latest state, written atomically every `checkpoint_every` steps), local.pt (Local-Net after
pre-training) and glance.pt (the trained model).
"""
from __future__ import annotations

import json
import math
import zlib
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from . import __version__, checkpoint
from .devices import amp_dtype_for, resolve_device
from .data import distillation_images_or_offline, load_mvtec, random_crops
from .context_train import context_step, fit_prior, fit_residual_model, lattice, layout_r2, local_targets
from .losses import joint_loss, local_loss
from .model import Glance, save_model
from .patches import PatchGrid, crop, hole_masks, random_top_left
from .profiles import Profile, get_profile
from .stains import add_stains
from .teacher import Teacher, load_teacher, normalize

PHASES = ("distill", "finetune", "train")
RUN_FILES = ("config.json", "log.jsonl", "checkpoint.pt", "local.pt", "glance.pt")


class RunError(ValueError):
    """A run folder that cannot be used as asked (exists, mismatching config, ...)."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


def step_generator(seed: int, phase: str, step: int) -> torch.Generator:
    """The generator for one step: a pure function of (seed, phase, step)."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}/{phase}/{step}".encode()))


# ----------------------------------------------------------------------------- one step each
def local_step(model: Glance, teacher: Teacher, images: torch.Tensor, batch: int, g: torch.Generator,
               prof: Profile, device: torch.device) -> tuple[torch.Tensor, dict]:
    """Eq. 3 on `batch` random crops of `images` (N,3,H,W) in [0,1]."""
    p = normalize(random_crops(images, batch, 33, generator=g).to(device))
    z = model.local_net(p)
    return local_loss(model.decoder(z), teacher(p), z, prof.lambda_k, prof.lambda_c)


def hard_gamma(prof: Profile, step: int) -> float:
    """Eq. 7's weighting of the hardest holes at Global-Net step `step` (losses.joint_loss)."""
    return prof.hard_holes_gamma if step < prof.hard_holes_until * prof.train_steps else 0.0


def global_step(model: Glance, images: torch.Tensor, batch: int, g: torch.Generator,
                prof: Profile, device: torch.device, ctx: dict | None = None,
                step: int = 0) -> tuple[torch.Tensor, dict]:
    """Eq. 10 on `batch` training images. With `prof.holes_per_image` > 0, `batch` images x that
    many holes each (context_train.py; ctx holds the precomputed targets and positions), else
    `batch` random (image, patch) pairs as in the paper; half of the DAD pairs get the stained patch."""
    if prof.holes_per_image:
        return context_step(model, images, ctx["targets"], ctx["positions"], g, batch,
                            prof.holes_per_image, prof.dad_holes, prof.lambda_t, device, prof.stain_kwargs(),
                            prof.context_stains, ctx["shift"], prof.mismatch_negatives, hard_gamma(prof, step),
                            prof.context_stain_grey)
    idx = torch.randint(0, images.shape[0], (batch,), generator=g)
    size = images.shape[-1]
    tl = random_top_left(batch, size, 33, generator=g)
    imgs = images[idx]
    p = crop(imgs, tl.unsqueeze(1), 33)[:, 0]
    p_neg, _ = add_stains(p, generator=g, **prof.stain_kwargs())
    is_real = torch.rand(batch, generator=g) < 0.5  # p and p- are fed equiprobably (Sec. 3.2)
    imgs, p, p_neg, is_real = imgs.to(device), p.to(device), p_neg.to(device), is_real.to(device)
    with torch.no_grad():  # Local-Net is frozen in this phase
        z_l = model.local_net(normalize(p))
        z_neg = model.local_net(normalize(p_neg))
    z_g = model.global_net(normalize(imgs), hole_masks(tl, size, 33).to(device))
    z_star = torch.where(is_real[:, None], z_l, z_neg)
    return joint_loss(z_l, z_g, model.head.logits(z_star, z_g), is_real, prof.lambda_t, hard_gamma(prof, step))


# ----------------------------------------------------------------------------- the run folder
def prepare_context(model: Glance, images: torch.Tensor, prof: Profile, fresh: bool) -> dict:
    """Targets of context training (context_train.py); on a fresh start (not a resume) also fit
    the FeatureScaler (`prof.standardize`) and start the position prior (not in "paper")."""
    positions = lattice(images.shape[-1], 33, prof.lattice_stride)
    targets = local_targets(model.local_net, images, positions)
    if fresh and prof.standardize:
        model.scaler.fit(targets.float())
    if fresh and prof.global_arch != "paper":
        fit_prior(model.global_net, positions, model.scaler(targets.float().mean(0)))
    fixed = layout_r2(targets, model.scaler)  # shift only images whose layout varies (profiles.py)
    varies = math.isnan(fixed) or fixed < prof.shift_below_layout_r2  # NaN: one image, cannot tell
    shift = prof.context_shift if varies else 0
    return {"targets": targets, "positions": positions, "layout_r2": fixed, "shift": shift}


def lr_factor(prof: Profile, step: int) -> float:
    """Learning-rate multiplier at `step` of the train phase: linear warm-up over the first
    `lr_warmup` of the steps, then cosine decay to 0; 1 throughout when lr_warmup = 0 (paper)."""
    if prof.lr_warmup <= 0:
        return 1.0
    warm = max(1, round(prof.lr_warmup * prof.train_steps))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, prof.train_steps - warm)))


def _check_folder(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to touch an existing run unless asked to (nothing is written here)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"run folder {run_dir} exists and is not a folder")
    existing = [f for f in RUN_FILES if (run_dir / f).exists()]
    if existing and not (resume or overwrite):
        raise RunError(f"run folder {run_dir} already holds {', '.join(existing)}; pass --resume to "
                       f"continue it or --overwrite to start again")


def _make_folder(run_dir: Path, resume: bool, overwrite: bool) -> None:
    if overwrite and not resume:
        for f in RUN_FILES:
            (run_dir / f).unlink(missing_ok=True)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob("*.pt.*.tmp"):  # half-written checkpoints of a killed run
            stale.unlink()
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise RunError(f"cannot write to run folder {run_dir}: {err}") from err


def _truncate_log(log: Path, phase: str, step: int) -> None:
    """After a resume, drop log lines newer than the checkpoint (they will be redone)."""
    if not log.exists():
        return
    order = PHASES.index(phase)
    keep = [ln for ln in log.read_text().splitlines() if ln.strip()
            and (PHASES.index(json.loads(ln)["phase"]), json.loads(ln)["step"]) <= (order, step)]
    log.write_text("".join(ln + "\n" for ln in keep))


def _brief(value) -> str:
    """A config value for an error message: a profile by its name, anything else as is."""
    return repr(value["name"]) if isinstance(value, dict) and "name" in value else repr(value)


def train(run_dir: str | Path, data_root: str | Path, category: str, profile: str | Profile | None = None,
          teacher: str | None = None, seed: int = 0, resume: bool = False, overwrite: bool = False,
          device: str | torch.device | None = None, progress: bool = True,
          on_step: Callable[[str, int], None] | None = None, until: str = "train") -> Path:
    """Pre-train Local-Net (unless the run folder has local.pt) and train Global-Net + DAD head.

    Returns the path of RUN/glance.pt; with until="finetune", stops after Local-Net's
    pre-training and returns RUN/local.pt (Local-Net and its decoder; `model.load_local`), which
    a later call continues from. `on_step(phase, step)` is called after every completed step
    (tests use it to simulate an interruption).
    """
    if until not in ("finetune", "train"):
        raise ValueError(f"until must be 'finetune' or 'train'; got {until!r}")
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    teacher = teacher or prof.default_teacher
    device = resolve_device(device)
    run_dir = Path(run_dir)
    config = {"category": category, "data_root": str(data_root), "profile": prof.to_dict(),
              "teacher": teacher, "seed": seed, "package_version": __version__}
    config = json.loads(json.dumps(config))  # as it will read back from config.json
    _check_folder(run_dir, resume, overwrite)
    cfg_path = run_dir / "config.json"
    if resume and cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        diff = [k for k in ("category", "profile", "teacher", "seed") if old.get(k) != config[k]]
        if diff:
            was = ", ".join(f"{k} {_brief(old.get(k))} (this call: {_brief(config[k])})" for k in diff)
            raise RunError(f"cannot resume {run_dir}: it was trained with {was}; pass --overwrite "
                           f"to retrain it, or choose another output folder")
    # a finished run answers both questions: until="finetune" wants Local-Net (local.pt) even
    # when the whole model is there (chapter 2 run again after chapter 4)
    if until == "finetune" and (run_dir / "local.pt").exists() and resume:
        return run_dir / "local.pt"
    if (run_dir / "glance.pt").exists() and resume:
        return run_dir / "glance.pt"

    # Everything that can fail on bad input fails here, before any training.
    train_set = load_mvtec(data_root, category, "train")
    # --overwrite (without --resume) starts again, so an old local.pt must not be reused
    need_local = (overwrite and not resume) or not (run_dir / "local.pt").exists()
    tch = load_teacher(teacher, prof.teacher_input, seed=seed).to(device) if need_local else None
    natural = None
    if need_local and prof.distill_steps:  # offline, a downloaded source falls back (announced)
        natural, config["distill_source"] = distillation_images_or_offline(prof.distill_source)
    elif resume and cfg_path.exists() and "distill_source" in old:  # Local-Net of the earlier call
        config["distill_source"] = old["distill_source"]
    _make_folder(run_dir, resume, overwrite)
    cfg_path.write_text(json.dumps(config, indent=2))

    torch.manual_seed(seed)
    model = Glance(arch=prof.global_arch).to(device)
    state = {"phase": PHASES[0], "step": 0}
    ckpt_path = run_dir / "checkpoint.pt"
    if not need_local:
        ck = checkpoint.load(run_dir / "local.pt")
        checkpoint.load_state(model.local_net, ck["models"]["local_net"], run_dir / "local.pt", "Local-Net")
        if "decoder" in ck["models"]:  # local.pt files since the decoder is saved with Local-Net
            checkpoint.load_state(model.decoder, ck["models"]["decoder"], run_dir / "local.pt", "decoder")
        state = {"phase": "train", "step": 0}
    opt_state = None
    if resume and ckpt_path.exists():
        ck = checkpoint.load(ckpt_path)
        checkpoint.load_state(model, ck["models"]["glance"], ckpt_path, "Glance")
        state, opt_state = {"phase": ck["phase"], "step": ck["step"]}, ck["optim"]
    _truncate_log(run_dir / "log.jsonl", state["phase"], state["step"])

    images = {"distill": natural, "finetune": train_set.images, "train": train_set.images}
    steps = {"distill": prof.distill_steps, "finetune": prof.finetune_steps, "train": prof.train_steps}
    batch = {"distill": prof.distill_batch, "finetune": prof.finetune_batch, "train": prof.train_batch}
    for phase in PHASES[PHASES.index(state["phase"]):PHASES.index(until) + 1]:
        start = state["step"] if phase == state["phase"] else 0
        ctx = None
        if phase == "train":
            model.local_net.requires_grad_(False).eval()
            if prof.holes_per_image:
                ctx = prepare_context(model, images[phase], prof, fresh=start == 0)
                config["context"] = {"layout_r2": round(ctx["layout_r2"], 4), "context_shift": ctx["shift"]}
                cfg_path.write_text(json.dumps(config, indent=2))  # what the run decided, for the reader
            opt = torch.optim.Adam([{"params": model.global_net.parameters(), "lr": prof.lr_global},
                                    {"params": model.head.parameters(), "lr": prof.lr_head}],
                                   betas=(0.9, 0.999))
        else:
            opt = torch.optim.Adam(list(model.local_net.parameters()) + list(model.decoder.parameters()),
                                   lr=prof.lr_local, betas=(0.9, 0.999))
        if opt_state is not None and phase == state["phase"]:
            opt.load_state_dict(opt_state)

        def save_ckpt(step: int) -> None:
            checkpoint.save(ckpt_path, {"config": config, "phase": phase, "step": step,
                                        "models": {"glance": model.state_dict()},
                                        "optim": opt.state_dict()})

        bar = tqdm(range(start, steps[phase]), desc=f"{phase} ({category})", disable=not progress,
                   initial=start, total=steps[phase], leave=False)
        with open(run_dir / "log.jsonl", "a") as log:
            for step in bar:
                g = step_generator(seed, phase, step)
                if phase == "train":
                    for group, lr in zip(opt.param_groups, (prof.lr_global, prof.lr_head)):
                        group["lr"] = lr * lr_factor(prof, step)
                    loss, parts = global_step(model, images[phase], batch[phase], g, prof, device, ctx, step)
                else:
                    loss, parts = local_step(model, tch, images[phase], batch[phase], g, prof, device)
                if not math.isfinite(loss.item()):
                    last = checkpoint.load(ckpt_path)["step"] if ckpt_path.exists() else None
                    raise TrainingDiverged(f"the {phase} loss became {loss.item()} at step {step}; "
                                           f"stopped. Last good checkpoint: {ckpt_path} "
                                           f"({'step ' + str(last) if last is not None else 'none yet'})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                log.write(json.dumps({"phase": phase, "step": step + 1, **parts}) + "\n")
                bar.set_postfix({k: f"{v:.4g}" for k, v in parts.items()})
                if (step + 1) % prof.checkpoint_every == 0 or step + 1 == steps[phase]:
                    log.flush()
                    save_ckpt(step + 1)
                if on_step is not None:
                    on_step(phase, step + 1)
        bar.close()
        if phase == "finetune":
            checkpoint.save(run_dir / "local.pt", {"config": config, "phase": "finetune", "step": steps[phase],
                                                  "models": {"local_net": model.local_net.state_dict(),
                                                             "decoder": model.decoder.state_dict()},
                                                  "optim": None})
    if until == "finetune":
        return run_dir / "local.pt"
    if prof.whiten_iad or prof.nearest_iad:  # our Eq. 11 / 12 options (heads.py), from training patches
        fit_residual_model(model, images["train"], PatchGrid(per_side=prof.grid_per_side),
                           whiten=prof.whiten_iad, bank=prof.nearest_iad, chunk=prof.score_chunk,
                           dad=prof.calibrate_dad, amp_dtype=amp_dtype_for(device))  # as scoring's auto
    save_model(run_dir / "glance.pt", model.cpu(), config)
    return run_dir / "glance.pt"
