"""The two anomaly-detection heads (paper Sec. 3.2).

IAD head (Eq. 7 in training, Eq. 11 at inference): no parameters, the mean squared difference
    s_IAD = (1/n) ||Z_l - Z_g||^2 with n = 128.
Our option for Eq. 11 (`ResidualWhitener`, the short profiles; docs/deviations.md):
    s_IAD = (1/n) ||W (Z_l - Z_g)||^2,  W = C^(-1/2) (Cholesky), C the covariance of the residual
    Z_l - Z_g on normal training patches.
Global-Net cannot predict every direction of Z_l equally well; plain Eq. 11 lets the directions it
predicts worst dominate the score of every normal patch. Whitening measures the residual in units
of how far normal patches stray from their prediction in each direction, so a defect that moves
Z_l where normal residuals never go stands out. With W = I it is Eq. 11.
Our second option (`ResidualBank`, the short profiles' default):
    s_IAD = min_j ||W (Z_l - Z_g) - b_j|| / sqrt(n),  b_j the whitened residuals of normal
    training patches (a memory bank, as in the local-only baseline).
Eq. 11 measures how far the residual lies from the perfect prediction (residual 0). But normal
patches do not all disagree with their context in the same way: where a patch is hard to predict,
its residual is large yet *typical*. The bank asks instead "did any normal patch ever disagree
with its context like this?". With a bank holding only the zero residual, it is the square root
of the whitened Eq. 11 (the root keeps the score in the feature's units, which the IDW map
blends better next to s_DAD in [0, 1]).

Our option for Eq. 12 (`ResidualBank.dad`, `Deviations.calibrate_dad`): s_DAD minus the s_DAD of the
normal training patch whose residual is the nearest bank entry, floored at 0. Like s_IAD, s_DAD is
high on some normal patches (where Global-Net's prediction is vague, e.g. a fabric dot at the edge
of the patch: mean s_DAD 0.43 at 12-16 px from a dot against 0.16 far from dots), and λs = 0.8
adds that to every such normal patch. The calibrated score asks "does this patch look more
distorted than the normal patch that disagrees with its context most like it?"

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

from .neighbours import nearest_distances

MATCH, DISTORTED = 0, 1
DAD_SLOPE = 1e-2


def iad_score(z_l: torch.Tensor, z_g: torch.Tensor, whitener: "ResidualWhitener | None" = None,
              bank: "ResidualBank | None" = None) -> torch.Tensor:
    """Eq. 7 / Eq. 11: `(B,n), (B,n) -> (B,)` mean squared difference per sample (of the
    whitened residual when a fitted `whitener` is given); with a fitted `bank`, the RMS distance
    of the (whitened) residual to the nearest normal residual instead (our option, above)."""
    return iad_and_neighbour(z_l, z_g, whitener, bank)[0]


def iad_and_neighbour(z_l: torch.Tensor, z_g: torch.Tensor, whitener: "ResidualWhitener | None" = None,
                      bank: "ResidualBank | None" = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`iad_score` `(B,)` and, with a fitted `bank`, the index `(B,)` of the nearest bank residual
    (else None): the neighbour `ResidualBank.calibrate` takes s_DAD's baseline from."""
    if z_l.shape != z_g.shape:
        raise ValueError(f"local and global features differ in shape: {tuple(z_l.shape)} vs {tuple(z_g.shape)}")
    r = z_l - z_g
    r = r if whitener is None else whitener(r)
    if bank is not None and len(bank):
        return bank.search(r)
    return r.pow(2).mean(dim=1), None


# Shrinkage of the residual covariance towards its mean variance. Without it (1e-3) the
# directions in which normal residuals hardly vary get weights so large that noise in them
# dominates, and the "which part belongs here" directions, where logical defects show, are
# damped (cable 'missing' PRO 0.90 -> 0.72, fabric 0.37 -> 0.03). 0.1 was chosen on the three
# synthetic test sets (circuit / cable / fabric PRO 0.948 / 0.796 / 0.320 at 0.1; 0.931 / 0.523 /
# 0.306 at 1e-3; 0.946 / 0.856 / 0.309 at 1.0); the real development sets were not looked at.
SHRINK = 0.1


class ResidualWhitener(nn.Module):
    """W of our whitened Eq. 11 (above): residuals `(..., n)` -> W r `(..., n)`; identity until fitted."""

    def __init__(self, dim: int = 128):
        super().__init__()
        self.register_buffer("matrix", torch.eye(dim))

    @torch.no_grad()
    def fit(self, residuals: torch.Tensor, shrink: float = SHRINK) -> "ResidualWhitener":
        """W = L^-1 with L L^T = C + shrink * mean(diag C) * I, C the covariance of `(M, n)` residuals."""
        r = residuals.reshape(-1, residuals.shape[-1]).double()
        c = torch.cov(r.t())
        c = c + shrink * c.diagonal().mean() * torch.eye(len(c), dtype=c.dtype)
        eye = torch.eye(len(c), dtype=c.dtype)
        self.matrix.copy_(torch.linalg.solve_triangular(torch.linalg.cholesky(c), eye, upper=False).float())
        return self

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return r @ self.matrix.to(r.device, r.dtype).t()


class ResidualBank(nn.Module):
    """The b_j of our nearest-residual Eq. 11 (above): (whitened) residuals of normal training
    patches `(M, n)`, kept in float16 (saved with the model); empty until fitted. With our
    calibrated Eq. 12 (above), also each of those patches' s_DAD `(M,)` (`dad`; else empty)."""

    def __init__(self, dim: int = 128):
        super().__init__()
        self.register_buffer("residuals", torch.zeros(0, dim, dtype=torch.float16))
        self.register_buffer("dad", torch.zeros(0, dtype=torch.float16))

    def __len__(self) -> int:
        return self.residuals.shape[0]

    @torch.no_grad()
    def fit(self, residuals: torch.Tensor, dad: torch.Tensor | None = None) -> "ResidualBank":
        """Store `(..., n)` residuals (flattened to `(M, n)`) and, optionally, the s_DAD `(...)`
        of the same patches (for `calibrate`)."""
        self.residuals = residuals.reshape(-1, residuals.shape[-1]).to(torch.float16).contiguous()
        if dad is not None and dad.numel() != len(self):
            raise ValueError(f"{dad.numel()} s_DAD values for {len(self)} bank residuals; expected one per residual")
        self.dad = (torch.zeros(0) if dad is None else dad.reshape(-1)).to(torch.float16)
        return self

    @property
    def calibrates_dad(self) -> bool:
        return len(self) > 0 and self.dad.numel() == len(self)

    @torch.no_grad()
    def search(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Residuals `(B, n)` -> (RMS distance to the nearest bank residual `(B,)`, its index `(B,)`)."""
        d, idx = nearest_distances(r, self.residuals, return_index=True)
        return d / r.shape[-1] ** 0.5, idx

    @torch.no_grad()
    def calibrate(self, s_dad: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Our calibrated Eq. 12: s_DAD `(B,)` minus the s_DAD of bank entry idx `(B,)`, floored at 0."""
        return (s_dad - self.dad[idx].to(s_dad.device, s_dad.dtype)).clamp(min=0)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("residuals", "dad"):  # the bank's size is the saved one's
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


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
