"""Training objectives (paper Eq. 1-3 for Local-Net, Eq. 7, 9, 10 for Global-Net + DAD head).

Shapes: local features z (B,128), decoded features D(z) and teacher descriptors R(p) (B,512).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .heads import DISTORTED, MATCH, iad_score


def distillation_loss(decoded: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Eq. 1: l_k = ||D(L(p)) - R(p)||^2, summed over the 512 dims, averaged over the batch."""
    return (decoded - teacher).pow(2).sum(dim=1).mean()


def correlation_matrix(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation `(n,n)` between the n feature dimensions of `z` (B,n) over the batch."""
    zc = z - z.mean(dim=0, keepdim=True)
    zn = zc / (zc.pow(2).sum(dim=0, keepdim=True).sqrt() + eps)
    return zn.t() @ zn


def compactness_loss(z: torch.Tensor) -> torch.Tensor:
    """Eq. 2, read so that it is a proper penalty.

    Taken literally, the sum of the off-diagonal correlations c_ij rewards anti-correlated
    features: it can be negative, down to -n (C is positive semi-definite, so 1^T C 1 >= 0 and
    the off-diagonal sum is >= -n). We use the mean of the *squared* off-diagonal correlations
    between the n output dimensions over the minibatch: l_c = 1/(n(n-1)) * sum_{i != j} c_ij^2,
    which is >= 0, exactly 0 when the dimensions are decorrelated, and 1 when every dimension is
    a copy of the same one. Needs a batch B >= 2.

    Weight (measured, cpu profile, last 20 steps of each phase): this mean of *squared*
    correlations is not switched off by its 1/(n(n-1)) normalisation; at lambda_c = 1 it ends
    at 0.33-0.83 against l_k = 1.1-4.0 after fine-tuning (10-45 % of l_local), and the features
    stay strongly correlated (RMS off-diagonal correlation about 0.6-0.9).
    Does the weight matter? Local-Net alone on `circuit`, cpu profile, seed 0, scored by the
    local-only baseline (`train(..., until="finetune")`, `get_profile("cpu", lambda_c=...)`):
    lambda_c = 0 / 1 / 10 gives RMS correlation of test features 0.86 / 0.56 / 0.36 and
    local-only PRO 0.609 / 0.604 / 0.596 (structural 0.940 / 0.956 / 0.974, logical 0.488 /
    0.478 / 0.463). The loss does decorrelate the features and helps structural defects a
    little; the total barely moves, so we keep the supplementary's lambda_c = 1.
    """
    if z.shape[0] < 2:
        raise ValueError(f"compactness loss needs a batch of at least 2 features; got {tuple(z.shape)}")
    c = correlation_matrix(z)
    n = c.shape[0]
    off = c - torch.diag_embed(torch.diagonal(c))
    return off.pow(2).sum() / (n * (n - 1))


def local_loss(decoded: torch.Tensor, teacher: torch.Tensor, z: torch.Tensor,
               lambda_k: float = 1.0, lambda_c: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 3: l_local = lambda_k l_k + lambda_c l_c (both 1.0 in the supplementary, Sec. C.1)."""
    lk, lc = distillation_loss(decoded, teacher), compactness_loss(z)
    total = lambda_k * lk + lambda_c * lc
    return total, {"l_k": lk.item(), "l_c": lc.item(), "l_local": total.item()}


def dad_loss(logits: torch.Tensor, is_real: torch.Tensor) -> torch.Tensor:
    """Eq. 9 as a two-class cross-entropy on the DAD head's pre-softmax outputs `(B,2)`.

    is_real (B,) bool: True for the real patch p (target MATCH), False for the stained p-
    (target DISTORTED). With p = softmax[:, MATCH] this is -(y log p + (1-y) log(1-p)), y = is_real.
    """
    target = torch.where(is_real, MATCH, DISTORTED).long()
    return F.cross_entropy(logits, target)


def joint_loss(z_l: torch.Tensor, z_g: torch.Tensor, logits: torch.Tensor, is_real: torch.Tensor,
               lambda_t: float = 0.01, hard_gamma: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 10: l = l_IAD + lambda_t l_DAD, with l_IAD = Eq. 7 averaged over the batch.

    hard_gamma > 0 (our deviation, `Profile.hard_holes_gamma`): Eq. 7's batch mean becomes a
    weighted mean, hole i weighted by (e_i / mean e)^hard_gamma (e = its Eq. 7 error, detached,
    weights normalised to mean 1), so the holes Global-Net predicts worst count more. The
    logged l_iad stays the plain mean, comparable with the paper's loss."""
    err = iad_score(z_l, z_g)
    l_iad = err.mean()
    fit = l_iad
    if hard_gamma:
        w = (err / l_iad).detach().pow(hard_gamma)
        fit = (w / w.mean() * err).mean()
    l_dad = dad_loss(logits, is_real)
    total = fit + lambda_t * l_dad
    return total, {"l_iad": l_iad.item(), "l_dad": l_dad.item(), "loss": total.item()}
