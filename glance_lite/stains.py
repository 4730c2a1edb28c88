"""Negative patches p- for the DAD head (paper Sec. 3.2, supplementary Sec. C.1 / C.2).

MVTec-style data: a copy of the real patch with one small random stain (after Collin &
De Vleeschouwer): an irregular blob with a random colour, opacity and soft edge covering a small
part of the patch, so the negative differs from the real patch only a little.

One-class data (CIFAR-10 protocol, supplementary C.2): the negative patch is a *different*
random training image resized to the patch size (`shuffled_negatives`).

All functions work on whole batches `(B,3,P,P)` of [0,1] images; randomness comes from an
explicit `torch.Generator` so that runs are reproducible.
"""
from __future__ import annotations

import math

import torch


def stain_masks(batch: int, size: int, generator: torch.Generator | None = None,
                min_radius: float = 2.0, max_radius: float | None = None,
                harmonics: int = 3, device: torch.device | str = "cpu") -> torch.Tensor:
    """Soft blob masks `(B,1,size,size)` in [0,1].

    Each blob is star-shaped around a random centre: its radius along angle t is
    r0 * (1 + sum_k a_k cos(k t + phi_k)) with random r0 in [min_radius, max_radius] (default
    size/5, so a blob covers at most about an eighth of the patch) and |a_k| <= 0.3/k.
    """
    max_radius = size / 5 if max_radius is None else max_radius
    g = dict(generator=generator, device=device)
    r0 = min_radius + (max_radius - min_radius) * torch.rand(batch, 1, 1, **g)
    margin = 2.0
    centre = margin + (size - 1 - 2 * margin) * torch.rand(batch, 2, **g)
    k = torch.arange(1, harmonics + 1, device=device, dtype=torch.float32)
    amp = (torch.rand(batch, harmonics, **g) * 0.6 - 0.3) / k
    phase = torch.rand(batch, harmonics, **g) * 2 * math.pi

    coords = torch.arange(size, device=device, dtype=torch.float32)
    dy = coords.view(1, size, 1) - centre[:, 0].view(-1, 1, 1)
    dx = coords.view(1, 1, size) - centre[:, 1].view(-1, 1, 1)
    dist = torch.sqrt(dy ** 2 + dx ** 2)
    theta = torch.atan2(dy, dx)  # (B,size,size)
    wobble = (amp.view(batch, harmonics, 1, 1)
              * torch.cos(k.view(1, -1, 1, 1) * theta.unsqueeze(1) + phase.view(batch, harmonics, 1, 1))).sum(1)
    radius = r0 * (1 + wobble)
    return (radius - dist + 0.5).clamp(0, 1).unsqueeze(1)  # 1 px soft edge


def add_stains(patches: torch.Tensor, generator: torch.Generator | None = None,
               min_opacity: float = 0.5, min_radius: float = 2.0,
               max_radius: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stain every patch once: `(B,3,P,P)` in [0,1] -> (stained `(B,3,P,P)`, blob mask `(B,1,P,P)`).

    The paper asks for a "small" stain and gives no size. The defaults (radius 2 to P/5, opacity
    >= 0.5) are the `paper` profile's; the short profiles use radius 4-8 px, opacity >= 0.7
    (`Deviations.stain_kwargs`): measured on magnetic tiles, a classifier trained to convergence on
    frozen Local-Net features of real vs stained patches reaches validation log-loss 0.575 with
    the defaults (many faint stains are invisible in Z_l) and 0.480 with the larger ones.
    """
    if patches.dim() != 4 or patches.shape[1] != 3:
        raise ValueError(f"add_stains expects patches (B, 3, P, P); got {tuple(patches.shape)}")
    b, _, size, _ = patches.shape
    dev = patches.device
    blob = stain_masks(b, size, generator=generator, min_radius=min_radius, max_radius=max_radius, device=dev)
    colour = torch.rand(b, 3, 1, 1, generator=generator, device=dev)
    opacity = min_opacity + (1 - min_opacity) * torch.rand(b, 1, 1, 1, generator=generator, device=dev)
    alpha = blob * opacity
    return patches * (1 - alpha) + colour * alpha, blob


def context_stains(images: torch.Tensor, max_stains: int, generator: torch.Generator | None = None,
                   min_radius: float = 6.0, max_radius: float = 24.0, grey: bool = False) -> torch.Tensor:
    """Paint 0..max_stains random stains (each count equally likely) on every image `(B,3,S,S)`
    in [0,1] -> `(B,3,S,S)`. Our training-time corruption of Global-Net's *context* (context_train.py):
    the targets stay the clean patches' features, so Global-Net learns to predict a patch from
    surroundings that may themselves hold a defect. grey=True: each stain one random grey level
    (`Deviations.context_stain_grey`): random colours taught Global-Net to discard colour (fabric:
    a dot's ink read from its layer 1_2 with accuracy 0.43 against 0.76 with grey stains; PRO on
    wrong-ink dots 0.775 -> 0.858; docs/deviations.md)."""
    b, _, size, _ = images.shape
    if max_stains <= 0:
        return images
    dev = images.device
    blobs = stain_masks(b * max_stains, size, generator=generator, min_radius=min_radius,
                        max_radius=max_radius, device=dev).view(b, max_stains, 1, size, size)
    count = torch.randint(0, max_stains + 1, (b, 1), generator=generator).to(dev)
    active = (torch.arange(max_stains, device=dev)[None] < count).float()           # (B, max_stains)
    colour = torch.rand(b, max_stains, 1 if grey else 3, 1, 1, generator=generator).to(dev).expand(-1, -1, 3, -1, -1)
    opacity = 0.5 + 0.5 * torch.rand(b, max_stains, 1, 1, 1, generator=generator).to(dev)
    out = images
    for k in range(max_stains):
        alpha = blobs[:, k] * opacity[:, k] * active[:, k].view(b, 1, 1, 1)
        out = out * (1 - alpha) + colour[:, k] * alpha
    return out


def shuffled_negatives(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One-class negatives: row i gets another row's image (a derangement), `(B,...) -> (B,...)`."""
    b = images.shape[0]
    if b < 2:
        raise ValueError("shuffled_negatives needs a batch of at least 2 images")
    perm = torch.randperm(b, generator=generator).to(images.device)
    source = torch.empty_like(perm)
    source[perm] = perm.roll(-1)  # perm[i] takes perm[i+1]: nobody keeps its own image
    return images[source]
