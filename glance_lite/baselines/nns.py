"""MFFA's nearest-neighbour-search branch, NNS (MFFA Sec. 3, Fig. 4, Eq. 1; PatchCore-like).

    features      layer2 `(128,32,32)` and layer3 `(256,16,16)` of the (PSG-fine-tuned)
                  ResNet-18; layer3 is upsampled to 32x32, the two are concatenated (384-d)
                  and average-pooled over 3x3 neighbours (a larger receptive field that
                  tolerates small shifts, as MFFA and PatchCore do);
    memory bank   the features of all N_train*32*32 training positions, reduced by greedy
                  (minimax facility location) coreset selection to ~1 % (MFFA Sec. 4),
                  after a random Gaussian projection to `proj_dim` dimensions that only
                  speeds up the selection (the bank keeps the full 384-d features);
    score map     distance of each test position to its nearest bank feature, `(N,32,32)`,
                  upsampled bilinearly to `(N,256,256)` (smoothing is left to the caller).

The full feature matrix is the one big allocation, so its size is computed from the layer
shapes and checked against `max_bank_bytes` before anything is extracted; it is filled `batch`
images at a time, so the per-layer maps never exist for all training images at once.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..neighbours import nearest_distances
from .common import DEFAULT_MAX_BYTES, check_bank_size, fill_batches, resnet_features, single_thread, upsample

NNS_LAYERS = ("layer2", "layer3")


def nns_embed(backbone: nn.Module, images: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Images `(N,3,256,256)` -> locally aggregated layer2+layer3 features `(N,384,32,32)` (ResNet-18)."""
    f2, f3 = resnet_features(backbone, images, NNS_LAYERS, batch)
    f3 = F.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False)
    return F.avg_pool2d(torch.cat([f2, f3], dim=1), kernel_size=3, stride=1, padding=1,
                        count_include_pad=False)


def random_projection(features: torch.Tensor, dim: int, seed: int = 0) -> torch.Tensor:
    """Johnson-Lindenstrauss projection `(N,D) -> (N,dim)` with a seeded Gaussian matrix (D <= dim: as is)."""
    if features.shape[1] <= dim:
        return features
    g = torch.Generator().manual_seed(seed)
    proj = torch.randn(features.shape[1], dim, generator=g) / dim ** 0.5
    return features @ proj.to(features.device, features.dtype)


@torch.no_grad()
def greedy_coreset(features: torch.Tensor, n: int, start: int | None = None, seed: int = 0) -> torch.Tensor:
    """Indices `(n,)` of a greedy minimax-facility-location coreset of `(N,D)` features (MFFA Eq. 1).

    Start from one point (`start`, or a seeded random one), then repeatedly add the point whose
    distance to its nearest already-chosen point is largest. Each addition costs one distance
    update of all N points against the new centre (vectorised); the loop is over chosen points.
    """
    total = features.shape[0]
    n = max(1, min(n, total))
    if start is None:
        start = int(torch.randint(total, (1,), generator=torch.Generator().manual_seed(seed)))
    x = features.float()
    sq = (x * x).sum(dim=1)                                        # |x|^2, (N,)
    sq_dist = lambda j: (sq + sq[j] - 2 * (x @ x[j])).clamp_min(0)  # noqa: E731  |x - x_j|^2, (N,)
    chosen = torch.empty(n, dtype=torch.long)
    chosen[0] = start
    min_d = sq_dist(start)                                         # squared distance to the coreset
    with single_thread(x.device):
        for i in range(1, n):
            j = int(torch.argmax(min_d))
            chosen[i] = j
            min_d = torch.minimum(min_d, sq_dist(j))
    return chosen


class NNS:
    """Coreset memory bank + nearest-neighbour score maps on a ResNet backbone."""

    def __init__(self, backbone: nn.Module, coreset_ratio: float = 0.01, proj_dim: int = 128,
                 max_bank_bytes: int = DEFAULT_MAX_BYTES, seed: int = 0, batch: int = 8):
        self.backbone = backbone.eval()
        self.coreset_ratio, self.proj_dim, self.seed, self.batch = coreset_ratio, proj_dim, seed, batch
        self.max_bank_bytes = max_bank_bytes
        self.bank: torch.Tensor | None = None

    def bank_bytes(self, n_images: int, image_size: int = 256) -> int:
        """Size of the full (pre-coreset) feature matrix; ValueError above `max_bank_bytes`."""
        probe = nns_embed(self.backbone, torch.zeros(1, 3, image_size, image_size), 1)
        _, dim, h, w = probe.shape
        return check_bank_size(n_images * h * w, dim, self.max_bank_bytes, "NNS memory bank (before coreset)")

    def fit(self, train_images: torch.Tensor) -> "NNS":
        """Train images `(N,3,256,256)` -> coreset bank `(~ratio*N*32*32, 384)`."""
        self.bank_bytes(len(train_images), train_images.shape[-1])
        feats = fill_batches(lambda part: nns_embed(self.backbone, part, self.batch).permute(0, 2, 3, 1),
                             train_images, self.batch).flatten(0, 2)  # (N*h*w, D)
        n = max(1, round(self.coreset_ratio * feats.shape[0]))
        idx = greedy_coreset(random_projection(feats, self.proj_dim, self.seed), n, seed=self.seed)
        self.bank = feats[idx.to(feats.device)].clone()
        return self

    def raw_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Images `(N,3,256,256)` -> nearest-neighbour distance maps `(N,256,256)` (not smoothed)."""
        if self.bank is None:
            raise RuntimeError("NNS.fit(train_images) must be called before scoring")
        feats = nns_embed(self.backbone, images, self.batch)
        n, _, h, w = feats.shape
        d = nearest_distances(feats.permute(0, 2, 3, 1).flatten(0, 2), self.bank).view(n, h, w)
        return upsample(d.cpu(), images.shape[-1])
