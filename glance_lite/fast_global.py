"""Global-Net on many holes of one image, without recomputing what the hole cannot change.

Scoring needs Z_g for K*K = 400 holes per image. Run naively, every hole costs a full masked
pass of Global-Net over the 256x256 image, and almost all of it is repeated: Global-Net has no
padding, so an activation differs from the hole-free image's only if its receptive field
touches the hole. Up to layer 1_2 that is a small window:

    layer 1_2 output o (28x28 map) sees input rows 8o .. 8o+34 (stride 8, receptive field 35)
    a 33x33 hole touches at most 9 of its rows and 9 of its columns

So, per image, we run layers 0 .. 1_2 once *without* a hole (all-ones mask: Eq. 5 with scale
exactly 1), and per hole we recompute only that 9x9 window of layer 1_2, running layers
0 .. 1_2 with the same Eq. 5 on a 99x99 crop of the image and of the hole mask, and paste it
in. Layers 2_1 ... 4 then run on the patched `(B,32,28,28)` maps with the precomputed mask plan
(`GlobalNet.mask_plan`). The result equals `GlobalNet.forward` up to float rounding (tested to
1e-5); it executes about a quarter fewer FLOPs and never touches the 62x62 maps per hole.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from .global_net import GlobalNet, centre_index
from .partial_conv import MaskStep, mask_step, pool_mask
from .patches import PatchGrid, gather_windows

STRIDE, FIELD = 8, 35  # layer 1_2 output o <- input rows STRIDE*o .. STRIDE*o + FIELD - 1 (Tab. 2)
FRONT = 3  # convolutions in the windowed front: pconv0 (+ pool), pconv1_1, pconv1_2


def front(net: GlobalNet, x: torch.Tensor, mask: torch.Tensor,
          steps: list[tuple[torch.Tensor, MaskStep]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Layers 0 .. 1_2 of Tab. 2 (Eq. 5): `(B,3,H,W)`, mask `(B|1,1,H,W)` -> features and mask of
    layer 1_2, `(B,32,h,w)` and `(B|1,1,h,w)` (28x28 for a 256x256 input, n x n for a crop of
    8(n-1)+35 pixels). steps: `front_steps(mask)`, to skip the mask computations."""
    steps = steps or front_steps(mask)
    convs = [net.pconv0, net.pconv1_1, net.pconv1_2]
    x = x.contiguous(memory_format=torch.channels_last)  # 10x faster max-pool on CPU
    for i, (conv, (m, st)) in enumerate(zip(convs, steps)):
        x, _ = conv(x, m, st)
        x = net.pool0(net.relu0(x)) if i == 0 else net.relu(x)
    return x, steps[-1][1].mask


def front_steps(mask: torch.Tensor) -> list[tuple[torch.Tensor, MaskStep]]:
    """(input mask, MaskStep) of pconv0, pconv1_1, pconv1_2 for masks `(B,1,H,W)`: what `front`
    needs that depends only on the hole geometry."""
    out, m = [], mask
    for i, (k, s) in enumerate([(7, 2), (3, 2), (3, 1)]):
        st = mask_step(m, k, s)
        out.append((m, st))
        m = pool_mask(st.mask, 3, 2) if i == 0 else st.mask
    return out


@lru_cache(maxsize=4)
def crop_steps(grid: PatchGrid, device: str) -> list[tuple[torch.Tensor, MaskStep]]:
    """`front_steps` of every hole's mask crop, `(K*K,1,...)`, computed once per grid."""
    n, o0 = window_plan(grid)
    crops = gather_windows(grid.masks(device), torch.arange(grid.n_patches, device=device),
                           STRIDE * o0.to(device), STRIDE * (n - 1) + FIELD)
    return front_steps(crops)


def hole_free_front(net: GlobalNet, images: torch.Tensor) -> torch.Tensor:
    """Layer 1_2 of the hole-free images: `(N,3,S,S)` normalised -> `(N,32,28,28)` for S = 256."""
    return front(net, images, images.new_ones(1, 1, *images.shape[-2:]))[0]


def _touched(r: int, p: int) -> tuple[int, int]:
    """First and last layer-1_2 row whose receptive field meets hole rows [r, r+p)."""
    return math.ceil((r - FIELD + 1) / STRIDE), (r + p - 1) // STRIDE


@lru_cache(maxsize=4)
def window_plan(grid: PatchGrid) -> tuple[int, torch.Tensor]:
    """(n, o0): window side n and `(K*K, 2)` first layer-1_2 row/col of each hole's window."""
    side = (((grid.image_size - 7) // 2 + 1 - 3) // 2 + 1 - 3) // 2 + 1 - 2  # 28 for 256x256
    n = window_side(grid.patch_size, grid.image_size, side)
    return n, window_origins(grid.top_left, grid.patch_size, n, side)


def window_origins(top_left: torch.Tensor, patch_size: int, n: int, side: int = 28) -> torch.Tensor:
    """First layer-1_2 row/col of the n x n window that each hole `(B,2)` can change -> `(B,2)`."""
    lo = torch.div(top_left - FIELD + 1 + STRIDE - 1, STRIDE, rounding_mode="floor")  # ceil
    return lo.clamp(min=0, max=side - n)


def window_side(patch_size: int, image_size: int = 256, side: int = 28) -> int:
    """Side n of the layer-1_2 window a patch_size hole can change (9 for 33x33 holes)."""
    spans = [_touched(r, patch_size) for r in range(image_size - patch_size + 1)]
    return min(max(min(hi, side - 1) - max(lo, 0) + 1 for lo, hi in spans), side)


def features_at(net: GlobalNet, images: torch.Tensor, base: torch.Tensor, img_idx: torch.Tensor,
                top_left: torch.Tensor, patch_size: int, n: int,
                steps: list[tuple[torch.Tensor, MaskStep]] | None = None,
                plan: list[MaskStep] | None = None, fused: bool = True) -> torch.Tensor:
    """Z_g `(B,128)` for holes at `top_left` `(B,2)` in images[img_idx] (differentiable).

    images: normalised `(N,3,S,S)`; base: `hole_free_front(net, images)`; n: `window_side`.
    steps: `front_steps` of the holes' mask crops and plan: `GlobalNet.mask_plan` of their
    full-size masks; both depend on the geometry only, so scoring computes them once per grid
    (`global_features_holes`) and training (`context_train.py`) here, from `top_left`.
    fused ("centred" only): read the hole-centred map straight from `base` and paste the window
    into it (`_centred_map`), instead of copying base per hole, pasting, then moving (same
    numbers; one `(B,32,28,28)` copy and its backward fewer; fused=False is the reference).
    """
    dev = images.device
    o0 = window_origins(top_left, patch_size, n, base.shape[-1])
    crop = STRIDE * (n - 1) + FIELD
    if steps is None:  # from the crops alone: outside its window the hole changes no mask
        ar = torch.arange(crop, device=dev)
        rows = (STRIDE * o0[:, :1] + ar)[:, :, None]  # (B,crop,1) image rows of the crop
        cols = (STRIDE * o0[:, 1:] + ar)[:, None, :]
        hole = ((rows >= top_left[:, :1, None]) & (rows < top_left[:, :1, None] + patch_size)
                & (cols >= top_left[:, 1:, None]) & (cols < top_left[:, 1:, None] + patch_size))
        steps = front_steps((~hole).float().unsqueeze(1))
        m12 = base.new_ones(len(top_left), 1, *base.shape[-2:])
        idx_r = (o0[:, :1] + ar[:n])[:, :, None]
        idx_c = (o0[:, 1:] + ar[:n])[:, None, :]
        m12[torch.arange(len(top_left), device=dev).view(-1, 1, 1), 0, idx_r, idx_c] = steps[-1][1].mask[:, 0]
        # only .mask of [FRONT-1] is read; "centred" plans its moved map itself (GlobalNet.back)
        later = [] if net.arch == "centred" else GlobalNet.mask_plan(m12, start=FRONT)
        plan = [MaskStep(m12, m12)] * FRONT + later
    win, _ = front(net, gather_windows(images, img_idx, STRIDE * o0, crop), steps[0][0], steps)
    centres = top_left.to(base.dtype) + (patch_size - 1) / 2
    if fused and net.arch == "centred":
        moved = _centred_map(base, img_idx, win, steps[-1][1].mask, o0, centres)
        if moved is not None:
            return net.back(*moved[:2], None, centres, moved[2])
    feat = base[img_idx].clone()
    ar = torch.arange(n, device=dev)
    b = torch.arange(len(top_left), device=dev).view(-1, 1, 1)
    fl = feat.permute(0, 2, 3, 1)  # a view: writing into it writes into feat
    fl[b, (o0[:, :1] + ar)[:, :, None], (o0[:, 1:] + ar)[:, None, :]] = win.permute(0, 2, 3, 1)
    return net.back(feat, plan[FRONT - 1].mask, plan[FRONT:], centres)


def _centred_map(base: torch.Tensor, img_idx: torch.Tensor, win: torch.Tensor, win_mask: torch.Tensor,
                 o0: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The "centred" move (`global_net.centre_on_hole`) of base[img_idx] with each hole's window
    pasted in, done as one read of `base`: layer 1_2 `(N,32,s,s)`, windows `(B,32,n,n)` and their
    masks `(B,1,n,n)` at first row/col o0 `(B,2)`, hole centres `(B,2)` -> moved features
    `(B,32,s,s)`, moved mask `(B,1,s,s)`, the moved map's first row/col `(B,2)`; None when a
    window would stick out of the moved map (holes far larger than a 33x33 patch)."""
    side, n = base.shape[-1], win.shape[-1]
    rows, cols, valid, first = centre_index(centres, side)
    at = o0 - first  # the window sits around the hole, so inside the moved map (where valid = 1)
    if bool(((at < 0) | (at + n > side)).any()):
        return None
    moved = base.permute(0, 2, 3, 1)[img_idx.view(-1, 1, 1), rows, cols]  # (B,s,s,32), outside: any
    mask = valid.clone()
    ar = torch.arange(n, device=base.device)
    b = torch.arange(len(o0), device=base.device).view(-1, 1, 1)
    r, c = (at[:, :1] + ar)[:, :, None], (at[:, 1:] + ar)[:, None, :]
    moved[b, r, c] = win.permute(0, 2, 3, 1)
    mask[b, 0, r, c] = win_mask[:, 0]
    return moved.permute(0, 3, 1, 2) * valid, mask, first


def global_features_holes(net: GlobalNet, images: torch.Tensor, img_idx: torch.Tensor,
                          hole_idx: torch.Tensor, grid: PatchGrid, plan: list[MaskStep],
                          base: torch.Tensor) -> torch.Tensor:
    """Z_g `(B,128)` for pairs (images[img_idx[b]], grid hole hole_idx[b]).

    images: normalised `(N,3,S,S)`; base: `hole_free_front(net, images)`, `(N,32,28,28)`;
    plan: `GlobalNet.mask_plan(grid.masks())`, the mask bookkeeping of the full-size holes.
    """
    n, _ = window_plan(grid)
    dev = images.device
    steps = [(m[hole_idx], MaskStep(st.scale[hole_idx], st.mask[hole_idx]))
             for m, st in crop_steps(grid, str(dev))]
    hole_plan = [MaskStep(st.scale[hole_idx], st.mask[hole_idx]) for st in plan]
    return features_at(net, images, base, img_idx, grid.top_left.to(dev)[hole_idx], grid.patch_size,
                       n, steps, hole_plan)
