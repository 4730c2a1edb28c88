"""The two anomaly-detection heads (paper Sec. 3.2).

IAD head (Eq. 7 in training, Eq. 11 at inference): no parameters, the mean squared difference
    s_IAD = (1/n) ||Z_l - Z_g||^2 with n = 128.

DAD head (Eq. 8 and 12, supplementary Tab. 3): a small classifier C on [Z*, Z_g] (256-d):
    FC 256->128, LeakyReLU(1e-2), FC 128->2, LeakyReLU(1e-2), Softmax.

Label convention. The paper trains C with target 0 for the real patch (Eq. 9) but scores with
s_DAD = 1 - C (Eq. 12), which would give *low* scores to distorted patches. We use the reading in
which the score means what it says: C's output p = probability that the local feature *matches*
its surroundings (a real, undistorted patch), the real patch p has target "match" and the
stained patch p- has target "distorted", and s_DAD = 1 - p is high for distorted patches.
Column MATCH (0) of the softmax is p, column DISTORTED (1) is 1 - p.
"""
from __future__ import annotations

import torch
from torch import nn

MATCH, DISTORTED = 0, 1
DAD_SLOPE = 1e-2


def iad_score(z_l: torch.Tensor, z_g: torch.Tensor) -> torch.Tensor:
    """Eq. 7 / Eq. 11: `(B,n), (B,n) -> (B,)` mean squared difference per sample."""
    if z_l.shape != z_g.shape:
        raise ValueError(f"local and global features differ in shape: {tuple(z_l.shape)} vs {tuple(z_g.shape)}")
    return (z_l - z_g).pow(2).mean(dim=1)


class DADHead(nn.Module):
    """DAD head of supplementary Tab. 3: `(B,128), (B,128) -> (B,2)` class probabilities."""

    def __init__(self, feature_dim: int = 128):
        super().__init__()
        self.fc0 = nn.Linear(2 * feature_dim, 128)
        self.lrelu0 = nn.LeakyReLU(DAD_SLOPE)
        self.fc1 = nn.Linear(128, 2)
        self.lrelu1 = nn.LeakyReLU(DAD_SLOPE)

    def logits(self, z_local: torch.Tensor, z_global: torch.Tensor) -> torch.Tensor:
        """Pre-softmax outputs `(B,2)` (after the last LeakyReLU, as in Tab. 3)."""
        x = torch.cat([z_local, z_global], dim=1)
        return self.lrelu1(self.fc1(self.lrelu0(self.fc0(x))))

    def forward(self, z_local: torch.Tensor, z_global: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities `(B,2)`: column MATCH is p of Eq. 8."""
        return self.logits(z_local, z_global).softmax(dim=1)


def dad_score(head: DADHead, z_l: torch.Tensor, z_g: torch.Tensor) -> torch.Tensor:
    """Eq. 12: s_DAD = 1 - p = probability of 'distorted', `(B,)`; high for distorted patches."""
    return head(z_l, z_g)[:, DISTORTED]
