"""Run profiles: how long to train and how finely to score (supplementary Sec. C.1 for `paper`).

    smoke  seconds on a CPU; for CI and for checking that everything runs. Coarse 6x6 grid.
    cpu    minutes on 2 CPU cores; one synthetic category trains and evaluates in <= 10 min.
    colab  one GPU (a Colab T4), <= 15 min per chapter.
    paper  the supplementary's schedule: 50K + 50K Local-Net steps, 200K Global-Net steps.

The short profiles (smoke, cpu, colab) take a few to a few thousand steps instead of 200K, so
they train Global-Net our way (`SHORT` below; context_train.py, README "Global-Net: the paper's
recipe and ours"): the "centred" architecture, standardised targets, many holes per image, a
warm-up + cosine schedule, larger learning rates for Global-Net (1e-3) and the DAD head (1e-3;
the paper's 1e-5 barely moves the head in 1000 steps: its loss stays at ln 2), the hardest holes
weighted up early and real patches from elsewhere as DAD negatives, and the whitened,
nearest-residual s_IAD (heads.py). `paper` keeps the supplementary's recipe and rates.

Choose with an argument or the GLANCE_PROFILE environment variable; `auto` (the default) is
`colab` when CUDA is available and `cpu` otherwise.
"""
from __future__ import annotations

import ast
import os
from dataclasses import asdict, dataclass, fields, replace

import torch

from .global_net import ARCHS


@dataclass(frozen=True)
class Profile:
    name: str
    distill_steps: int          # Local-Net distillation on natural images (ImageNet in the paper)
    distill_batch: int
    finetune_steps: int         # Local-Net fine-tuning on the category's training images
    finetune_batch: int
    train_steps: int            # Global-Net + DAD head, Local-Net frozen (Eq. 10)
    train_batch: int
    grid_per_side: int = 20     # raster grid at inference (20 x 20 in the supplementary)
    teacher_input: int = 64     # side the 33x33 patch is resized to for ResNet-18
    default_teacher: str = "imagenet"
    distill_source: str = "sklearn"
    checkpoint_every: int = 100
    lr_local: float = 2e-4      # supplementary Sec. C.1
    lr_global: float = 1e-4
    lr_head: float = 1e-5
    lambda_k: float = 1.0
    lambda_c: float = 1.0
    lambda_t: float = 0.01
    lambda_s: float = 0.8
    idw_power: float = 5.0
    score_chunk: int = 48       # (image, patch) pairs per scoring batch (CPU caches like ~50)
    synthetic: tuple = (("n_train", 60), ("n_test_good", 8), ("n_test_per_defect", 6))
    # How Global-Net + DAD head are trained (context_train.py). The paper's way is the default
    # of this dataclass and of the `paper` profile: Tab. 2 as drawn, raw targets, one hole per
    # image (train_batch pairs a step). The short profiles use our measured deviations.
    global_arch: str = "paper"  # "paper" (supp. Tab. 2) | "coords" (+ the hole's position) | "centred"
    standardize: bool = False   # Z_l standardised per dimension (FeatureScaler) in Eq. 7/11
    holes_per_image: int = 0    # 0: one hole per image (paper); > 0: that many per image a step
    lattice_stride: int = 4     # hole corners on multiples of this (holes_per_image > 0)
    dad_holes: int = 32         # holes a step that also train the DAD head (holes_per_image > 0)
    whiten_iad: bool = False    # our whitened Eq. 11 (heads.ResidualWhitener), fitted after training
    nearest_iad: bool = False   # our nearest-residual Eq. 11 (heads.ResidualBank), filled after training
    calibrate_dad: bool = False  # our calibrated Eq. 12: s_DAD minus that of the nearest bank residual's
                                 # training patch (heads.ResidualBank.calibrate); needs nearest_iad
    lr_warmup: float = 0.0      # fraction of train_steps with a linear warm-up, then cosine decay;
                                # 0: constant learning rates (paper)
    stain_radius: tuple = (2.0, 0.0)  # radius range of the DAD negatives' stain in px (0: P/5);
    stain_min_opacity: float = 0.5    # the paper says "small" only (stains.py)
    context_stains: int = 0     # > 0: Global-Net's input images get up to that many random stains
                                # while its targets stay clean (stains.context_stains); 0: paper
    context_stain_grey: bool = False  # True: each context stain one grey level instead of a random
                                # colour (random colours taught Global-Net to ignore colour: fabric's ink)
    context_shift: int = 0      # > 0: Global-Net's input images move by up to that many px
                                # (context_train.shifted_holes); 0: paper
    shift_below_layout_r2: float = 0.5  # ... but only when the layout varies: the per-position mean
                                # explains less than this of the training targets (layout_r2)
    mismatch_negatives: float = 0.0  # > 0: that share of the DAD negatives is the real patch of
                                # another position of the same image (context_train.context_step); 0: paper
    hard_holes_gamma: float = 0.0  # > 0: Eq. 7's batch mean weighted by each hole's error to this
                                # power (losses.joint_loss) during the first hard_holes_until of the
    hard_holes_until: float = 0.5  # Global-Net steps (a fraction of train_steps); gamma 0: paper

    def stain_kwargs(self) -> dict:
        """Keyword arguments of stains.add_stains for this profile's DAD negatives."""
        lo, hi = self.stain_radius
        return dict(min_radius=lo, max_radius=hi or None, min_opacity=self.stain_min_opacity)

    def to_dict(self) -> dict:
        return asdict(self)


# our deviations for the short schedules (context_train.py, global_net.py; measured in
# benchmarks/accuracy.py): the hole's position, standardised targets, many holes per image, and
# s_IAD as the distance of the whitened residual to the nearest normal training residual, and
# larger, more opaque stains for the DAD negatives (stains.py), and up to two random stains in
# Global-Net's input images with clean targets (stains.context_stains). Measured on cable
# (seed-1 Local-Net, 8 images x 16 holes x 1700 steps): without the context stains PRO 0.787,
# R^2 0.798; with them 0.966, 0.787 -- an anomaly elsewhere in the image no longer shifts every
# prediction (normal pixels of swapped-core images had median s_IAD 1.03 against 0.13).
# The 8-px shifts of Global-Net's training images (context_train.shifted_holes) apply only where the
# layout varies (context_train.layout_r2 < 0.5 on the training targets: fabric -0.07, magnetic
# tiles 0.06; circuit 0.70, cable 0.78, tire 0.89): fabric's test R^2 -0.24 -> 0.73, while on
# circuit they cost R^2 (same Local-Net, 1500 steps: no shift 0.906, 4 px 0.805, 8 px 0.731).
# Two more (README "Measured results", `benchmarks/side_by_side.py` against the same benchmark with
# both off): Eq. 7 weighted towards the worst-predicted holes for the first half of the schedule
# (losses.joint_loss, exponent 0.5; 1 kept circuit's Global-Net on the position prior), and DAD
# negatives that are real patches of another place of the same image (context_step). Together,
# fabric PRO 0.747 -> 0.911 (seed 1: 0.645 -> 0.853; missing dots 0.356 -> 0.957), so s_DAD
# helps there instead of costing; see the README for every set.
# global_arch="centred" (global_net.py: layers 2_1.. on a hole-centred window; "coords" before
# 1 Dec 2026): same Local-Nets, fabric R^2 0.653 / 0.732 -> 0.879 / 0.849 (PRO 0.743 / 0.886 ->
# 0.894 / 0.8999; coords sat on the constant guess for 400 steps on seed 0), circuit 0.869 -> 0.897,
# magnetic tiles seed 0 PRO 0.589 -> 0.597; README "Measured results" has both side by side.
# context_stain_grey and calibrate_dad (since 1 Dec 2026, both in one benchmark; README side by side):
# random-colour context stains taught Global-Net to ignore colour (fabric's wrong-ink dots: ink read
# from its layer 1_2 0.43, with grey stains 0.76); s_DAD minus that of the nearest normal residual's
# patch takes out s_DAD's false alarms on hard normal patches (fabric, tire).
SHORT = dict(global_arch="centred", standardize=True, holes_per_image=16, lr_warmup=0.1, whiten_iad=True,
             nearest_iad=True, calibrate_dad=True, stain_radius=(4.0, 8.0), stain_min_opacity=0.7,
             context_stains=2, context_stain_grey=True, context_shift=8, hard_holes_gamma=0.5,
             hard_holes_until=0.5, mismatch_negatives=1.0)

PROFILES = {
    "smoke": Profile("smoke", distill_steps=3, distill_batch=8, finetune_steps=3, finetune_batch=8,
                     train_steps=4, train_batch=4, grid_per_side=6, teacher_input=32,
                     default_teacher="random", checkpoint_every=2, score_chunk=36,
                     synthetic=(("n_train", 6), ("n_test_good", 2), ("n_test_per_defect", 1)),
                     **SHORT, lattice_stride=32),
    "cpu": Profile("cpu", distill_steps=150, distill_batch=32, finetune_steps=150, finetune_batch=16,
                   train_steps=1500, train_batch=8, grid_per_side=20, checkpoint_every=100,
                   score_chunk=48, lr_global=1e-3, lr_head=1e-3, **SHORT),
    "colab": Profile("colab", distill_steps=4000, distill_batch=64, finetune_steps=4000,
                     finetune_batch=16, train_steps=8000, train_batch=16, teacher_input=112,
                     distill_source="imagenette", checkpoint_every=500, score_chunk=400,
                     lr_global=1e-3, lr_head=1e-3, **{**SHORT, "holes_per_image": 32},
                     synthetic=(("n_train", 200), ("n_test_good", 16), ("n_test_per_defect", 10))),
    "paper": Profile("paper", distill_steps=50_000, distill_batch=64, finetune_steps=50_000,
                     finetune_batch=16, train_steps=200_000, train_batch=64, teacher_input=224,
                     distill_source="imagenette", checkpoint_every=2000, score_chunk=400,
                     synthetic=(("n_train", 200), ("n_test_good", 16), ("n_test_per_defect", 10))),
}


def profile_from_config(d: dict) -> Profile:
    """The Profile stored in a run's config.json (`Profile.to_dict`), overrides included; fields
    unknown to this version are ignored, missing ones take their defaults (older runs)."""
    names = {f.name for f in fields(Profile)}
    d = {k: v for k, v in d.items() if k in names}
    for key in ("synthetic", "stain_radius"):
        if key in d:
            d[key] = tuple(tuple(x) if isinstance(x, list) else x for x in d[key])
    return Profile(**d)


def resolve_name(name: str | None = None) -> str:
    """`name` or $GLANCE_PROFILE or `auto` -> a concrete profile name."""
    name = name or os.environ.get("GLANCE_PROFILE") or "auto"
    if name == "auto":
        return "colab" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of auto, {', '.join(PROFILES)}")
    return name


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The profile called `name` (see `resolve_name`), with optional field overrides."""
    prof = replace(PROFILES[resolve_name(name)], **overrides)
    if prof.global_arch not in ARCHS:
        raise ValueError(f"unknown Global-Net architecture {prof.global_arch!r}; expected one of {', '.join(ARCHS)}")
    if prof.calibrate_dad and not prof.nearest_iad:
        raise ValueError("calibrate_dad=True needs nearest_iad=True (s_DAD's baseline comes from the "
                         "nearest bank residual); set both or neither")
    for name, lo, hi in (("mismatch_negatives", 0.0, 1.0), ("hard_holes_until", 0.0, 1.0),
                         ("hard_holes_gamma", 0.0, float("inf"))):
        value = getattr(prof, name)
        if not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise ValueError(f"{name} must be a number in [{lo}, {hi}]; got {value!r}")
    return prof


def parse_overrides(items: list[str]) -> dict:
    """["train_steps=3000", "lr_global=2e-3"] -> {"train_steps": 3000, "lr_global": 0.002}, for
    `get_profile(name, **overrides)`. ValueError (one line) for a malformed item or a name that
    is not a Profile field."""
    names = {f.name for f in fields(Profile)}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in names:
            raise ValueError(f"{item!r}: expected FIELD=VALUE with FIELD one of {', '.join(sorted(names))}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f"{item!r}: {value!r} is not a Python literal (e.g. 3000, 2e-3, True)") from None
    return out
