"""Global-Net on many holes of one image, without recomputing what the hole cannot change.

Scoring needs Z_g for K*K = 400 holes per image. Run naively, most of the work is Global-Net's
first layer (a 7x7/2 partial convolution on the full 256x256 image, about 60 % of its FLOPs),
and almost all of it is repeated: an output of that layer (and of the max-pool after it) differs
from the hole-free image's only if its receptive field touches the hole.

So, per image, we compute layer 0 + ReLU + max-pool once *without* a hole (a plain convolution,
Eq. 5 with M = 1), and per hole we recompute only a fixed-size window of the pooled map around
the hole from a crop of the input - with the exact same Eq. 5 - and paste it in. Layers 1_1 ...
4 then run on the patched (B,16,62,62) maps with the precomputed mask plan (`GlobalNet.mask_plan`).
The result equals `GlobalNet.forward` up to float rounding (tested to 1e-5).

Geometry (pooled index q <-> layer-0 index 2q <-> input row 4q): a hole [r, r+P) touches layer-0
rows i with 2i+6 >= r and 2i <= r+P-1, hence pooled rows q with 2q+2 >= i_lo and 2q <= i_hi.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from .global_net import GlobalNet
from .partial_conv import MaskStep
from .patches import PatchGrid

K0, S0, KP, SP = 7, 2, 3, 2  # layer 0 kernel/stride, pool kernel/stride (supplementary Tab. 2)


def _pooled_range(r: int, p: int) -> tuple[int, int]:
    i_lo, i_hi = math.ceil((r - (K0 - 1)) / S0), (r + p - 1) // S0
    return math.ceil((i_lo - (KP - 1)) / SP), i_hi // SP


@lru_cache(maxsize=4)
def window_plan(grid: PatchGrid) -> tuple[int, torch.Tensor]:
    """(Q, q0): pooled window side Q and `(K*K, 2)` first pooled row/col of each hole's window."""
    n_pool = ((grid.image_size - K0) // S0 + 1 - KP) // SP + 1  # 62 for 256x256
    ranges = [_pooled_range(r, grid.patch_size) for r in range(grid.image_size - grid.patch_size + 1)]
    q_side = min(max(hi - lo + 1 for lo, hi in ranges), n_pool)
    tl = grid.top_left
    lo = torch.tensor([max(_pooled_range(int(v), grid.patch_size)[0], 0) for v in tl.view(-1)]).view(-1, 2)
    return q_side, lo.clamp(max=n_pool - q_side)


def gather_windows(x: torch.Tensor, index: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Crops of x `(N,C,H,W)`: crop b is rows[b] x cols[b] of x[index[b]] -> `(B,C,h,w)`.

    rows `(B,h)`, cols `(B,w)`; only the crops are copied, never whole images.
    """
    b = index.view(-1, 1, 1)
    return x.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def layer0_pooled(net: GlobalNet, x: torch.Tensor, mask: torch.Tensor | None = None):
    """Layer 0 + ReLU + max-pool of Tab. 2 (Eq. 5); mask None means 'no hole'."""
    if mask is None:
        # Eq. 5 with M = 1 (scale exactly 1), written as PartialConv2d computes it so that
        # both paths round identically
        y = F.conv2d(x, net.pconv0.weight, None, S0) + net.pconv0.bias.view(1, -1, 1, 1)
        return F.max_pool2d(F.relu(y), KP, SP), None
    y, m = net.pconv0(x, mask)
    return F.max_pool2d(F.relu(y), KP, SP), F.max_pool2d(m, KP, SP)


def global_features_holes(net: GlobalNet, images: torch.Tensor, img_idx: torch.Tensor,
                          hole_idx: torch.Tensor, grid: PatchGrid, masks: torch.Tensor,
                          plan: list[MaskStep], base: torch.Tensor) -> torch.Tensor:
    """Z_g `(B,128)` for pairs (images[img_idx[b]], hole hole_idx[b]).

    images: normalised `(N,3,S,S)`; base: `layer0_pooled(net, images)[0]`, `(N,16,62,62)`;
    masks/plan: the grid's hole masks `(K*K,1,S,S)` and `GlobalNet.mask_plan(masks)`.
    """
    q_side, q0 = window_plan(grid)
    dev = images.device
    q0 = q0.to(dev)[hole_idx]  # (B,2)
    ar_q = torch.arange(q_side, device=dev)
    ar_in = torch.arange(4 * q_side + K0, device=dev)  # input rows 4*q0 .. 4*(q0+Q-1)+2*2+6
    rows_in, cols_in = 4 * q0[:, :1] + ar_in, 4 * q0[:, 1:] + ar_in
    x_win = gather_windows(images, img_idx, rows_in, cols_in)
    m_win = gather_windows(masks, hole_idx, rows_in, cols_in)
    win, _ = layer0_pooled(net, x_win, m_win)  # (B,16,Q,Q); its mask equals the plan's
    feat = base[img_idx].clone()
    rq, cq = q0[:, :1] + ar_q, q0[:, 1:] + ar_q
    b = torch.arange(len(hole_idx), device=dev).view(-1, 1, 1)
    fl = feat.permute(0, 2, 3, 1)  # a view: writing into it writes into feat
    fl[b, rq[:, :, None], cq[:, None, :]] = win.permute(0, 2, 3, 1)
    steps = [MaskStep(st.scale[hole_idx], st.mask[hole_idx]) for st in plan[1:]]
    x, m = feat, F.max_pool2d(plan[0].mask[hole_idx], KP, SP)
    for conv, step in zip(net._convs()[1:], steps):
        x, m = conv(x, m, step)
        if conv is not net.pconv4:
            x = net.relu(x)
    return x.flatten(1)
