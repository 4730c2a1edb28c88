"""From a test image to patch scores and score maps (paper Sec. 3.3, Eq. 11-13).

For every image and every patch of the raster grid (patches.py):
  Z_l = L(p) (Eq. 4),  Z_g = G(I, M0) (Eq. 6),
  s_IAD = (1/n)||Z_l - Z_g||^2 (Eq. 11),  s_DAD = 1 - C(Z_l, Z_g) (Eq. 12),
  s = lambda_s s_IAD + (1 - lambda_s) s_DAD (Eq. 13), lambda_s = 0.8,
and IDW (idw.py) turns the K*K scores of an image into a map.

s_IAD and s_DAD are kept apart (`PatchScores`), so any lambda_s can be tried later without
running the networks again (the lambda_s explorer of the book does exactly that).

Speed: one map needs K*K = 400 masked passes of Global-Net over the whole image plus 400
Local-Net passes (~133 GFLOP done naively). `patch_features` therefore
  * runs all (image, patch) pairs as flat batches, chunked to bound memory,
  * computes the mask half of every partial convolution once per grid (`GlobalNet.mask_plan`)
    and reuses it for every image,
  * computes Global-Net's layers 0 to 1_2 once per image and only the 9x9 window of layer 1_2
    that a hole can change per hole (`fast_global.py`),
  * runs Local-Net's expensive layers once over each whole image and crops every patch's part
    from it (`fast_local.py`; the grid's corners are even for this), the rest on all patches of
    a chunk at once (channels_last), under `torch.inference_mode`.
`patch_features_naive` is the one-patch-at-a-time reference used by tests and the benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import torch

from .fast_global import global_features_holes, hole_free_front
from .fast_local import grid_local_features
from .global_net import GlobalNet
from .heads import DADHead, ResidualBank, ResidualWhitener, dad_score, iad_and_neighbour
from .idw import IDW_POWER, idw_maps
from .local_net import LocalNet
from .partial_conv import MaskStep
from .patches import PatchGrid
from .teacher import normalize

if TYPE_CHECKING:
    from .image_score import PositionNorm

LAMBDA_S = 0.8  # Eq. 13, supplementary Sec. C.1


def combine(s_iad: torch.Tensor, s_dad: torch.Tensor, lambda_s: float = LAMBDA_S) -> torch.Tensor:
    """Eq. 13: s = lambda_s s_IAD + (1 - lambda_s) s_DAD (any matching shapes)."""
    if not 0.0 <= lambda_s <= 1.0:
        raise ValueError(f"lambda_s must lie in [0, 1]; got {lambda_s}")
    return lambda_s * s_iad + (1.0 - lambda_s) * s_dad


@dataclass
class PatchScores:
    """Per-patch scores of N images on a grid: s_iad, s_dad `(N, K*K)` in raster order, and the
    model's `image_score.PositionNorm` (`norm`) when it has one."""

    s_iad: torch.Tensor
    s_dad: torch.Tensor
    grid: PatchGrid = PatchGrid()
    norm: "PositionNorm | None" = None

    def combined(self, lambda_s: float = LAMBDA_S) -> torch.Tensor:
        return combine(self.s_iad, self.s_dad, lambda_s)

    def maps(self, lambda_s: float = LAMBDA_S, power: float = IDW_POWER) -> torch.Tensor:
        """Score maps `(N, S, S)` for a given lambda_s (IDW with power p)."""
        return idw_maps(self.combined(lambda_s), self.grid, power)

    def image_scores(self, lambda_s: float = LAMBDA_S) -> torch.Tensor | None:
        """Image scores `(N,)` of our per-position normalisation (image_score.py), or None without
        a fitted norm (then an image scores the maximum of its map, supp. D.1)."""
        if self.norm is None or not len(self.norm):
            return None
        return self.norm.image_scores(self.s_iad, self.s_dad, lambda_s)


@lru_cache(maxsize=4)
def _grid_plan(grid: PatchGrid, device: str) -> list[MaskStep]:
    """`GlobalNet.mask_plan` of the grid's hole masks, computed once per grid and device."""
    return GlobalNet.mask_plan(grid.masks(device))


def _check_images(images: torch.Tensor, grid: PatchGrid) -> None:
    s = grid.image_size
    if images.dim() != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (s, s):
        raise ValueError(f"expected images (N, 3, {s}, {s}) in [0,1]; got {tuple(images.shape)}")


@torch.inference_mode()
def patch_features(local_net: LocalNet, global_net: GlobalNet, images: torch.Tensor,
                   grid: PatchGrid = PatchGrid(), chunk: int = 48,
                   device: torch.device | str | None = None,
                   amp_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Local and global features of every grid patch: images `(N,3,S,S)` in [0,1] ->
    (Z_l, Z_g), each `(N, K*K, 128)` float32 on the CPU.

    chunk: (image, patch) pairs per forward pass; memory grows linearly with it (about 0.5 MB
    per pair in float32). On a CPU about 50 is fastest (the working set stays in cache; 200 is
    1.3x slower); on a GPU use hundreds. amp_dtype: e.g. torch.bfloat16 on CUDA, for
    **Global-Net only**: Local-Net always runs in float32, because Z_l is standardised and the
    residual Z_l - Z_g whitened (heads.py), which magnifies rounding: on tire, Local-Net in bf16
    moved the whitened residual by 22 % of its variance (PRO 0.881 -> 0.878), Global-Net by 1e-5.
    Global-Net runs through `fast_global` (layers 0-1_2 once per image, a window per hole), Local-Net
    through `fast_local` when the grid's corners are even (otherwise patch by patch).
    """
    _check_images(images, grid)
    device = torch.device(device) if device is not None else next(global_net.parameters()).device
    n, k2 = images.shape[0], grid.n_patches
    plan = _grid_plan(grid, str(device))
    z_g = torch.empty(n * k2, global_net.pconv4.out_channels)
    autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    imgs = normalize(images.to(device))
    z_l = grid_local_features(local_net, imgs, grid.top_left, grid.patch_size, chunk).float().cpu()  # float32
    with autocast:
        base = hole_free_front(global_net, imgs)
        for pairs in torch.arange(n * k2, device=device).split(chunk):
            z_g[pairs.cpu()] = global_features_holes(
                global_net, imgs, pairs // k2, pairs % k2, grid, plan, base).float().cpu()
    return z_l, z_g.view(n, k2, -1)


@torch.inference_mode()
def head_scores(head: DADHead, z_l: torch.Tensor, z_g: torch.Tensor,
                whitener: ResidualWhitener | None = None,
                bank: ResidualBank | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(s_IAD, s_DAD) of Eq. 11-12 for features `(..., 128)` -> two tensors of shape `(...)`.
    whitener, bank: the model's `ResidualWhitener` and `ResidualBank` (heads.py) for our
    whitened / nearest-residual Eq. 11 (and, when the bank holds s_DAD values, our calibrated
    Eq. 12: `ResidualBank.calibrate`)."""
    shape = z_l.shape[:-1]
    dev = next(head.parameters()).device
    zl, zg = z_l.reshape(-1, z_l.shape[-1]), z_g.reshape(-1, z_g.shape[-1])
    s_iad, nearest = iad_and_neighbour(zl, zg, whitener, bank)
    s_dad = dad_score(head, zl.to(dev), zg.to(dev)).float().cpu()
    if bank is not None and bank.calibrates_dad:
        s_dad = bank.calibrate(s_dad, nearest.cpu())
    return s_iad.view(shape), s_dad.view(shape)


@torch.inference_mode()
def patch_features_naive(local_net: LocalNet, global_net: GlobalNet, images: torch.Tensor,
                         grid: PatchGrid = PatchGrid()) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: one patch at a time, masks computed inside every call. Same outputs as
    `patch_features`, many times slower (see benchmarks/)."""
    _check_images(images, grid)
    dev = next(global_net.parameters()).device
    p = grid.patch_size
    z_l, z_g = [], []
    for img in normalize(images.to(dev)):
        for (r, c) in grid.top_left.tolist():
            mask = torch.ones(1, 1, grid.image_size, grid.image_size, device=dev)
            mask[..., r:r + p, c:c + p] = 0
            z_l.append(local_net(img[None, :, r:r + p, c:c + p]).cpu())
            z_g.append(global_net(img[None], mask).cpu())
    n, k2 = images.shape[0], grid.n_patches
    return torch.cat(z_l).view(n, k2, -1), torch.cat(z_g).view(n, k2, -1)
