"""Run profiles: how long to train, how finely to score, and which recipe (supp. Sec. C.1).

    smoke  seconds on a CPU; for CI and for checking that everything runs. Coarse 6x6 grid.
    cpu    minutes on 2 CPU cores per synthetic category.
    colab  one GPU (a Colab T4), <= 15 min per chapter.
    paper  the supplementary's schedule: 50K + 50K Local-Net steps, 200K Global-Net steps.

A `Profile` holds what a user tunes (the schedule, the teacher, the scoring) and, as one group,
`Profile.deviations`: our deviations from the paper's Global-Net recipe (`Deviations`). Two
presets exist: `PAPER` (the paper exactly; the `paper` profile) and `SHORT` (what a schedule of
a few thousand steps needs; smoke, cpu, colab). docs/deviations.md explains each deviation and
the experiment behind it.

Choose with an argument or the GLANCE_PROFILE environment variable; `auto` (the default) is
`colab` when CUDA is available and `cpu` otherwise.
"""
from __future__ import annotations

import ast
import os
from dataclasses import asdict, dataclass, field, fields, replace

import torch

from .global_net import ARCHS
from .idw import IDW_POWER
from .scoring import LAMBDA_S

HOLE_SAMPLING = ("paper", "lattice")


@dataclass(frozen=True)
class Deviations:
    """Our deviations from the paper's Global-Net + DAD recipe (docs/deviations.md, one section
    each). The defaults are the paper's (`PAPER`); `SHORT` switches them on."""

    global_arch: str = "paper"         # "paper" (supp. Tab. 2) | "coords" (+ the hole's position) |
                                       # "centred" (coords on a hole-centred map), global_net.py
    standardize: bool = False          # Z_l standardised per dimension in Eq. 7/11 (FeatureScaler)
    hole_sampling: str = "paper"       # "paper": one random hole per image and sample (train.global_step);
                                       # "lattice": holes_per_image holes per image (context_train.py)
    holes_per_image: int = 16          # "lattice": holes a training image gets per step
    lattice_stride: int = 4            # "lattice": hole corners on multiples of this (px)
    dad_holes: int = 32                # "lattice": holes a step that also train the DAD head
    lr_warmup: float = 0.0             # share of the Global-Net steps with a linear warm-up, then cosine
                                       # decay (train.lr_factor); 0 = constant learning rates
    whiten_iad: bool = False           # Eq. 11 on the whitened residual (heads.ResidualWhitener)
    nearest_iad: bool = False          # Eq. 11 as the distance to the nearest normal residual (ResidualBank)
    calibrate_dad: bool = False        # Eq. 12 minus the s_DAD of that nearest residual's patch; needs nearest_iad
    position_image_score: bool = False  # image score: largest per-position z-score (image_score.py), not
                                       # the map's maximum (supp. D.1)
    stain_radius: tuple = (2.0, 6.6)   # radius range (px) of the DAD negatives' stains; the paper says
    stain_min_opacity: float = 0.5     # "small" only, so (2, P/5) and 0.5 are our reading of it
    context_stains: int = 0            # up to this many stains on Global-Net's input images, targets clean
    context_stain_grey: bool = False   # each context stain one grey level instead of a random colour
    context_shift: int = 0             # Global-Net's input images move by up to this many px ...
    shift_below_layout_r2: float = 0.5  # ... when the per-position mean explains less than this (layout_r2)
    mismatch_negatives: float = 0.0    # share of DAD negatives that are real patches of another place
                                       # of the same image ("lattice" sampling only)
    hard_holes_gamma: float = 0.0      # Eq. 7's batch mean weighted by each hole's error to this power ...
    hard_holes_until: float = 0.5      # ... for this share of the Global-Net steps (losses.joint_loss)

    def __post_init__(self) -> None:
        checks = [(self.global_arch in ARCHS, f"global_arch must be one of {', '.join(ARCHS)}; got {self.global_arch!r}"),
                  (self.hole_sampling in HOLE_SAMPLING,
                   f"hole_sampling must be one of {', '.join(HOLE_SAMPLING)}; got {self.hole_sampling!r}"),
                  (not self.calibrate_dad or self.nearest_iad,
                   "calibrate_dad=True needs nearest_iad=True (s_DAD's baseline comes from the nearest bank "
                   "residual); set both or neither")]
        for name, lo, hi in (("mismatch_negatives", 0.0, 1.0), ("hard_holes_until", 0.0, 1.0),
                             ("hard_holes_gamma", 0.0, float("inf")), ("lr_warmup", 0.0, 1.0)):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi
            checks.append((ok, f"{name} must be a number in [{lo}, {hi}]; got {value!r}"))
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def stain_kwargs(self) -> dict:
        """Keyword arguments of stains.add_stains for the DAD negatives."""
        lo, hi = self.stain_radius
        return dict(min_radius=lo, max_radius=hi, min_opacity=self.stain_min_opacity)


PAPER = Deviations()
SHORT = Deviations(global_arch="centred", standardize=True, hole_sampling="lattice", holes_per_image=16,
                   lr_warmup=0.1, whiten_iad=True, nearest_iad=True, calibrate_dad=True, position_image_score=True,
                   stain_radius=(4.0, 8.0), stain_min_opacity=0.7, context_stains=2,
                   context_stain_grey=True, context_shift=8, mismatch_negatives=1.0,
                   hard_holes_gamma=0.5, hard_holes_until=0.5)


@dataclass(frozen=True)
class Profile:
    """One run's settings: schedule, teacher, scoring and data size, plus `deviations`."""

    name: str
    # schedule (supp. Sec. C.1 for the paper's values)
    distill_steps: int                 # Local-Net distillation on natural images (ImageNet in the paper)
    distill_batch: int
    finetune_steps: int                # Local-Net fine-tuning on the category's training images
    finetune_batch: int
    train_steps: int                   # Global-Net + DAD head, Local-Net frozen (Eq. 10)
    train_batch: int                   # images a step ("lattice") or (image, hole) pairs ("paper")
    lr_local: float = 2e-4
    lr_global: float = 1e-4
    lr_head: float = 1e-5
    lambda_k: float = 1.0              # Eq. 3
    lambda_c: float = 1.0
    lambda_t: float = 0.01             # Eq. 10
    checkpoint_every: int = 100
    # early stopping of the Global-Net phase (early_stop.py); 0 = always train_steps (the paper)
    stop_check_every: int = 0          # steps between R^2 checks on held-back training images
    stop_patience: int = 2             # checks without a rise of stop_min_delta before stopping
    stop_min_delta: float = 0.005
    stop_holdout: int = 4              # training images held back for the checks
    # teacher (teacher.py)
    default_teacher: str = "imagenet"  # "imagenet" | "random"; teacher.resolve_teacher decides offline
    teacher_input: int = 64            # side the 33x33 patch is resized to for ResNet-18
    distill_source: str = "sklearn"    # natural images for distillation (data/natural.py)
    # scoring (Sec. 3.3)
    grid_per_side: int = 20            # raster grid K x K at inference (20 x 20 in the supplementary)
    lambda_s: float = LAMBDA_S         # Eq. 13
    idw_power: float = IDW_POWER       # supp. Sec. C.1
    score_chunk: int = 48              # (image, patch) pairs a scoring batch (a CPU's cache likes ~50)
    # the synthetic data set's size (data/synthetic.py)
    synthetic: tuple = (("n_train", 60), ("n_test_good", 8), ("n_test_per_defect", 6))
    deviations: Deviations = field(default_factory=Deviations)

    @property
    def recipe(self) -> str:
        """"paper" when no deviation is on, else "short" (SHORT) or "custom"."""
        return {PAPER: "paper", SHORT: "short"}.get(self.deviations, "custom")

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "smoke": Profile("smoke", distill_steps=3, distill_batch=8, finetune_steps=3, finetune_batch=8,
                     train_steps=4, train_batch=4, grid_per_side=6, teacher_input=32,
                     default_teacher="random", checkpoint_every=2, score_chunk=36,
                     synthetic=(("n_train", 6), ("n_test_good", 2), ("n_test_per_defect", 1)),
                     deviations=replace(SHORT, lattice_stride=32)),
    "cpu": Profile("cpu", distill_steps=150, distill_batch=32, finetune_steps=150, finetune_batch=16,
                   train_steps=1500, train_batch=8, checkpoint_every=100, score_chunk=48,
                   lr_global=1e-3, lr_head=1e-3, stop_check_every=100, deviations=SHORT),
    "colab": Profile("colab", distill_steps=4000, distill_batch=64, finetune_steps=4000,
                     finetune_batch=16, train_steps=8000, train_batch=16, teacher_input=112,
                     distill_source="imagenette", checkpoint_every=500, score_chunk=400,
                     lr_global=1e-3, lr_head=1e-3, stop_check_every=400,
                     deviations=replace(SHORT, holes_per_image=32),
                     synthetic=(("n_train", 200), ("n_test_good", 16), ("n_test_per_defect", 10))),
    "paper": Profile("paper", distill_steps=50_000, distill_batch=64, finetune_steps=50_000,
                     finetune_batch=16, train_steps=200_000, train_batch=64, teacher_input=224,
                     distill_source="imagenette", checkpoint_every=2000, score_chunk=400,
                     synthetic=(("n_train", 200), ("n_test_good", 16), ("n_test_per_defect", 10)),
                     deviations=PAPER),
}
DEVIATION_FIELDS = tuple(f.name for f in fields(Deviations))
PROFILE_FIELDS = tuple(f.name for f in fields(Profile) if f.name != "deviations")


def _tuples(d: dict, keys: tuple[str, ...]) -> dict:
    """JSON lists back to the tuples the dataclasses hold."""
    return {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if k in keys else v for k, v in d.items()}


def profile_from_config(d: dict) -> Profile:
    """The Profile stored in a run's config.json (`Profile.to_dict`), overrides included."""
    d = _tuples(dict(d), ("synthetic",))
    d["deviations"] = Deviations(**_tuples(d.get("deviations", {}), ("stain_radius",)))
    return Profile(**d)


def resolve_name(name: str | None = None) -> str:
    """`name` or $GLANCE_PROFILE or `auto` -> a concrete profile name."""
    name = name or os.environ.get("GLANCE_PROFILE") or "auto"
    if name == "auto":
        return "colab" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of auto, {', '.join(PROFILES)}")
    return name


def get_profile(name: str | Profile | None = None, **overrides) -> Profile:
    """The profile called `name` (see `resolve_name`; a Profile is taken as it is), with field
    overrides: Profile fields, `deviations=` a whole `Deviations`, or single Deviations fields by
    name (e.g. `get_profile("cpu", calibrate_dad=False)`). Invalid combinations raise ValueError."""
    prof = name if isinstance(name, Profile) else PROFILES[resolve_name(name)]
    dev = {k: overrides.pop(k) for k in list(overrides) if k in DEVIATION_FIELDS}
    unknown = [k for k in overrides if k not in PROFILE_FIELDS + ("deviations",)]
    if unknown:
        raise ValueError(f"unknown profile field(s) {', '.join(unknown)}; expected one of "
                         f"{', '.join(sorted(PROFILE_FIELDS + DEVIATION_FIELDS))}")
    prof = replace(prof, **overrides)
    return replace(prof, deviations=replace(prof.deviations, **dev)) if dev else prof


def parse_overrides(items: list[str]) -> dict:
    """["train_steps=3000", "calibrate_dad=False"] -> {"train_steps": 3000, "calibrate_dad": False},
    for `get_profile(name, **overrides)`. ValueError (one line) for a malformed item or a name that
    is neither a Profile nor a Deviations field."""
    names = set(PROFILE_FIELDS + DEVIATION_FIELDS)
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
