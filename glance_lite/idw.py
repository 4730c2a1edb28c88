"""Inverse-distance-weighted score maps (paper Sec. 3.3, supplementary Sec. C.1, p = 5).

The score at pixel x is a weighted mean of the K patch scores s_i with weights
w_i(x) = 1 / d(x, c_i)^p, c_i the patch centres: map(x) = sum_i w_i s_i / sum_i w_i. At a centre
the weight is infinite, so the map equals s_i there exactly.

The weights depend only on the geometry, so we build the normalised (H*W, K) matrix once and a
map becomes one matrix product: maps = scores @ W^T. For numerical safety the weights are
computed as (d_min(x) / d_i(x))^p in [0,1], which gives the same normalised weights without
overflow near a centre.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from .patches import PatchGrid

IDW_POWER = 5.0  # the exponent p of supp. Sec. C.1


def idw_matrix(centres: torch.Tensor, height: int, width: int, power: float = IDW_POWER) -> torch.Tensor:
    """Normalised IDW weights `(H*W, K)` float32 for centres `(K,2)` (row, col)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                            torch.arange(width, dtype=torch.float64), indexing="ij")
    pix = torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=1)  # (H*W, 2)
    d = torch.cdist(pix, centres.to(torch.float64))  # (H*W, K)
    dmin = d.min(dim=1, keepdim=True).values
    ratio = torch.where(d > 0, dmin / d.clamp_min(1e-12), torch.ones_like(d))
    w = ratio.pow(power)
    return (w / w.sum(dim=1, keepdim=True)).float()


@lru_cache(maxsize=8)
def _grid_matrix(grid: PatchGrid, power: float, device: str) -> torch.Tensor:
    return idw_matrix(grid.centres, grid.image_size, grid.image_size, power).to(device)


def idw_maps(scores: torch.Tensor, grid: PatchGrid = PatchGrid(), power: float = IDW_POWER) -> torch.Tensor:
    """Patch scores `(N, K*K)` in raster order -> score maps `(N, S, S)` (one matrix product)."""
    if scores.dim() != 2 or scores.shape[1] != grid.n_patches:
        raise ValueError(f"expected scores (N, {grid.n_patches}) for a {grid.per_side}x{grid.per_side} "
                         f"grid; got {tuple(scores.shape)}")
    if not torch.isfinite(scores).all():
        raise ValueError("patch scores contain NaN or inf; refusing to interpolate them")
    w = _grid_matrix(grid, float(power), str(scores.device))
    maps = scores.float() @ w.t()
    return maps.view(-1, grid.image_size, grid.image_size)
