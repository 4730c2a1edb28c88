"""The whole method in one module: Local-Net + Global-Net + DAD head, saved and loaded together.

`Glance.score(images)` is the inference pipeline of Sec. 3.3 (patch scores for both heads);
`save_model` / `load_model` wrap the safe checkpoint format of checkpoint.py.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import checkpoint
from .context_train import FeatureScaler
from .global_net import GlobalNet
from .heads import DADHead, ResidualBank, ResidualWhitener
from .local_net import Decoder, LocalNet
from .patches import PatchGrid
from .scoring import PatchScores, score_patches


class Glance(nn.Module):
    """Local-Net L, its decoder D (distillation only), Global-Net G and the DAD head C."""

    def __init__(self, teacher_dim: int = 512, arch: str = "paper"):
        super().__init__()
        self.local_net = LocalNet()
        self.decoder = Decoder(teacher_dim=teacher_dim)
        self.global_net = GlobalNet(arch=arch)
        self.head = DADHead()
        self.scaler = FeatureScaler()  # identity unless fitted (context_train.py)
        self.whitener = ResidualWhitener()  # identity (Eq. 11) unless fitted (heads.py)
        self.bank = ResidualBank()  # empty (Eq. 11) unless fitted (heads.py)

    def score(self, images: torch.Tensor, grid: PatchGrid = PatchGrid(), chunk: int = 48,
              amp_dtype: torch.dtype | None = None) -> PatchScores:
        """Images `(N,3,256,256)` in [0,1] -> per-patch s_IAD and s_DAD `(N, K*K)`."""
        return score_patches(self.local_net, self.global_net, self.head, images, grid, chunk, amp_dtype,
                             self.scaler, self.whitener, self.bank)


def save_model(path: str | Path, model: Glance, config: dict) -> None:
    checkpoint.save(path, {"config": config, "phase": "done", "step": 0,
                           "models": {"glance": model.state_dict()}, "optim": None})


def model_arch(config: dict) -> str:
    """The Global-Net architecture a run was trained with (runs from before `arch`: "paper")."""
    return config.get("profile", {}).get("global_arch", "paper")


def load_model(path: str | Path, device: str | torch.device = "cpu",
               arch: str | None = None) -> tuple[Glance, dict]:
    """Load a trained model written by `save_model` (e.g. RUN/glance.pt) -> (model in eval mode, config).

    arch: the Global-Net architecture the caller expects ("paper" | "coords" | "centred"); None accepts the
    one the run was trained with. A mismatch fails with a message naming both.
    """
    ckpt = checkpoint.load(path)
    if "glance" not in ckpt.get("models", {}):
        raise checkpoint.CheckpointError(f"{path} holds no trained Glance model (phase {ckpt.get('phase')!r})")
    trained = model_arch(ckpt["config"])
    if arch is not None and arch != trained:
        raise checkpoint.CheckpointError(f"{path} was trained with Global-Net architecture {trained!r}, "
                                         f"not {arch!r}; load it as {trained!r} or retrain with --arch {arch}")
    model = Glance(arch=trained)
    state = dict(ckpt["models"]["glance"])
    for part in ("scaler", "whitener", "bank"):  # runs from before these existed: identity / empty
        for key, value in getattr(model, part).state_dict().items():
            state.setdefault(f"{part}.{key}", value)
    checkpoint.load_state(model, state, path, "Glance")
    return model.to(device).eval(), ckpt["config"]


def load_local(path: str | Path, device: str | torch.device = "cpu") -> tuple[Glance, dict]:
    """Load RUN/local.pt (Local-Net after pre-training, `train(..., until="finetune")`) ->
    (a Glance model in eval mode whose Local-Net and decoder D are the trained ones, config).
    Global-Net and the DAD head of that model are untrained; use them only after `load_model`."""
    ckpt = checkpoint.load(path)
    if "local_net" not in ckpt.get("models", {}):
        raise checkpoint.CheckpointError(f"{path} holds no pre-trained Local-Net (phase {ckpt.get('phase')!r})")
    model = Glance(arch=model_arch(ckpt["config"]))
    checkpoint.load_state(model.local_net, ckpt["models"]["local_net"], path, "Local-Net")
    if "decoder" in ckpt["models"]:  # written since the book's chapter 2 loads it
        checkpoint.load_state(model.decoder, ckpt["models"]["decoder"], path, "decoder")
    return model.to(device).eval(), ckpt["config"]
