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
pre-training) and glance.pt (the trained model, `model.load_model(run)`).
"""
from __future__ import annotations

import json
import math
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from . import __version__, checkpoint
from .devices import amp_dtype_for, resolve_device
from .data import distillation_images_or_offline, load_mvtec, random_crops
from .early_stop import HoldoutCheck, holdout_check, holdout_split
from .context_train import (context_step, fit_prior, fit_residual_model, hard_gamma, lattice, layout_r2,
                            local_targets)
from .losses import joint_loss, local_loss
from .model import Glance, save_model
from .patches import PATCH_SIZE, crop, hole_masks, random_top_left
from .profiles import Profile, get_profile
from .stains import add_stains, context_stains
from .teacher import Teacher, load_teacher, normalize, resolve_teacher

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
    p = normalize(random_crops(images, batch, PATCH_SIZE, generator=g).to(device))
    z = model.local_net(p)
    return local_loss(model.decoder(z), teacher(p), z, prof.lambda_k, prof.lambda_c)


def global_step(model: Glance, images: torch.Tensor, g: torch.Generator, prof: Profile,
                device: torch.device, ctx: dict | None = None, step: int = 0) -> tuple[torch.Tensor, dict]:
    """Eq. 10 on `prof.train_batch` training images: with hole_sampling "lattice", that many images
    x `holes_per_image` holes each (context_train.py; ctx from `prepare_context`); with "paper",
    that many random (image, patch) pairs as in the paper, half of them with the stained patch."""
    dev, batch = prof.deviations, prof.train_batch
    gamma = hard_gamma(dev, step, prof.train_steps)
    if dev.hole_sampling == "lattice":
        return context_step(model, images, ctx, g, batch, dev, prof.lambda_t, device, gamma)
    idx = torch.randint(0, images.shape[0], (batch,), generator=g)
    size = images.shape[-1]
    tl = random_top_left(batch, size, PATCH_SIZE, generator=g)
    imgs = images[idx]
    p = crop(imgs, tl.unsqueeze(1), PATCH_SIZE)[:, 0]
    p_neg, _ = add_stains(p, generator=g, **dev.stain_kwargs())
    is_real = torch.rand(batch, generator=g) < 0.5  # p and p- are fed equiprobably (Sec. 3.2)
    # the deviations this sampling can take (none in PAPER: identity scaler, no stain drawn);
    # mismatch negatives need other holes of the same image, so they act with "lattice" only
    imgs = context_stains(imgs, dev.context_stains, g, grey=dev.context_stain_grey)
    imgs, p, p_neg, is_real = imgs.to(device), p.to(device), p_neg.to(device), is_real.to(device)
    with torch.no_grad():  # Local-Net is frozen in this phase
        z_l = model.scaler(model.local_net(normalize(p)))
        z_neg = model.scaler(model.local_net(normalize(p_neg)))
    z_g = model.global_net(normalize(imgs), hole_masks(tl, size, PATCH_SIZE).to(device))
    z_star = torch.where(is_real[:, None], z_l, z_neg)
    return joint_loss(z_l, z_g, model.head.logits(z_star, z_g), is_real, prof.lambda_t, gamma)


def prepare_context(model: Glance, images: torch.Tensor, prof: Profile, fresh: bool) -> dict:
    """Targets of context training (context_train.py); on a fresh start (not a resume) also fit
    the FeatureScaler (`standardize`) and start the position prior (not in "paper")."""
    dev = prof.deviations
    positions = lattice(images.shape[-1], PATCH_SIZE, dev.lattice_stride)
    targets = local_targets(model.local_net, images, positions)
    if fresh and dev.standardize:
        model.scaler.fit(targets.float())
    if fresh and dev.global_arch != "paper":
        fit_prior(model.global_net, positions, model.scaler(targets.float().mean(0)))
    fixed = layout_r2(targets, model.scaler)  # shift only images whose layout varies
    varies = math.isnan(fixed) or fixed < dev.shift_below_layout_r2  # NaN: one image, cannot tell
    shift = dev.context_shift if varies else 0
    return {"targets": targets, "positions": positions, "layout_r2": fixed, "shift": shift}


def lr_factor(prof: Profile, step: int) -> float:
    """Learning-rate multiplier at `step` of the train phase: linear warm-up over the first
    `lr_warmup` of the steps, then cosine decay to 0; 1 throughout when lr_warmup = 0 (paper)."""
    warmup = prof.deviations.lr_warmup
    if warmup <= 0:
        return 1.0
    warm = max(1, round(warmup * prof.train_steps))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, prof.train_steps - warm)))


# ----------------------------------------------------------------------------- the run folder
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


def _check_resume(run_dir: Path, config: dict) -> dict:
    """The config.json of the run being resumed ({} if none); RunError if it was trained otherwise."""
    path = run_dir / "config.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    diff = [k for k in ("category", "profile", "teacher", "seed") if old and old.get(k) != config[k]]
    if diff:
        was = ", ".join(f"{k} {_brief(old.get(k))} (this call: {_brief(config[k])})" for k in diff)
        raise RunError(f"cannot resume {run_dir}: it was trained with {was}; pass --overwrite "
                       f"to retrain it, or choose another output folder")
    return old


def _training_images(data: str | Path | torch.Tensor, category: str) -> tuple[torch.Tensor, str | None]:
    """The category's training images `(N,3,S,S)` from an MVTec-layout folder, or the tensor
    itself -> (images, the data root for config.json; None for in-memory images)."""
    if isinstance(data, torch.Tensor):
        if data.dim() != 4 or data.shape[1] != 3 or data.shape[-1] != data.shape[-2]:
            raise ValueError(f"training images must be a tensor (N, 3, S, S) in [0, 1]; got {tuple(data.shape)}")
        return data.float(), None
    return load_mvtec(data, category, "train").images, str(data)


@dataclass
class _Run:
    """What every phase of one `train` call needs."""

    run_dir: Path
    config: dict
    prof: Profile
    seed: int
    device: torch.device
    progress: bool
    on_step: Callable[[str, int], None] | None
    check: HoldoutCheck | None = None  # the Global-Net phase's early stopping (early_stop.py)

    def write_config(self) -> None:
        (self.run_dir / "config.json").write_text(json.dumps(self.config, indent=2))


def _initial_state(run: _Run, model: Glance, need_local: bool, resume: bool) -> tuple[dict, dict | None]:
    """Load local.pt (when Local-Net is not pre-trained again) and, on a resume, checkpoint.pt
    into `model` -> (where to start {"phase", "step", "early_stop"}, the optimiser state or None)."""
    state, opt_state = {"phase": PHASES[0], "step": 0}, None
    if not need_local:
        ck = checkpoint.load(run.run_dir / "local.pt")
        checkpoint.load_state(model.local_net, ck["models"]["local_net"], run.run_dir / "local.pt", "Local-Net")
        checkpoint.load_state(model.decoder, ck["models"]["decoder"], run.run_dir / "local.pt", "decoder")
        state = {"phase": "train", "step": 0}
    ckpt_path = run.run_dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        ck = checkpoint.load(ckpt_path)
        checkpoint.load_state(model, ck["models"]["glance"], ckpt_path, "Glance")
        state, opt_state = {"phase": ck["phase"], "step": ck["step"], "early_stop": ck.get("early_stop")}, ck["optim"]
    return state, opt_state


def _optimizer(model: Glance, prof: Profile, phase: str) -> torch.optim.Adam:
    """Adam of supp. Sec. C.1: Local-Net + D before the train phase, Global-Net + head in it."""
    if phase == "train":
        return torch.optim.Adam([{"params": model.global_net.parameters(), "lr": prof.lr_global},
                                 {"params": model.head.parameters(), "lr": prof.lr_head}], betas=(0.9, 0.999))
    return torch.optim.Adam(list(model.local_net.parameters()) + list(model.decoder.parameters()),
                            lr=prof.lr_local, betas=(0.9, 0.999))


def _run_phase(run: _Run, model: Glance, phase: str, start: int, step_fn: Callable, opt) -> None:
    """Steps `start`.. of one phase: Adam steps of `step_fn(g, step)` -> (loss, parts), logged to
    log.jsonl, checkpointed every `checkpoint_every` steps and at the end. The seconds these steps
    took go to config.json's "seconds" (a resumed phase: those of the last call's steps). In the
    train phase `run.check` (if any) measures R^2 on held-back images and may end it early."""
    prof, ckpt_path, t0 = run.prof, run.run_dir / "checkpoint.pt", time.perf_counter()
    steps = getattr(prof, f"{phase}_steps")
    check = run.check if phase == "train" else None
    last = lambda: steps if check is None else check.end(steps)  # noqa: E731 - moves when the rule stops it
    begun = start < last()  # False: an earlier call of this run finished the phase
    bar = tqdm(range(start, steps), desc=f"{phase} ({run.config['category']})", disable=not run.progress,
               initial=start, total=steps, leave=False)
    with open(run.run_dir / "log.jsonl", "a") as log:
        for step in bar:
            if step >= last():
                break
            if phase == "train":
                for group, lr in zip(opt.param_groups, (prof.lr_global, prof.lr_head)):
                    group["lr"] = lr * lr_factor(prof, step)
            loss, parts = step_fn(step_generator(run.seed, phase, step), step)
            if not math.isfinite(loss.item()):
                last = checkpoint.load(ckpt_path)["step"] if ckpt_path.exists() else None
                raise TrainingDiverged(f"the {phase} loss became {loss.item()} at step {step}; "
                                       f"stopped. Last good checkpoint: {ckpt_path} "
                                       f"({'step ' + str(last) if last is not None else 'none yet'})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if check is not None and check.due(step + 1):
                parts["r2_holdout"] = check.measure(model)
                check.update(step + 1, parts["r2_holdout"])
            log.write(json.dumps({"phase": phase, "step": step + 1, **parts}) + "\n")
            bar.set_postfix({k: f"{v:.4g}" for k, v in parts.items()})
            if (step + 1) % prof.checkpoint_every == 0 or step + 1 == last():
                log.flush()
                checkpoint.save(ckpt_path, {"config": run.config, "phase": phase, "step": step + 1,
                                            "models": {"glance": model.state_dict()}, "optim": opt.state_dict(),
                                            "early_stop": check.state_dict() if check is not None else None})
            if run.on_step is not None:
                run.on_step(phase, step + 1)
    bar.close()
    if check is not None:
        run.config["early_stop"] = check.record(steps)
        run.write_config()
    if begun:  # a phase finished by an earlier call keeps that call's time
        run.config.setdefault("seconds", {})[phase] = round(time.perf_counter() - t0, 3)  # smoke: milliseconds
        run.write_config()


def _phase_step(run: _Run, model: Glance, phase: str, images: torch.Tensor, teacher: Teacher | None,
                start: int, stop_state: dict | None = None) -> Callable:
    """The step function of `phase` (`_run_phase`); for the train phase, its targets first and,
    with early stopping, `run.check` on the held-back images (restored from `stop_state`)."""
    prof, device = run.prof, run.device
    if phase != "train":
        batch = getattr(prof, f"{phase}_batch")
        return lambda g, step: local_step(model, teacher, images, batch, g, prof, device)
    model.local_net.requires_grad_(False).eval()
    keep, held = holdout_split(len(images), prof.stop_holdout if prof.stop_check_every else 0)
    if prof.stop_check_every and not len(held):
        print(f"NOTE: early stopping off: {len(images)} training images, it needs {4 * prof.stop_holdout} or more "
              f"(stop_holdout={prof.stop_holdout} held back); training all {prof.train_steps} steps")
    images, held_images = images[keep], images[held]
    dev, ctx = prof.deviations, None
    if dev.hole_sampling == "lattice" or dev.standardize or dev.global_arch != "paper":
        ctx = prepare_context(model, images, prof, fresh=start == 0)  # "paper" sampling: scaler, prior
        shift = ctx["shift"] if dev.hole_sampling == "lattice" else 0
        run.config["context"] = {"layout_r2": round(ctx["layout_r2"], 4), "context_shift": shift}
        run.write_config()  # what the run decided, for the reader
    if len(held):  # after prepare_context: the scaler is fitted
        run.check = holdout_check(model, held_images, held, prof, device, ctx, stop_state)
        run.config["early_stop"] = run.check.record(prof.train_steps)
        run.write_config()
    ctx = ctx if dev.hole_sampling == "lattice" else None  # the targets serve the lattice only
    return lambda g, step: global_step(model, images, g, prof, device, ctx, step)


def _finish(run: _Run, model: Glance, images: torch.Tensor) -> None:
    """Our Eq. 11 / 12 options (heads.py) fitted on training patches, then RUN/glance.pt."""
    dev = run.prof.deviations
    if dev.whiten_iad or dev.nearest_iad or dev.position_image_score:
        fit_residual_model(model, images, model.grid, whiten=dev.whiten_iad, bank=dev.nearest_iad,
                           chunk=run.prof.score_chunk, dad=dev.calibrate_dad,
                           amp_dtype=amp_dtype_for(run.device),  # as scoring's "auto"
                           position_norm=dev.position_image_score)
    save_model(run.run_dir / "glance.pt", model.cpu(), run.config)


def train(data: str | Path | torch.Tensor, category: str, run_dir: str | Path, *,
          profile: str | Profile | None = None, teacher: str | None = "auto", seed: int = 0,
          resume: bool = False, overwrite: bool = False, device: str | torch.device | None = None,
          progress: bool = True, on_step: Callable[[str, int], None] | None = None,
          until: str = "train") -> Path:
    """Pre-train Local-Net (unless the run folder has local.pt), then train Global-Net + DAD head.

    data: a dataset root in MVTec AD layout (CATEGORY/train/good) or the training images
    themselves `(N,3,S,S)` in [0,1] (`category` then only names the run). teacher: see
    teacher.resolve_teacher ("auto" falls back to an untrained one offline, announced).
    Returns the run folder (`load_model(run)`); until="finetune" stops after Local-Net's
    pre-training (RUN/local.pt, `load_local(run)`), which a later call continues from.
    `on_step(phase, step)` is called after every completed step.
    """
    if until not in ("finetune", "train"):
        raise ValueError(f"until must be 'finetune' or 'train'; got {until!r}")
    prof, run_dir, device = get_profile(profile), Path(run_dir), resolve_device(device)
    teacher, _ = resolve_teacher(teacher, prof)
    config = json.loads(json.dumps({"category": category, "data_root": None, "profile": prof.to_dict(),
                                    "teacher": teacher, "seed": seed, "package_version": __version__}))
    _check_folder(run_dir, resume, overwrite)
    old = _check_resume(run_dir, config) if resume else {}
    # a finished run answers both questions: until="finetune" wants local.pt even when glance.pt is there
    if resume and (run_dir / ("local.pt" if until == "finetune" else "glance.pt")).exists():
        return run_dir
    images, config["data_root"] = _training_images(data, category)  # bad input fails before training
    need_local = (overwrite and not resume) or not (run_dir / "local.pt").exists()
    tch = load_teacher(teacher, prof.teacher_input, seed=seed).to(device) if need_local else None
    natural = None
    if need_local and prof.distill_steps:  # offline, a downloaded source falls back (announced)
        natural, config["distill_source"] = distillation_images_or_offline(prof.distill_source)
    elif "distill_source" in old:  # Local-Net of the earlier call
        config["distill_source"] = old["distill_source"]
    if "seconds" in old:  # the phases an earlier call of this run trained
        config["seconds"] = old["seconds"]
    _make_folder(run_dir, resume, overwrite)
    run = _Run(run_dir, config, prof, seed, device, progress, on_step)
    run.write_config()

    torch.manual_seed(seed)
    model = Glance(prof).to(run.device)
    state, opt_state = _initial_state(run, model, need_local, resume)
    _truncate_log(run_dir / "log.jsonl", state["phase"], state["step"])
    for phase in PHASES[PHASES.index(state["phase"]):PHASES.index(until) + 1]:
        start = state["step"] if phase == state["phase"] else 0
        step_fn = _phase_step(run, model, phase, natural if phase == "distill" else images, tch, start,
                              state.get("early_stop") if phase == state["phase"] else None)
        opt = _optimizer(model, prof, phase)
        if opt_state is not None and phase == state["phase"]:
            opt.load_state_dict(opt_state)
        _run_phase(run, model, phase, start, step_fn, opt)
        if phase == "finetune":
            checkpoint.save(run_dir / "local.pt", {"config": config, "phase": "finetune", "step": prof.finetune_steps,
                                                  "models": {"local_net": model.local_net.state_dict(),
                                                             "decoder": model.decoder.state_dict()},
                                                  "optim": None})
    if until == "train":
        _finish(run, model, images)
    return run_dir
