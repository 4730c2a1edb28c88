"""The whole method in one module: Local-Net + Global-Net + DAD head, saved and loaded together.

`Glance.score(images)` is the inference pipeline of Sec. 3.3 (patch scores for both heads);
`save_model` / `load_model` wrap the safe checkpoint format of checkpoint.py.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import checkpoint
from .global_net import GlobalNet
from .heads import DADHead
from .local_net import Decoder, LocalNet
from .patches import PatchGrid
from .scoring import PatchScores, score_patches


class Glance(nn.Module):
    """Local-Net L, its decoder D (distillation only), Global-Net G and the DAD head C."""

    def __init__(self, teacher_dim: int = 512):
        super().__init__()
        self.local_net = LocalNet()
        self.decoder = Decoder(teacher_dim=teacher_dim)
        self.global_net = GlobalNet()
        self.head = DADHead()

    def score(self, images: torch.Tensor, grid: PatchGrid = PatchGrid(), chunk: int = 48,
              amp_dtype: torch.dtype | None = None) -> PatchScores:
        """Images `(N,3,256,256)` in [0,1] -> per-patch s_IAD and s_DAD `(N, K*K)`."""
        return score_patches(self.local_net, self.global_net, self.head, images, grid, chunk, amp_dtype)


def save_model(path: str | Path, model: Glance, config: dict) -> None:
    checkpoint.save(path, {"config": config, "phase": "done", "step": 0,
                           "models": {"glance": model.state_dict()}, "optim": None})


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[Glance, dict]:
    """Load a trained model written by `save_model` (e.g. RUN/glance.pt) -> (model in eval mode, config)."""
    ckpt = checkpoint.load(path)
    if "glance" not in ckpt.get("models", {}):
        raise checkpoint.CheckpointError(f"{path} holds no trained Glance model (phase {ckpt.get('phase')!r})")
    model = Glance()
    checkpoint.load_state(model, ckpt["models"]["glance"], path, "Glance")
    return model.to(device).eval(), ckpt["config"]
