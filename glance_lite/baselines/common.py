"""Small pieces every baseline shares: memory guard, chunked nearest-neighbour search,
ResNet-18 intermediate features, upsampling and Gaussian smoothing of score maps.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torch import nn

from ..teacher import normalize

GIB = 1024 ** 3
DEFAULT_MAX_BYTES = 2 * GIB  # default limit of any feature bank a baseline builds


@contextmanager
def single_thread(device: torch.device | str):
    """Run a block on one CPU thread (no-op on GPU). For loops of small ops and batches of tiny
    matrix solves, intra-op threading costs a synchronisation per op that can exceed the op
    itself; on a busy 2-core machine we measured 10-35x slowdowns with 2 threads."""
    old = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def gib(nbytes: float) -> str:
    """Bytes -> "1.5 GiB" (3 significant digits, so tiny limits stay readable)."""
    return f"{nbytes / GIB:.3g} GiB"


def max_bank_bytes(max_bank_gb: float) -> int:
    """The `--max-bank-gb` value (GiB) in bytes; ValueError naming it unless positive and finite."""
    try:
        value = float(max_bank_gb)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"--max-bank-gb must be a positive, finite number of GiB; got {max_bank_gb!r}")
    return max(1, round(value * GIB))


def check_bank_size(rows: int, dim: int, limit: int = DEFAULT_MAX_BYTES, what: str = "memory bank",
                    itemsize: int = 4, extra: int = 0) -> int:
    """Bytes of a `(rows, dim)` float bank (+ `extra`); ValueError above `limit`, before it is built."""
    size = rows * dim * itemsize + extra
    if size > limit:
        more = f" + {gib(extra)} of working copies and statistics" if extra else ""
        raise ValueError(
            f"the {what} would need {rows:,} x {dim} floats{more} = {gib(size)}, above the limit of "
            f"{gib(limit)}. Use fewer training images (or a smaller grid / image size), or raise the "
            f"limit (--max-bank-gb of glance-lite compare; max_bank_bytes in Python) if the machine "
            f"has the memory.")
    return size


def fill_batches(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch: int
                 ) -> torch.Tensor:
    """`torch.cat([fn(part) for part in images.split(batch)])`, written into one preallocated tensor,
    so the per-batch results and the whole result never exist at the same time."""
    out = None
    for start in range(0, len(images), batch):
        part = fn(images[start:start + batch])
        if out is None:
            out = part.new_empty((len(images), *part.shape[1:]))
        out[start:start + len(part)] = part
    return out


@torch.no_grad()
def resnet_features(backbone: nn.Module, images: torch.Tensor, layers: tuple[str, ...],
                    batch: int = 8) -> list[torch.Tensor]:
    """Intermediate maps of a torchvision ResNet for images `(N,3,256,256)` in [0,1].

    Returns one tensor per name in `layers` ("layer1".."layer4"), e.g. for ResNet-18 at 256 px:
    layer1 `(N,64,64,64)`, layer2 `(N,128,32,32)`, layer3 `(N,256,16,16)`. Runs in eval mode on
    the backbone's device, `batch` images at a time; results are returned on that device.
    """
    was_training = backbone.training
    backbone.eval()
    dev = next(backbone.parameters()).device
    names = ("layer1", "layer2", "layer3", "layer4")
    last = max(names.index(n) for n in layers)
    outs: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    for part in images.split(batch):
        x = normalize(part.to(dev))
        x = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(x))))
        for name in names[:last + 1]:
            x = getattr(backbone, name)(x)
            if name in outs:
                outs[name].append(x)
    backbone.train(was_training)
    return [torch.cat(outs[n]) for n in layers]


def upsample(maps: torch.Tensor, size: int = 256) -> torch.Tensor:
    """Bilinear resize of score maps `(N,h,w)` -> `(N,size,size)`."""
    return F.interpolate(maps[:, None].float(), size=(size, size), mode="bilinear",
                         align_corners=False)[:, 0]


def gaussian_smooth(maps: torch.Tensor, sigma: float = 4.0) -> torch.Tensor:
    """Gaussian blur of every map `(N,H,W)` (scipy, sigma in pixels; the N axis is not blurred)."""
    if sigma <= 0:
        return maps
    out = gaussian_filter(maps.detach().cpu().numpy().astype(np.float32), sigma=(0, sigma, sigma))
    return torch.from_numpy(out)
