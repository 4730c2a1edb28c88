"""MFFA's pseudo sample generation block, PSG (MFFA Sec. 3, Fig. 2), on ResNet-18.

The backbone is fine-tuned on a self-supervised 3-way classification task: is an image
normal, a CutPaste image or a CutPaste-Scar image? Both augmentations follow CutPaste (Li et
al., CVPR 2021), which MFFA adopts unchanged:

    CutPaste       cut a rectangle of 2-15 % of the image area with aspect ratio in
                   [0.3, 3.3] (log-uniform), colour-jitter it, paste it at a random place;
    CutPaste-Scar  the same with a long thin box (width 2-16 px, height 10-25 px) that is
                   also rotated by up to +-45 degrees.

Both are batched: one box per image, drawn from a seeded generator, and the paste is a single
gather over all pixels (no loops over images or pixels). The optimiser settings are MFFA's
(MFFA Sec. 4: SGD, momentum 0.9, weight decay 3e-5, learning rate 3e-4); the number of steps
comes from the profile (mffa.py). BatchNorm statistics stay frozen during fine-tuning (the
batches here are tiny), so only the weights move.
"""
from __future__ import annotations

import copy
import math
import zlib

import torch
import torch.nn.functional as F
from torch import nn

from ..teacher import normalize

LABELS = ("normal", "cutpaste", "scar")


def step_generator(seed: int, step: int) -> torch.Generator:
    """The randomness of PSG step `step`: a pure function of (seed, step), like training.py's."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}/psg/{step}".encode()))


def _uniform(n: int, lo: float, hi: float, g: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def color_jitter(images: torch.Tensor, strength: float = 0.1, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """Per-image random brightness, contrast and saturation in [1-s, 1+s] of `(B,3,H,W)` in [0,1]."""
    b = images.shape[0]
    bright, contrast, sat = (_uniform(b, 1 - strength, 1 + strength, generator).view(b, 1, 1, 1)
                             .to(images.device) for _ in range(3))
    x = images * bright
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    gray = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return ((x - gray) * sat + gray).clamp(0, 1)


def cutpaste(images: torch.Tensor, generator: torch.Generator | None = None, scar: bool = False,
             area: tuple[float, float] = (0.02, 0.15), aspect: tuple[float, float] = (0.3, 3.3),
             scar_width: tuple[float, float] = (2, 16), scar_height: tuple[float, float] = (10, 25),
             max_angle: float = 45.0, jitter: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """CutPaste (or CutPaste-Scar) of every image `(B,3,H,W)` in [0,1].

    Returns (augmented `(B,3,H,W)`, pasted-region mask `(B,H,W)` bool). Only pixels inside the
    mask can differ from the input; the mask is a (rotated, for scars) rectangle lying wholly
    inside the image.
    """
    bsz, _, hgt, wid = images.shape
    g = generator
    if scar:
        w, h = _uniform(bsz, *scar_width, g), _uniform(bsz, *scar_height, g)
        theta = torch.deg2rad(_uniform(bsz, -max_angle, max_angle, g))
    else:
        a = _uniform(bsz, *area, g) * hgt * wid
        r = torch.exp(_uniform(bsz, math.log(aspect[0]), math.log(aspect[1]), g))
        w, h = (a * r).sqrt(), (a / r).sqrt()
        theta = torch.zeros(bsz)
    w, h = w.clamp(1, wid - 2), h.clamp(1, hgt - 2)
    cos, sin = theta.cos(), theta.sin()
    # half extents of the rotated box, to keep the pasted region inside the image
    ey = 0.5 * (h * cos.abs() + w * sin.abs())
    ex = 0.5 * (w * cos.abs() + h * sin.abs())
    src_y = _uniform(bsz, 0, 1, g) * (hgt - 1 - h) + h / 2     # source box is axis-aligned
    src_x = _uniform(bsz, 0, 1, g) * (wid - 1 - w) + w / 2
    dst_y = _uniform(bsz, 0, 1, g) * (hgt - 1 - 2 * ey).clamp_min(0) + ey
    dst_x = _uniform(bsz, 0, 1, g) * (wid - 1 - 2 * ex).clamp_min(0) + ex

    ys = torch.arange(hgt, dtype=torch.float32).view(1, hgt, 1)
    xs = torch.arange(wid, dtype=torch.float32).view(1, 1, wid)
    col = lambda v: v.view(bsz, 1, 1)  # noqa: E731
    dy, dx = ys - col(dst_y), xs - col(dst_x)                    # (B,H,W) offsets from the target centre
    uy = col(cos) * dy + col(sin) * dx                           # the same offsets in box coordinates
    ux = -col(sin) * dy + col(cos) * dx
    mask = (uy.abs() <= col(h) / 2) & (ux.abs() <= col(w) / 2)
    sy = (col(src_y) + uy).round().long().clamp(0, hgt - 1)
    sx = (col(src_x) + ux).round().long().clamp(0, wid - 1)

    source = color_jitter(images, jitter, g).permute(0, 2, 3, 1)  # (B,H,W,3)
    dev = images.device
    bidx = torch.arange(bsz, device=dev).view(bsz, 1, 1)
    pasted = source[bidx, sy.to(dev), sx.to(dev)].permute(0, 3, 1, 2)  # (B,3,H,W)
    mask = mask.to(dev)
    return torch.where(mask[:, None], pasted, images), mask


def psg_batch(images: torch.Tensor, batch: int, generator: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` images of each class drawn from `(N,3,H,W)` -> (inputs `(3*batch,3,H,W)`, labels)."""
    idx = torch.randint(0, images.shape[0], (3, batch), generator=generator)
    normal = images[idx[0]]
    cp, _ = cutpaste(images[idx[1]], generator, scar=False)
    sc, _ = cutpaste(images[idx[2]], generator, scar=True)
    labels = torch.arange(3).repeat_interleave(batch)
    return torch.cat([normal, cp, sc]), labels


def psg_finetune(backbone: nn.Module, train_images: torch.Tensor, steps: int, batch: int = 8,
                 lr: float = 3e-4, seed: int = 0, device: torch.device | str = "cpu",
                 log: list | None = None) -> nn.Module:
    """Fine-tune a copy of a torchvision ResNet (fc = Identity, 512-d output) with PSG.

    train_images `(N,3,256,256)` in [0,1]; each step sees `batch` normal, `batch` CutPaste and
    `batch` CutPaste-Scar images. Returns the fine-tuned copy in eval mode (the input backbone
    is untouched). `log`, if given, receives one cross-entropy value per step.
    """
    net = copy.deepcopy(backbone).to(device).eval()
    if steps <= 0:
        return net.requires_grad_(False)
    with torch.no_grad():
        out_dim = net(torch.zeros(1, 3, 64, 64, device=device)).shape[1]
    net.requires_grad_(True)
    head = nn.Linear(out_dim, len(LABELS)).to(device)
    with torch.no_grad():  # seeded head, without touching the global random state
        head.weight.copy_(0.01 * torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(seed)))
        head.bias.zero_()
    params = list(net.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=3e-5)
    # net stays in eval mode: frozen BatchNorm statistics (module docstring); gradients still flow
    for step in range(steps):
        x, y = psg_batch(train_images, batch, step_generator(seed, step))
        loss = F.cross_entropy(head(net(normalize(x.to(device)))), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if log is not None:
            log.append(loss.item())
    return net.eval().requires_grad_(False)
