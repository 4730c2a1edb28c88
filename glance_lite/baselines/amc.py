"""MFFA's anomaly map compensation block, AMC (MFFA Sec. 3, inference; Sec. 4, details).

The final map is the pixel-wise product of the NNS map and the Gaussian map, smoothed by a
Gaussian filter with sigma = 4; the image score is the map's maximum. The paper does not say
how the two maps are brought to a common scale before the product. We min-max normalise each
one with statistics of *normal* maps - held-out training images scored by models fitted on
the other training images (mffa.py), never the test set - and clip at 0 from below: without
the clip two "more normal than any validation pixel" values (both negative) would multiply
into a large positive score. The upper scale does not change any ranking (it multiplies the
whole map by a constant); the offsets do, which is why they come from unseen normal images:
in-sample distances are too small (a coreset point is at distance 0 from itself).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .common import gaussian_smooth

SIGMA = 4.0


@dataclass(frozen=True)
class MinMax:
    """Min-max normalisation fitted on normal maps: x -> max(0, (x - lo) / (hi - lo))."""

    lo: float
    hi: float

    @classmethod
    def fit(cls, maps: torch.Tensor) -> "MinMax":
        """Statistics of normal (validation) score maps `(N,H,W)`."""
        return cls(float(maps.min()), float(maps.max()))

    def __call__(self, maps: torch.Tensor) -> torch.Tensor:
        return ((maps - self.lo) / max(self.hi - self.lo, 1e-12)).clamp_min(0)


def amc(nns_maps: torch.Tensor, gauss_maps: torch.Tensor, nns_norm: MinMax, gauss_norm: MinMax,
        sigma: float = SIGMA) -> torch.Tensor:
    """M_final = smooth(norm(M_NNS) * norm(M_gaussian)), maps `(N,H,W)` -> `(N,H,W)`."""
    if nns_maps.shape != gauss_maps.shape:
        raise ValueError(f"AMC needs maps of one shape; got {tuple(nns_maps.shape)} and "
                         f"{tuple(gauss_maps.shape)}")
    return gaussian_smooth(nns_norm(nns_maps) * gauss_norm(gauss_maps), sigma)


def image_scores(maps: torch.Tensor) -> torch.Tensor:
    """Image anomaly scores `(N,)`: the maximum of each map `(N,H,W)` (MFFA Sec. 3, AMC)."""
    return maps.flatten(1).max(dim=1).values
