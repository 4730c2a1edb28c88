"""Training Global-Net and the DAD head with many holes per image (paper Sec. 3.2, Eq. 7-10).

The paper trains on one random (image, patch) pair per sample: a full masked pass of Global-Net
per hole and two Local-Net passes (p and its stained copy p-). That is how `train.global_step`
does it (the `paper` profile). In a short schedule it gives Global-Net far too little
supervision, so the short profiles use the same loss, computed more cheaply:

* Targets once. Local-Net is frozen in this phase, so the targets Z_l of every training image
  at every position of a lattice (corners on multiples of `stride` pixels) are computed once,
  before training (`local_targets`, through the dense path of fast_local.py).
* Many holes per image. Global-Net's layers 0 .. 1_2 run once per image without a hole, and
  each hole recomputes only the window that it changes (fast_global.py, the same exact maths
  as scoring, differentiable). So a step of 8 images x 64 holes costs about as much as a few
  dozen full passes.
* Standardised targets (our reading of Eq. 7, after Bergmann et al., "Uninformed Students",
  CVPR 2020, who normalise the teacher's outputs the same way). Z_l carries a common offset
  hundreds of times larger than its variance; a short schedule spends itself learning the
  offset. `FeatureScaler` holds the per-dimension mean and std of the training targets; it is
  saved with the model and applied identically in training and scoring, so s_IAD (Eq. 11) is
  measured in units of each dimension's spread. With `standardize=False` it is the identity.
* After training, `fit_residual_model` estimates the covariance of the residual Z_l - Z_g on
  normal training patches for our whitened Eq. 11 (heads.py, `ResidualWhitener`) and keeps the
  whitened residuals of the training images for our nearest-residual Eq. 11 (`ResidualBank`).
* The DAD head (Eq. 8-9) sees the first `dad_holes` holes of a step: equiprobably the real patch
  or its stained copy (stains.py), whose Local-Net feature is computed on the fly.
* Our mismatch negatives (`Deviations.mismatch_negatives`; docs/deviations.md). With stains as the only negatives a blank patch is never "distorted", so the head
  learns "no stain = real" and a *missing* part looks very real to it (fabric: s_DAD 0.07-0.11
  on missing dots, 0.34 at the median normal pixel). With probability `mismatch` a negative is
  instead the real Z_l of another hole of the same image (`mismatch_partners`), when it differs
  from this hole's more than the step's median pair does: a real-looking patch in the wrong
  place, which the head can only tell from Z_g.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .fast_global import features_at, hole_free_front, window_side
from .diagnostics import r2
from .fast_local import grid_local_features
from .heads import dad_score
from .losses import joint_loss
from .patches import PATCH_SIZE, PatchGrid, crop
from .scoring import patch_features
from .stains import add_stains, context_stains
from .teacher import normalize

if TYPE_CHECKING:
    from .profiles import Deviations


class FeatureScaler(nn.Module):
    """Per-dimension standardisation of local features: z `(..., 128)` -> (z - mean) / std."""

    def __init__(self, dim: int = 128):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, z: torch.Tensor, eps: float = 1e-6) -> "FeatureScaler":
        """Mean and std of features `(M, 128)` (e.g. all training targets)."""
        z = z.reshape(-1, z.shape[-1]).double()
        self.mean.copy_(z.mean(0))
        self.std.copy_(z.std(0).clamp(min=eps))
        return self

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean.to(z.device, z.dtype)) / self.std.to(z.device, z.dtype)


def lattice(image_size: int = 256, patch_size: int = PATCH_SIZE, stride: int = 4) -> torch.Tensor:
    """`(P,2)` top-left corners on multiples of `stride` (even, so fast_local's dense path applies)."""
    if stride % 2:
        raise ValueError(f"lattice stride must be even (fast_local.py needs even corners); got {stride}")
    pos = torch.arange(0, image_size - patch_size + 1, stride)
    r, c = torch.meshgrid(pos, pos, indexing="ij")
    return torch.stack([r.reshape(-1), c.reshape(-1)], dim=1)


@torch.no_grad()
def local_targets(local_net: nn.Module, images: torch.Tensor, positions: torch.Tensor,
                  batch_images: int = 4, dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """Z_l of every image `(N,3,S,S)` in [0,1] at every position `(P,2)` -> `(N,P,128)` on the CPU.

    Stored in float16 by default (about 0.8 MB per image for the stride-4 lattice)."""
    local_net.eval()
    dev = next(local_net.parameters()).device
    out = [grid_local_features(local_net, normalize(b.to(dev)), positions.to(dev), PATCH_SIZE, 512).to("cpu", dtype)
           for b in images.split(batch_images)]
    return torch.cat(out)


@torch.no_grad()
def fit_prior(net: nn.Module, positions: torch.Tensor, mean_targets: torch.Tensor) -> float:
    """Start the "coords" position prior P (global_net.py) at the per-position mean target.

    positions `(P,2)` top-left corners, mean_targets `(P,128)` the mean (standardised) target
    there over the training images. Least squares: the knot table whose bilinear reading at the
    P hole centres is closest to the means. Returns the R^2 of that fit over the P means.
    """
    centres = positions.float() + (PATCH_SIZE - 1) / 2
    eye = torch.eye(net.prior.shape[-1] ** 2).view(-1, 1, *net.prior.shape[-2:])  # one knot each
    saved = net.prior.data.clone()
    basis = []
    for e in eye.split(64):  # the interpolation weight of every knot at every centre
        net.prior.data = e.view(len(e), 1, *e.shape[-2:]).transpose(0, 1).contiguous()
        basis.append(net.position_prior(centres))
    net.prior.data = saved
    a = torch.cat(basis, dim=1)  # (P, K*K)
    sol = torch.linalg.lstsq(a.double(), mean_targets.double()).solution  # (K*K, 128)
    net.prior.copy_(sol.t().reshape(net.prior.shape).float())
    fit = a @ sol.float()
    return float(1 - (fit - mean_targets).pow(2).sum() / (mean_targets - mean_targets.mean(0)).pow(2).sum())


def shifted_holes(images: torch.Tensor, positions: torch.Tensor, holes: int, max_shift: int,
                  g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Our augmentation of Global-Net's training images: a random translation per image.

    images `(B,3,S,S)`; positions `(P,2)` the target lattice (`lattice`, row-major, stride s).
    Each image moves by (dy, dx), multiples of s in [-max_shift, max_shift]; the strip it uncovers
    is filled by reflection. Holes are drawn among lattice positions whose patch stays inside the
    image after the move, so the target of a hole at `tl` is still the precomputed Z_l at `tl - (dy, dx)`.
    Returns the moved images `(B,3,S,S)`, the target indices `(B,holes)` into positions and the
    holes' top-left corners in the moved images `(B*holes,2)`.

    Why: a category with 60 training images shows Global-Net 60 layouts. On fabric (a dot lattice
    at a random phase per image) it memorised them: R^2 0.65 on training patches, -0.24 on test
    patches. Shifts of a few pixels show it every phase in between (docs/deviations.md).
    """
    b, _, size, _ = images.shape
    stride = int(positions[1, 1] - positions[0, 1])
    n = int((positions[:, 1] == 0).sum())                             # lattice points per side
    k = max_shift // stride
    shift = torch.randint(-k, k + 1, (b, 2), generator=g)             # in lattice steps
    lo, hi = (-shift).clamp(min=0), (n - 1 - shift.clamp(min=0))      # valid lattice index range
    u = torch.rand(b, holes, 2, generator=g)
    ij = lo[:, None] + (u * (hi - lo + 1)[:, None]).long()            # (B, holes, 2) source indices
    pick = ij[..., 0] * n + ij[..., 1]
    tl = ((ij + shift[:, None]) * stride).view(-1, 2)
    pad = k * stride
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode="reflect")
    rows = (pad - shift[:, 0] * stride)[:, None] + torch.arange(size)  # moved[y] = image[y - dy]
    cols = (pad - shift[:, 1] * stride)[:, None] + torch.arange(size)
    moved = padded[torch.arange(b)[:, None, None, None], torch.arange(3)[None, :, None, None],
                   rows[:, None, :, None], cols[:, None, None, :]]
    return moved, pick, tl


@torch.no_grad()
def layout_r2(targets: torch.Tensor, scaler: nn.Module) -> float:
    """How much a fixed layout explains: R^2 of the per-position mean of half the training images
    (even indices) as a prediction of the other half's targets (odd indices), in standardised
    units. targets `(N,P,128)` from `local_targets`. About 0.7-0.85 for circuit, cable and tire,
    whose parts sit at (nearly) the same place in every image; about 0 for fabric, whose dot
    lattice sits at another offset in every image (the value chooses `Profile.context_shift`'s use).
    """
    if len(targets) < 2:
        return float("nan")
    z = scaler(targets.float())
    return r2(z[0::2].mean(0, keepdim=True).expand_as(z[1::2]), z[1::2])


def hard_gamma(dev: Deviations, step: int, train_steps: int) -> float:
    """Eq. 7's weighting of the hardest holes at Global-Net step `step` (losses.joint_loss)."""
    return dev.hard_holes_gamma if step < dev.hard_holes_until * train_steps else 0.0


def context_step(model: nn.Module, images: torch.Tensor, ctx: dict, g: torch.Generator, n_images: int,
                 dev: Deviations, lambda_t: float, device: torch.device,
                 gamma: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Eq. 10 on `n_images` random training images x `dev.holes_per_image` random lattice holes each.

    images `(N,3,S,S)` in [0,1]; ctx: {"targets": `local_targets(...)` `(N,P,128)`, "positions":
    `(P,2)`, "shift": max px of `shifted_holes` (0: none)} (train.prepare_context). Uses
    model.local_net (frozen), model.global_net, model.head and model.scaler. From `dev`: the DAD
    negatives' stains, the context stains on Global-Net's input (targets stay clean), the share of
    mismatch negatives (module docstring); `gamma`: joint_loss's weighting of the hardest holes.
    """
    targets, positions, holes = ctx["targets"], ctx["positions"], dev.holes_per_image
    idx = torch.randint(0, images.shape[0], (n_images,), generator=g)
    if ctx["shift"]:
        imgs, pick, tl = shifted_holes(images[idx], positions, holes, ctx["shift"], g)
    else:
        imgs = images[idx]
        pick = torch.randint(0, positions.shape[0], (n_images, holes), generator=g)
        tl = positions[pick].view(-1, 2)                                # (n_images*holes, 2)
    img_idx = torch.arange(n_images).repeat_interleave(holes)
    z_l = model.scaler(targets[idx[:, None], pick].view(-1, targets.shape[-1]).float().to(device))
    src = positions[pick].view(-1, 2)                     # where the hole's patch is in images[idx]
    imgs = normalize(context_stains(imgs, dev.context_stains, g, grey=dev.context_stain_grey).to(device))
    base = hole_free_front(model.global_net, imgs)
    z_g = features_at(model.global_net, imgs, base, img_idx.to(device), tl.to(device), PATCH_SIZE,
                      window_side(PATCH_SIZE))
    # DAD head on the first dad_holes holes: the real patch or its stained copy, equiprobably
    k = min(dev.dad_holes, len(tl))
    p = crop(images[idx][img_idx[:k]], src[:k].unsqueeze(1), PATCH_SIZE)[:, 0]
    p_neg, _ = add_stains(p, generator=g, **dev.stain_kwargs())
    is_real = (torch.rand(k, generator=g) < 0.5).to(device)
    with torch.no_grad():
        z_neg = model.scaler(model.local_net(normalize(p_neg.to(device))))
    if dev.mismatch_negatives > 0:  # a real patch from elsewhere in the same image,
        z_mis = z_l[mismatch_partners(k, holes, g).to(device)]  # one that clearly differs
        d = (z_mis - z_l[:k]).pow(2).mean(1)
        use = (torch.rand(k, generator=g) < dev.mismatch_negatives).to(device) & (d > d.median())
        z_neg = torch.where(use[:, None], z_mis, z_neg)
    z_star = torch.where(is_real[:, None], z_l[:k], z_neg)
    return joint_loss(z_l, z_g, model.head.logits(z_star, z_g[:k]), is_real, lambda_t, gamma)


def mismatch_partners(k: int, holes: int, g: torch.Generator) -> torch.Tensor:
    """For each of the first k holes of a step (`holes` per image, image-major), the index of
    another hole of the same image, chosen at random -> `(k,)`."""
    b = torch.arange(k)
    step = torch.randint(1, holes, (k,), generator=g) if holes > 1 else torch.zeros(k, dtype=torch.long)
    return b // holes * holes + (b % holes + step) % holes


def residual_picks(n: int, max_whiten_images: int = 40, max_bank_images: int = 400,
                   bank: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Which of n training images (evenly spaced) fit the whitener and fill the bank -> (pick_w, pick_b)."""
    pick_w = torch.linspace(0, n - 1, min(max_whiten_images, n)).round().long().unique()
    pick_b = torch.linspace(0, n - 1, min(max_bank_images, n)).round().long().unique() if bank else pick_w
    return pick_w, pick_b


@torch.no_grad()
def training_residuals(model: nn.Module, images: torch.Tensor, grid: PatchGrid, chunk: int = 48,
                       batch_images: int = 16, dad: bool = False,
                       amp_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Residuals Z_l - Z_g (Z_l scaled) of images `(N,3,S,S)` at every grid patch `(N, K*K, 128)`
    and, with dad=True, those patches' s_DAD `(N, K*K)` (else None)."""
    model.eval()
    res, s_dad = [], []
    dev = next(model.head.parameters()).device
    for part in images.split(batch_images):
        z_l, z_g = patch_features(model.local_net, model.global_net, part, grid, chunk, amp_dtype=amp_dtype)
        z_l = model.scaler(z_l)
        res.append(z_l - z_g)
        if dad:
            s_dad.append(dad_score(model.head, z_l.flatten(0, 1).to(dev), z_g.flatten(0, 1).to(dev))
                         .float().cpu().view(z_l.shape[:2]))
    return torch.cat(res), (torch.cat(s_dad) if dad else None)


def fit_residual_model(model: nn.Module, images: torch.Tensor, grid: PatchGrid, whiten: bool = True,
                       bank: bool = False, max_whiten_images: int = 40, max_bank_images: int = 400,
                       chunk: int = 48, batch_images: int = 16, dad: bool = False,
                       amp_dtype: torch.dtype | None = None, position_norm: bool = False) -> None:
    """After training: residuals Z_l - Z_g of training images `(N,3,S,S)` at every patch of the
    scoring grid -> model.whitener fitted on up to `max_whiten_images` of them (evenly spaced),
    and (bank=True) model.bank filled with the whitened residuals of up to `max_bank_images`
    (dad=True: and with those patches' s_DAD, for our calibrated Eq. 12, heads.py);
    (position_norm=True) model.image_norm fitted on the bank's images (the whitener's without a
    bank), each scored leaving itself out of the bank (image_score.py).
    amp_dtype: autocast of the feature pass, as for scoring (`devices.amp_dtype_for`)."""
    from .image_score import PositionNorm, leave_one_out_scores
    pick_w, pick_b = residual_picks(len(images), max_whiten_images, max_bank_images, bank)
    use = torch.unique(torch.cat([pick_w, pick_b]))
    res, s_dad = training_residuals(model, images[use], grid, chunk, batch_images, dad or position_norm, amp_dtype)
    in_w = torch.isin(use, pick_w)
    if whiten:
        model.whitener.fit(res[in_w])
    in_bank = torch.isin(use, pick_b)
    if bank:
        model.bank.fit(model.whitener(res[in_bank]), s_dad[in_bank] if dad else None)
    in_n = in_bank if bank else in_w
    model.image_norm = PositionNorm()  # unfitted unless asked for: the maximum of the map (supp. D.1)
    if position_norm and in_n.sum() >= 2:
        bank_owners = use[in_bank].repeat_interleave(res.shape[1]) if bank else torch.zeros(0, dtype=torch.long)
        model.image_norm.fit(*leave_one_out_scores(res[in_n], s_dad[in_n], use[in_n], model.whitener,
                                                   model.bank, bank_owners))
