"""The teacher R: an ImageNet ResNet-18 that Local-Net is distilled from (paper Eq. 1).

How a patch is fed to the teacher (our choice; the paper does not say):
  * every network in glance_lite sees images normalised with the ImageNet mean/std
    (`normalize`), because the teacher was trained on such inputs;
  * the 33x33 patch is resized bilinearly to `input_size` (64 by default, 224 in the `paper`
    profile) so that ResNet-18's 32x down-sampling still leaves a spatial map to pool;
  * the descriptor is the 512-d global-average-pooled output of layer4 (the classifier is dropped).

Weights: torchvision's `ResNet18_Weights.IMAGENET1K_V1`, the checkpoint the supplementary names
(its footnote's resnet18-5c106cde.pth is the same network, re-hashed by torchvision).

Which teacher a run uses is decided in one place, `resolve_teacher`, for the CLI, the Python API
and the book alike: "auto" means the ImageNet teacher where its weights are cached or can be
downloaded (Colab), else an untrained ("random") one, announced in one line on stderr.
$GLANCE_TEACHER (imagenet | random | PATH) overrides "auto".
"""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS = ResNet18_Weights.IMAGENET1K_V1
TEACHER_DIM = 512
TEACHER_ENV = "GLANCE_TEACHER"
_announced: set[str] = set()  # {"random"} once the untrained teacher was announced in this process


class TeacherUnavailable(RuntimeError):
    """The requested teacher weights cannot be loaded (offline, missing or wrong file)."""


def normalize(images: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of `(B,3,H,W)` images in [0,1]."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def weights_path() -> Path:
    """Where torchvision caches the ImageNet ResNet-18 weights file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(WEIGHTS.url)


class Teacher(nn.Module):
    """Frozen ResNet-18 descriptor R(p): normalised patches `(B,3,33,33)` -> `(B,512)`."""

    def __init__(self, backbone: nn.Module, input_size: int = 64, kind: str = "imagenet"):
        super().__init__()
        backbone.fc = nn.Identity()
        self.backbone = backbone.eval().requires_grad_(False)
        self.input_size = input_size
        self.kind = kind

    def train(self, mode: bool = True) -> "Teacher":  # the teacher never leaves eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(patches, size=(self.input_size, self.input_size), mode="bilinear",
                          align_corners=False)
        return self.backbone(x)


def _imagenet_state_dict() -> dict:
    """torchvision's ImageNet weights from the torch cache, downloaded when missing."""
    path = weights_path()
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # corrupt or partial download
            raise TeacherUnavailable(
                f"The ResNet-18 weights file {path} exists but cannot be read ({err}). "
                f"Delete it and download again, or pass --teacher random|PATH.") from err
    advice = (f"ImageNet ResNet-18 weights are not available: expected {path.name} in the torch "
              f"hub cache folder {path.parent}. Get them with internet access (e.g. on Colab "
              f"`torchvision.models.resnet18(weights='IMAGENET1K_V1')`) or copy the file from "
              f"{WEIGHTS.url} into that folder; or pass --teacher PATH to a local weights file, "
              f"or --teacher random for an untrained teacher (results will be much worse).")
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)  # fail fast when offline instead of hanging
    try:
        return WEIGHTS.get_state_dict(progress=True)
    except Exception as err:
        raise TeacherUnavailable(f"{advice} (download failed: {err})") from err
    finally:
        socket.setdefaulttimeout(old)


def load_teacher(spec: str = "imagenet", input_size: int = 64, seed: int = 0) -> Teacher:
    """Build the teacher: `"imagenet"` (torchvision weights, downloaded if missing), `"random"`
    (untrained, seeded) or a path to ResNet-18 weights. Raises TeacherUnavailable with
    instructions when the weights cannot be had. Which one to use: `resolve_teacher`."""
    net = resnet18(weights=None)
    if spec == "imagenet":
        net.load_state_dict(_imagenet_state_dict())
    elif spec == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = resnet18(weights=None)
    else:
        path = Path(spec)
        if not path.is_file():
            raise TeacherUnavailable(f"teacher weights file {path} does not exist "
                                     f"(expected 'imagenet', 'random' or a path to a .pth file)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
            net.load_state_dict(state)
        except Exception as err:
            raise TeacherUnavailable(f"cannot load ResNet-18 weights from {path}: {err}") from err
    return Teacher(net, input_size=input_size, kind=spec if spec in ("imagenet", "random") else "file")


def on_colab() -> bool:
    """True in a Google Colab runtime (where downloads are expected to work)."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def resolve_teacher(spec: str | None = "auto", profile=None, announce: bool = True) -> tuple[str, str]:
    """The one teacher policy: `spec` ("auto" | "imagenet" | "random" | PATH; None = "auto") for a
    run of `profile` -> (teacher, note). "auto" takes $GLANCE_TEACHER when set, else the profile's
    `default_teacher` ("random" for smoke); "imagenet" stays "imagenet" only when its weights are
    cached or can be downloaded (Colab), else falls back to "random". An explicit "imagenet" is
    downloaded now, a PATH is loaded now, so both fail before anything is trained. `note` says
    why the teacher is untrained ("" otherwise); it is printed once per process, by the first call
    (announce=False: the caller shows it itself, e.g. the book's warning box)."""
    spec, why = spec or "auto", "asked for"
    if spec == "auto" and os.environ.get(TEACHER_ENV):
        spec, why = os.environ[TEACHER_ENV], f"${TEACHER_ENV}"
    elif spec == "auto":
        spec = profile.default_teacher if profile is not None else "imagenet"
        why = f"the default of the {profile.name} profile" if profile is not None else "the default"
        if spec == "imagenet" and not (weights_path().is_file() or on_colab()):
            spec, why = "random", (f"offline: ImageNet weights not in {weights_path()}; pass `--teacher "
                                   f"imagenet` (or set `{TEACHER_ENV}=imagenet`) to download them, or `--teacher PATH`")
    if spec == "imagenet" and not weights_path().is_file() and not on_colab():
        _imagenet_state_dict()  # into the torch cache now, or TeacherUnavailable with advice
    elif spec not in ("imagenet", "random"):
        load_teacher(spec)  # a weights file: fails now if it is missing or not a ResNet-18
    note = ""
    if spec == "random":
        note = f"UNTRAINED ResNet-18 teacher ({why}); scores are not comparable with the paper"
        if announce and spec not in _announced:  # once: the first call knows why
            print(f"NOTE: using an {note}.", file=sys.stderr)
        _announced.add(spec)
    return spec, note
