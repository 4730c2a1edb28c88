"""Is this image defective at all? The image-level score (supp. D.1; ours: docs/deviations.md#image-score).

The paper scores an image by the maximum of its anomaly map (supp. D.1), as the MFFA-lite
peers do. On our runs that ranks images poorly even where the maps localise well: some grid
positions are hard on every normal image (an object's rim, a tire's hub), so a normal image's
hardest patch often outscores a defect elsewhere. Ours puts each position on its own scale:

    image score = max_p (s_p - mean_p) / std_p,

with mean_p, std_p the mean and standard deviation of the Eq. 13 score s at grid position p over
normal training images. Training images are in the residual bank, so their own patches would
score ~0; they are scored *leaving their own image out* of the bank (`leave_one_out_scores`),
which makes them look like unseen normal images. The pixel maps (and PRO) do not change.
"""
from __future__ import annotations

import torch
from torch import nn

from .heads import ResidualBank, ResidualWhitener
from .neighbours import nearest_distances
from .scoring import combine


class PositionNorm(nn.Module):
    """Per-position normal statistics of the patch scores: the leave-one-out s_IAD and s_DAD of
    M training images (the residual bank's) on the scoring grid, `(M, K*K)` each (saved with the
    model; empty until fitted, and then `image_scores` is the paper's maximum)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("iad", torch.zeros(0, 0))
        self.register_buffer("dad", torch.zeros(0, 0))

    def __len__(self) -> int:
        return self.iad.shape[0]

    @torch.no_grad()
    def fit(self, s_iad: torch.Tensor, s_dad: torch.Tensor) -> "PositionNorm":
        """Store the scores `(M, K*K)` of M >= 2 normal images (the same grid as the test scores)."""
        if s_iad.shape != s_dad.shape or s_iad.dim() != 2 or len(s_iad) < 2:
            raise ValueError(f"PositionNorm needs s_IAD and s_DAD of one shape (M >= 2, K*K); got "
                             f"{tuple(s_iad.shape)} and {tuple(s_dad.shape)}")
        self.iad, self.dad = s_iad.float().cpu().clone(), s_dad.float().cpu().clone()
        return self

    def image_scores(self, s_iad: torch.Tensor, s_dad: torch.Tensor, lambda_s: float) -> torch.Tensor:
        """Patch scores `(N, K*K)` -> image scores `(N,)`: the largest per-position z-score of Eq. 13's
        s (the maximum of s itself when unfitted)."""
        s = combine(s_iad.float(), s_dad.float(), lambda_s)
        if not len(self):
            return s.amax(dim=1)
        if self.iad.shape[1] != s.shape[1]:
            raise ValueError(f"PositionNorm was fitted on {self.iad.shape[1]} grid positions; these scores "
                             f"have {s.shape[1]} (another grid_per_side): fit it again on this grid")
        ref = combine(self.iad, self.dad, lambda_s).to(s.device)
        std = ref.std(dim=0)
        return ((s - ref.mean(dim=0)) / (std + 1e-3 * std.mean() + 1e-12)).amax(dim=1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("iad", "dad"):  # the saved size; a run saved before this existed loads unfitted
            state_dict.setdefault(prefix + name, torch.zeros(0, 0))
            setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@torch.no_grad()
def leave_one_out_scores(residuals: torch.Tensor, s_dad: torch.Tensor, owners: torch.Tensor,
                         whitener: ResidualWhitener, bank: ResidualBank, bank_owners: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """s_IAD and (calibrated) s_DAD of training patches as if their image were not in the bank.

    residuals: Z_l - Z_g `(M, K*K, 128)` of M training images, s_dad: their raw s_DAD `(M, K*K)`,
    owners: their image indices `(M,)`; bank_owners: the image index of every bank row `(len(bank),)`.
    -> two `(M, K*K)` tensors, computed as `heads.iad_and_neighbour` and `ResidualBank.calibrate` do
    but over the bank rows of the other images only.
    """
    m, k2, n = residuals.shape
    r = whitener(residuals.reshape(-1, n)).float()
    if not len(bank):  # Eq. 11 without our bank: nothing of the image's own to leave out
        return r.pow(2).mean(dim=1).view(m, k2), s_dad
    dist, idx = nearest_distances(r, bank.residuals, return_index=True,
                                  owners=(owners.repeat_interleave(k2), bank_owners))
    s_iad = (dist / n ** 0.5).view(m, k2)
    if bank.calibrates_dad:
        s_dad = bank.calibrate(s_dad.reshape(-1), idx).view(m, k2)
    return s_iad, s_dad
