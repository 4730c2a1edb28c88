"""Did Global-Net learn the context? (paper Sec. 3.1-3.2; chapter 4 of the book)

Global-Net is trained to predict a normal patch's local feature Z_l from its surroundings
(Eq. 6-7). How well it does is measured on normal *test* patches, which it has never seen, as a
coefficient of determination over all grid patches and feature dimensions:

    R^2 = 1 - MSE(prediction, Z_l) / Var(Z_l)

and compared with two trivial predictors that use no context at all:
  * constant: the mean Z_l of the training patches (R^2 about 0, by construction);
  * position mean: the mean Z_l of the training patches *at the same grid position*. On aligned
    objects this explains most of the variance, so a Global-Net that is worse than it has not
    learned what the surroundings say.

Everything is computed in the space in which s_IAD is measured (the model's FeatureScaler:
standardised units for the short profiles, raw Z_l for the paper's setting).
"""
from __future__ import annotations

import torch

from .fast_local import grid_local_features
from .patches import PatchGrid
from .teacher import normalize


def r2(pred: torch.Tensor, target: torch.Tensor) -> float:
    """1 - MSE / variance over all samples and dimensions: pred, target `(..., n)`."""
    t = target.reshape(-1, target.shape[-1]).double()
    p = pred.reshape(-1, target.shape[-1]).double()
    return float(1 - (p - t).pow(2).sum() / (t - t.mean(0)).pow(2).sum())


@torch.no_grad()
def grid_targets(model, images: torch.Tensor, grid: PatchGrid, batch_images: int = 8) -> torch.Tensor:
    """Scaled Z_l of every grid patch of `(N,3,S,S)` images in [0,1] -> `(N, K*K, 128)`."""
    dev = next(model.local_net.parameters()).device
    z = torch.cat([grid_local_features(model.local_net, normalize(b.to(dev)), grid.top_left.to(dev),
                                       grid.patch_size, 400).cpu() for b in images.split(batch_images)])
    return model.scaler(z)


def context_r2(z_l: torch.Tensor, z_g: torch.Tensor, z_train: torch.Tensor) -> dict:
    """R^2 on normal test patches of Global-Net and of the two trivial predictors.

    z_l, z_g: scaled local features and Global-Net predictions of normal test images
    `(N, K*K, 128)`; z_train: scaled local features of the training images at the same grid
    `(M, K*K, 128)`.
    """
    return {"r2_global": r2(z_g, z_l),
            "r2_position_mean": r2(z_train.mean(0, keepdim=True).expand_as(z_l), z_l),
            "r2_constant": r2(z_train.mean((0, 1)).expand_as(z_l), z_l)}


@torch.no_grad()
def dad_auroc(model, images: torch.Tensor, z_g: torch.Tensor, grid: PatchGrid, seed: int = 0,
              max_pairs: int = 4000, stains: dict | None = None) -> float:
    """Does the DAD head tell stained from real patches on held-out normal images? (Eq. 8, 12)

    images: normal test images `(N,3,S,S)`; z_g: Global-Net's predictions for them `(N, K*K, 128)`.
    Every grid patch (up to `max_pairs`, evenly spaced) is scored twice by s_DAD, as it is and
    with one stain (stains.py; `stains`: add_stains keyword arguments, the run's own negatives)
    -> AUROC of "stained above real" (0.5 = chance, 1 = perfect).
    """
    from sklearn.metrics import roc_auc_score

    from .heads import dad_score
    from .patches import crop
    from .stains import add_stains
    n, k2 = z_g.shape[:2]
    pick = torch.linspace(0, n * k2 - 1, min(max_pairs, n * k2)).round().long().unique()
    tl = grid.top_left[pick % k2]
    p = crop(images[pick // k2], tl.unsqueeze(1), grid.patch_size)[:, 0]
    p_neg, _ = add_stains(p, generator=torch.Generator().manual_seed(seed), **(stains or {}))
    dev = next(model.local_net.parameters()).device
    zg = z_g.reshape(-1, z_g.shape[-1])[pick].to(dev)
    s = [dad_score(model.head, model.scaler(model.local_net(normalize(x.to(dev)))), zg).float().cpu()
         for x in (p, p_neg)]
    labels = torch.cat([torch.zeros(len(pick)), torch.ones(len(pick))])
    return float(roc_auc_score(labels.numpy(), torch.cat(s).numpy()))
