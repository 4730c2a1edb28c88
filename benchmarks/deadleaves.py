"""An offline teacher candidate: ResNet-18 trained contrastively on dead-leaves images.

"Learning to See by Looking at Noise" (Baradad et al., NeurIPS 2021) trains a network with a
contrastive objective on images from simple generative processes; among them, dead leaves
(occluding shapes with a power-law size distribution, here with a sinusoidal texture each)
come closest to natural-image statistics. This file generates such images in torch, augments
two views of each (random resized crop, flip, colour jitter, grey) and trains with SimCLR's
NT-Xent loss (Chen et al., ICML 2020). `python benchmarks/teacher.py build deadleaves OUT` calls
`train_contrastive` and stores the backbone; `teacher.py measure OUT` then measures it.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from glance_lite.teacher import normalize


def dead_leaves(n: int, size: int, g: torch.Generator, shapes: int = 128,
                r_min: float = 0.03, r_max: float = 0.5) -> torch.Tensor:
    """`n` dead-leaves images `(n,3,size,size)` in [0,1]: `shapes` discs or rectangles each, radii
    (relative to the side) drawn from p(r) ~ r^-3 in [r_min, r_max], painted back to front, each
    with a random colour modulated by a random oriented sinusoid."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    img = torch.rand(n, 3, 1, 1, generator=g).expand(n, 3, size, size).clone()
    u = torch.rand(n, shapes, generator=g)  # inverse CDF of r^-3 on [r_min, r_max]
    r = (r_min ** -2 - u * (r_min ** -2 - r_max ** -2)) ** -0.5
    cx, cy = torch.rand(n, shapes, generator=g), torch.rand(n, shapes, generator=g)
    square = torch.rand(n, shapes, generator=g) < 0.5
    colour = torch.rand(n, shapes, 3, generator=g)
    freq = torch.exp(torch.empty(n, shapes).uniform_(math.log(2), math.log(40), generator=g))
    theta, phase = torch.rand(n, shapes, generator=g) * math.pi, torch.rand(n, shapes, generator=g) * 2 * math.pi
    amp = torch.rand(n, shapes, generator=g) * 0.5
    for k in range(shapes):  # back to front: later shapes occlude earlier ones
        dx, dy = xx - cx[:, k, None, None], yy - cy[:, k, None, None]
        rk = r[:, k, None, None]
        inside = torch.where(square[:, k, None, None], (dx.abs() < rk) & (dy.abs() < rk), dx ** 2 + dy ** 2 < rk ** 2)
        wave = torch.sin(2 * math.pi * freq[:, k, None, None] * (dx * torch.cos(theta[:, k, None, None])
                                                                + dy * torch.sin(theta[:, k, None, None]))
                         + phase[:, k, None, None])
        paint = (colour[:, k, :, None, None] * (1 + amp[:, k, None, None, None] * wave[:, None])).clamp(0, 1)
        img = torch.where(inside[:, None], paint, img)
    return img


def augment(x: torch.Tensor, g: torch.Generator, min_scale: float = 0.2) -> torch.Tensor:
    """SimCLR-style view of every image `(n,3,S,S)`: random resized crop (area scale in
    [min_scale, 1], aspect in [3/4, 4/3]) with a random horizontal flip as one affine sampling,
    then brightness / contrast / saturation jitter and grey with probability 0.2."""
    n = len(x)
    area = torch.empty(n).uniform_(min_scale, 1, generator=g)
    aspect = torch.exp(torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3), generator=g))
    sx, sy = (area * aspect).sqrt().clamp(max=1), (area / aspect).sqrt().clamp(max=1)
    tx, ty = (torch.rand(n, generator=g) * 2 - 1) * (1 - sx), (torch.rand(n, generator=g) * 2 - 1) * (1 - sy)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx * flip, tx, sy, ty
    v = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)
    b = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4, generator=g)
    c = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4, generator=g)
    s = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4, generator=g)
    grey = v.mean(1, keepdim=True)
    v = grey + s * (v - grey)  # saturation
    v = (v * b).clamp(0, 1)  # brightness
    v = (v.mean((1, 2, 3), keepdim=True) + c * (v - v.mean((1, 2, 3), keepdim=True))).clamp(0, 1)
    to_grey = torch.rand(n, 1, 1, 1, generator=g) < 0.2
    return torch.where(to_grey, v.mean(1, keepdim=True).expand_as(v), v)


def nt_xent(z: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's loss on projections `(2n,d)` whose rows i and i+n are two views of one image."""
    z = F.normalize(z, dim=1)
    n = len(z) // 2
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, target)


def train_contrastive(backbone: nn.Module, minutes: float = 25.0, size: int = 64, batch: int = 128,
                      lr: float = 1e-3, seed: int = 0, pool: int = 16384, log_every: int = 20) -> list[float]:
    """Train a torchvision ResNet-18 `backbone` (its fc replaced by nothing) for `minutes` of wall
    time (generating the images included) on a pool of `pool` dead-leaves images, two fresh
    augmented views of `batch` of them a step; cosine learning rate over the number of steps the
    first 10 steps predict; convolutions in bfloat16 (autocast). Returns the loss of every step."""
    g, t0 = torch.Generator().manual_seed(seed), time.perf_counter()
    images = torch.cat([dead_leaves(256, size, g) for _ in range(pool // 256)])
    print(f"{len(images)} dead-leaves images in {time.perf_counter() - t0:.0f} s", flush=True)
    minutes -= (time.perf_counter() - t0) / 60
    backbone.fc = nn.Identity()
    head = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 128))
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-5)
    backbone.train()
    losses, t0, total = [], time.perf_counter(), None
    step = 0
    while total is None or step < total:
        if total is None and step == 10:
            total = max(11, int(minutes * 60 / ((time.perf_counter() - t0) / 10)))
        for group in opt.param_groups:
            group["lr"] = lr * (0.5 * (1 + math.cos(math.pi * step / total)) if total else 1.0)
        x = images[torch.randint(len(images), (batch,), generator=g)]
        views = normalize(torch.cat([augment(x, g), augment(x, g)]))
        with torch.autocast("cpu", dtype=torch.bfloat16):  # 1.5x faster a step on a 2-core CPU (0.98 s vs 1.5 s)
            z = head(backbone(views))
        loss = nt_xent(z.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % log_every == 0:
            print(f"step {step}/{total or '?'} loss {loss.item():.3f} {time.perf_counter() - t0:.0f} s", flush=True)
        step += 1
    backbone.eval()
    return losses
