"""MFFA's Gaussian branch (MFFA Sec. 3, PaDiM-like): one multivariate Gaussian per position.

    features   layer1..layer3 of the ResNet-18 (MFFA's Sec. 4 details take "the first three layers"
               for this branch), upsampled to the largest map (64x64 for 256 px images) and
               concatenated: 64+128+256 = 448 dimensions; then a seeded random subset of
               `dim` of them (random feature selection, 100 as PaDiM does for ResNet-18);
    fit        at each of the 64*64 positions, mean mu_ij and covariance
               Sigma_ij = cov(x_ij) + lambda I with lambda = 0.01 (MFFA Sec. 4);
    score      Mahalanobis distance sqrt((x - mu)^T Sigma^-1 (x - mu)), computed through the
               batched Cholesky factor L (Sigma = L L^T): solve L y = x - mu, distance = |y|;
               the `(N,64,64)` map is upsampled bilinearly to `(N,256,256)`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import (DEFAULT_MAX_BYTES, check_bank_size, fill_batches, resnet_features, single_thread,
                     upsample)

GAUSS_LAYERS = ("layer1", "layer2", "layer3")
LAMBDA = 0.01


def gaussian_embed(backbone: nn.Module, images: torch.Tensor, layers: tuple[str, ...] = GAUSS_LAYERS,
                   batch: int = 8) -> torch.Tensor:
    """Images `(N,3,256,256)` -> concatenated multi-layer features `(N,448,64,64)` (ResNet-18)."""
    maps = resnet_features(backbone, images, layers, batch)
    size = maps[0].shape[-2:]
    up = [m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="bilinear", align_corners=False)
          for m in maps]
    return torch.cat(up, dim=1)


def fit_gaussians(x: torch.Tensor, lam: float = LAMBDA) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position Gaussians of samples `(N,P,d)` -> (mean `(P,d)`, Cholesky of Sigma + lam*I `(P,d,d)`).

    The covariance is the unbiased sample covariance (divides by N-1, like numpy.cov).
    """
    n, _, d = x.shape
    x = x.double()
    mean = x.mean(dim=0)
    xc = (x - mean).permute(1, 0, 2)                                # (P,N,d)
    cov = xc.transpose(1, 2) @ xc / max(n - 1, 1)                    # (P,d,d)
    cov = cov + lam * torch.eye(d, dtype=cov.dtype, device=cov.device)
    with single_thread(cov.device):  # P small factorisations
        chol = torch.linalg.cholesky(cov)
    return mean.float(), chol.float()


def mahalanobis(x: torch.Tensor, mean: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """Mahalanobis distances of samples `(N,P,d)` to per-position Gaussians -> `(N,P)`."""
    diff = (x - mean).permute(1, 2, 0)                               # (P,d,N)
    with single_thread(diff.device):                                 # P small solves
        y = torch.linalg.solve_triangular(chol, diff, upper=False)   # L y = x - mu
    return torch.linalg.vector_norm(y, dim=1).t()                    # (N,P)


class GaussianAD:
    """Per-position Gaussian model with random feature selection, PaDiM style."""

    def __init__(self, backbone: nn.Module, dim: int = 100, lam: float = LAMBDA,
                 layers: tuple[str, ...] = GAUSS_LAYERS, max_bank_bytes: int = DEFAULT_MAX_BYTES,
                 seed: int = 0, batch: int = 8):
        self.backbone = backbone.eval()
        self.dim, self.lam, self.layers, self.seed, self.batch = dim, lam, layers, seed, batch
        self.max_bank_bytes = max_bank_bytes
        self.select: torch.Tensor | None = None
        self.mean: torch.Tensor | None = None
        self.chol: torch.Tensor | None = None
        self.shape: tuple[int, int] | None = None

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> selected features `(N, h*w, d)`, embedded `batch` images at a time (the full
        448-d maps never exist for all images at once)."""
        def selected(part: torch.Tensor) -> torch.Tensor:
            f = gaussian_embed(self.backbone, part, self.layers, self.batch)
            self.shape = tuple(f.shape[-2:])
            return f[:, self.select.to(f.device)].flatten(2).transpose(1, 2)
        return fill_batches(selected, images, self.batch)

    def _embed_dims(self, image_size: int) -> tuple[int, int, int]:
        """(dimensions before selection, h, w) of the embedding, from one probe image."""
        probe = gaussian_embed(self.backbone, torch.zeros(1, 3, image_size, image_size), self.layers, 1)
        return tuple(probe.shape[1:])

    def bank_bytes(self, n_images: int, image_size: int = 256) -> int:
        """Size of the training features and statistics; ValueError above `max_bank_bytes`."""
        full, h, w = self._embed_dims(image_size)
        d, rows = min(self.dim, full), n_images * h * w
        # training features (N,P,d); fit_gaussians adds a float64 copy and its centred copy (N,P,d)
        # and float64 covariances, regularised covariances and Cholesky factors (P,d,d)
        return check_bank_size(rows, d, self.max_bank_bytes, "Gaussian training features",
                               extra=2 * rows * d * 8 + 3 * h * w * d * d * 8)

    def fit(self, train_images: torch.Tensor) -> "GaussianAD":
        """Train images `(N,3,256,256)` -> mean `(h*w,d)` and Cholesky factors `(h*w,d,d)`."""
        self.bank_bytes(len(train_images), train_images.shape[-1])
        full = self._embed_dims(train_images.shape[-1])[0]
        g = torch.Generator().manual_seed(self.seed)  # random feature selection:
        self.select = torch.randperm(full, generator=g)[:min(self.dim, full)].sort().values
        self.mean, self.chol = fit_gaussians(self._features(train_images), self.lam)
        return self

    @torch.no_grad()
    def raw_maps(self, images: torch.Tensor, batch_images: int = 16) -> torch.Tensor:
        """Images `(N,3,256,256)` -> Mahalanobis maps `(N,256,256)` (not smoothed)."""
        if self.mean is None:
            raise RuntimeError("GaussianAD.fit(train_images) must be called before scoring")
        dist = torch.cat([mahalanobis(self._features(part), self.mean, self.chol)
                          for part in images.split(batch_images)])
        return upsample(dist.view(-1, *self.shape).cpu(), images.shape[-1])
