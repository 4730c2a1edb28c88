"""Local-only baseline: score a patch from the patch alone, with no context at all.

The Glance paper (Sec. 4.2, Fig. 4) contrasts itself with the teacher-student model TS, which
judges each patch by its local feature only and so cannot see a normal-looking patch in the
wrong place (a swapped or misplaced part). This module is that kind of detector, built from
the very Local-Net that Glance uses (RUN/local.pt, after distillation and fine-tuning), so
the only difference from Glance is the missing global context:

    memory bank   Local-Net features of every raster-grid patch of every training image
                  (N_train * K*K, 128)
    patch score   Euclidean distance of a test patch's feature to its nearest bank feature
    map           the same raster grid and inverse-distance weighting as Glance (idw.py)

(TS itself regresses teacher features with an ensemble of students and scores the
regression error; nearest-neighbour distance is the simpler local-only detector of the same
family - it is also what a "1-NN on patch features" baseline means in MVTec AD's paper.)
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import checkpoint
from ..idw import IDW_POWER, idw_maps
from ..fast_local import grid_local_features
from ..local_net import FEATURE_DIM, LocalNet
from ..patches import PatchGrid
from ..teacher import normalize
from ..neighbours import nearest_distances
from .common import DEFAULT_MAX_BYTES, check_bank_size


def load_local_net(path: str | Path) -> LocalNet:
    """The pre-trained Local-Net stored in RUN/local.pt (written by training.py), in eval mode."""
    ck = checkpoint.load(path)
    if "local_net" not in ck.get("models", {}):
        raise checkpoint.CheckpointError(f"{path} holds no pre-trained Local-Net")
    net = LocalNet()
    checkpoint.load_state(net, ck["models"]["local_net"], path, "Local-Net")
    return net.eval().requires_grad_(False)


def local_bank_bytes(n_images: int, grid: PatchGrid, max_bank_bytes: int = DEFAULT_MAX_BYTES,
                     dim: int = FEATURE_DIM) -> int:
    """Size of the memory bank `(n_images*K*K, dim)`; ValueError above `max_bank_bytes`.
    Needs no Local-Net, so `compare` checks it before training one."""
    return check_bank_size(n_images * grid.n_patches, dim, max_bank_bytes, "local-only memory bank")


class LocalOnly:
    """Nearest-neighbour patch scores in Local-Net feature space (no Global-Net, no heads)."""

    def __init__(self, local_net: LocalNet, grid: PatchGrid = PatchGrid(), power: float = IDW_POWER,
                 chunk: int = 400, max_bank_bytes: int = DEFAULT_MAX_BYTES):
        self.net = local_net.eval().requires_grad_(False)
        self.grid, self.power, self.chunk = grid, power, chunk
        self.max_bank_bytes = max_bank_bytes
        self.bank: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Images `(N,3,256,256)` in [0,1] -> Local-Net features of all grid patches `(N,K*K,128)`."""
        feats = [grid_local_features(self.net, normalize(img.to(self.device)), self.grid.top_left,
                                     self.grid.patch_size, self.chunk)
                 for img in images.split(max(1, self.chunk // self.grid.n_patches))]
        return torch.cat(feats)

    def fit(self, train_images: torch.Tensor) -> "LocalOnly":
        """Build the memory bank `(N_train*K*K, 128)` from training images `(N,3,256,256)`."""
        local_bank_bytes(len(train_images), self.grid, self.max_bank_bytes, self.net.conv4.out_channels)
        self.bank = self.embed(train_images).flatten(0, 1)
        return self

    def patch_scores(self, images: torch.Tensor) -> torch.Tensor:
        """Images `(N,3,256,256)` -> nearest-bank-feature distance per grid patch `(N,K*K)`."""
        if self.bank is None:
            raise RuntimeError("LocalOnly.fit(train_images) must be called before scoring")
        z = self.embed(images)
        return nearest_distances(z.flatten(0, 1), self.bank).view(z.shape[:2]).cpu()

    def anomaly_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Images `(N,3,256,256)` -> score maps `(N,256,256)` via the raster grid and IDW."""
        return idw_maps(self.patch_scores(images), self.grid, self.power)
