"""Local-Net on every grid patch at once, sharing the work of overlapping patches.

Scoring needs Z_l = L(p) (Eq. 4) for the K*K = 400 patches of each image. Run patch by patch,
that is about 86 GFLOP per image, 93 % of it in the 5x5 convolution of Tab. 1 (conv2). But the
patches overlap (a pixel lies in about 9 of them), and Local-Net has no padding, so a patch's
conv1 and conv2 outputs are simply crops of the same layers run once over the whole image -
provided the 2x2 max-pool between them groups the same pixel pairs. That holds when every
patch starts on an even row and column, which is why `PatchGrid` snaps its corners to even
pixels by default (`align=2`; it moves a patch by at most 1 px).

So, per image:
    conv1 + LeakyReLU + pool1 + conv2 + LeakyReLU over the whole image   (~25 GFLOP, once)
    then per patch: crop the 11x11 conv2 window at (r/2, c/2) -> pool2 -> conv3 -> conv4
                                                                        (~9 MFLOP a patch)
which gives the same Z_l as `LocalNet.forward` on each crop, up to float rounding (tested to
1e-5), for about a third of the FLOPs.

    (N,3,256,256) -conv1-> (N,128,254,254) -pool1-> 127 -conv2-> (N,256,123,123)
    patch at (r, c), r and c even: its conv2 output is rows r/2 .. r/2+10, cols c/2 .. c/2+10

When every corner is a multiple of 4 (context_train's lattice of training holes), pool2 groups
the same pairs too, and the whole network runs over the image (`local_map`):
    ... -pool2-> (N,256,61,61) -conv3-> 60 -conv4-> (N,128,57,57), entry (i, j) = patch (4i, 4j)
about 30 instead of 54 GFLOP per image for the 56 x 56 = 3136 lattice patches (i, j <= 55: the
last row and column of the map belong to corners whose patch leaves the image).
"""
from __future__ import annotations

import torch

from .local_net import LocalNet
from .patches import PATCH_SIZE, gather_windows

POOL = 2  # the 2x2/2 max-pool between conv1 and conv2 (Tab. 1)


def conv2_side(patch_size: int = PATCH_SIZE) -> int:
    """Side of one patch's conv2 output: 11 for 33x33 patches."""
    return (patch_size - 2) // POOL - 4


def aligned(top_left: torch.Tensor, patch_size: int = PATCH_SIZE) -> bool:
    """True when the dense path applies: 33x33 patches whose corners are all even."""
    return patch_size == PATCH_SIZE and bool((top_left % POOL == 0).all())


def dense_pays(n_patches: int, image_size: int, patch_size: int = PATCH_SIZE) -> bool:
    """True when conv2 over the whole image costs less than conv2 on every patch: its output
    area, 123^2 for 256x256 images, against n_patches * 11^2 (about 125 patches or more)."""
    trunk = (image_size - 2) // POOL - 4
    return n_patches * conv2_side(patch_size) ** 2 > trunk ** 2


def local_trunk(net: LocalNet, images: torch.Tensor) -> torch.Tensor:
    """conv1 -> pool1 -> conv2 of Tab. 1 over whole images: `(N,3,S,S)` normalised ->
    `(N,256,(S-2)//2-4,(S-2)//2-4)`, i.e. `(N,256,123,123)` for S = 256."""
    x = net.pool1(net.lrelu1(net.conv1(images)))
    return net.lrelu2(net.conv2(x))


def _after_conv2(net: LocalNet, x: torch.Tensor) -> torch.Tensor:
    """pool2 -> conv3 -> conv4 of Tab. 1 on conv2 outputs `(B,256,H,W)` -> `(B,128,H',W')`."""
    x = net.pool2(x)
    x = net.lrelu3(net.conv3(x))
    return net.lrelu4(net.conv4(x))


def local_head(net: LocalNet, windows: torch.Tensor) -> torch.Tensor:
    """pool2 -> conv3 -> conv4 of Tab. 1: conv2 windows `(B,256,11,11)` -> Z_l `(B,128)`."""
    return _after_conv2(net, windows).flatten(1)


def local_map(net: LocalNet, images: torch.Tensor) -> torch.Tensor:
    """All of Tab. 1 over whole images: `(N,3,S,S)` normalised -> `(N,128,M,M)`, M = 57 for
    S = 256; entry (i, j) is Z_l of the patch whose corner is (4i, 4j), for every corner whose
    patch lies inside the image (4i <= S - 33).

    Exact when corners are multiples of 4: then both 2x2 max-pools group the same pixels as on
    the patch alone, so pool2, conv3 and conv4 can run over the whole conv2 map as well."""
    return _after_conv2(net, local_trunk(net, images))


def fully_dense(top_left: torch.Tensor, image_size: int, patch_size: int = PATCH_SIZE) -> bool:
    """True when `local_map` applies and pays: 33x33 patches with every corner on a multiple of 4,
    and more of them than a quarter of the map's positions (e.g. context_train's 4-px lattice)."""
    side = (image_size - patch_size) // (POOL * POOL) + 1
    return (patch_size == PATCH_SIZE and bool((top_left % (POOL * POOL) == 0).all())
            and 4 * top_left.shape[0] > side * side)


def grid_local_features(net: LocalNet, images: torch.Tensor, top_left: torch.Tensor,
                        patch_size: int = PATCH_SIZE, chunk: int = 400) -> torch.Tensor:
    """Z_l of every patch: normalised images `(N,3,S,S)`, corners `(K2,2)` -> `(N,K2,128)`.

    All of Local-Net over whole images when `fully_dense` (corners on multiples of 4, many of
    them: context_train's lattice); else the trunk once per image, then crops, when
    `aligned(top_left)` and `dense_pays` (the default 20x20 grid); else patch by patch. All three
    give the same features up to float rounding.
    chunk: patches per forward pass of the per-patch layers; the trunk (or the whole map) is
    held for max(1, chunk // K2) images at a time. Puts `net` in channels_last memory format (faster on
    CPU and GPU; the weights' values are unchanged).
    """
    net.to(memory_format=torch.channels_last)
    n, k2 = images.shape[0], top_left.shape[0]
    top_left = top_left.to(images.device)
    if fully_dense(top_left, images.shape[-1], patch_size):  # e.g. the 4-px lattice of context_train
        r, c = (top_left // (POOL * POOL)).unbind(1)
        return torch.cat([local_map(net, block.contiguous(memory_format=torch.channels_last))[:, :, r, c]
                          for block in images.split(max(1, chunk // k2))]).transpose(1, 2).contiguous()
    dense = aligned(top_left, patch_size) and dense_pays(k2, images.shape[-1], patch_size)
    side = conv2_side(patch_size) if dense else patch_size
    pos = top_left // POOL if dense else top_left
    out = []
    for block in images.split(max(1, chunk // k2)):
        src = local_trunk(net, block.contiguous(memory_format=torch.channels_last)) if dense else block
        for pairs in torch.arange(len(block) * k2, device=images.device).split(chunk):
            win = gather_windows(src, pairs // k2, pos[pairs % k2], side)
            win = win.contiguous(memory_format=torch.channels_last)
            out.append(local_head(net, win) if dense else net(win))
    return torch.cat(out).view(n, k2, -1)
