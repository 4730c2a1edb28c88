"""Patches and hole masks (paper Sec. 3.3, Fig. 2b; supplementary Sec. C.1).

The raster grid places K x K (20 x 20 by default) patches of 33 x 33 pixels uniformly over a
256 x 256 image, in raster-scan order (row by row), overlapping where K*33 > 256. Corners sit on
even pixels by default (`align=2`): then all patches share Local-Net's first pooling grid and
Local-Net can run once over the whole image (fast_local.py); this moves a patch by <= 1 px.
For each patch we need the patch itself (for Local-Net) and the hole mask M0 (for Global-Net,
Eq. 6: 0 on the patch, 1 elsewhere). Everything is gathered with tensor indexing - no loops over patches.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

PATCH_SIZE = 33  # the side of a patch p, Sec. 3 (supp. Tab. 1's input)


def gather_windows(x: torch.Tensor, index: torch.Tensor, top_left: torch.Tensor, size: int) -> torch.Tensor:
    """Square crops of x `(N,C,H,W)`: crop b is x[index[b]] at top_left[b] `(B,2)` -> `(B,C,size,size)`.

    Indexes a strided view of all windows (`unfold`), so only the crops are copied. No bounds
    check: callers pass corners that keep the crop inside (`crop` checks them).
    """
    windows = x.unfold(2, size, 1).unfold(3, size, 1)  # (N,C,H-size+1,W-size+1,size,size), a view
    return windows[index, :, top_left[:, 0], top_left[:, 1]]


def crop(images: torch.Tensor, top_left: torch.Tensor, size: int) -> torch.Tensor:
    """Batched crops: images `(B,C,H,W)`, top_left `(B,N,2)` (row, col) -> `(B,N,C,size,size)`.

    `top_left` may also be `(N,2)`, meaning the same N crops from every image.
    """
    b, c, h, w = images.shape
    if top_left.dim() == 2:
        top_left = top_left.unsqueeze(0).expand(b, -1, -1)
    tl = top_left.to(images.device).long()
    if tl.numel() and (tl.min() < 0 or tl[..., 0].max() + size > h or tl[..., 1].max() + size > w):
        raise ValueError(f"crop of size {size} at {tl.view(-1, 2).tolist()[:3]}... leaves the "
                         f"{h}x{w} image")
    n = tl.shape[1]
    index = torch.arange(b, device=images.device).repeat_interleave(n)
    return gather_windows(images, index, tl.reshape(-1, 2), size).view(b, n, c, size, size)


def hole_masks(top_left: torch.Tensor, image_size: int, size: int) -> torch.Tensor:
    """M0 of Eq. 6 for each box: top_left `(N,2)` -> `(N,1,image_size,image_size)`, 0 on the patch."""
    tl = top_left.long()
    pos = torch.arange(image_size, device=tl.device)
    in_rows = (pos >= tl[:, 0, None]) & (pos < tl[:, 0, None] + size)  # (N,S)
    in_cols = (pos >= tl[:, 1, None]) & (pos < tl[:, 1, None] + size)
    hole = in_rows[:, :, None] & in_cols[:, None, :]
    return (~hole).float().unsqueeze(1)


def random_top_left(n: int, image_size: int, size: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """`(n,2)` uniformly random top-left corners of size x size boxes inside the image."""
    return torch.randint(0, image_size - size + 1, (n, 2), generator=generator)


def patch_on_defect(mask: torch.Tensor, size: int = PATCH_SIZE) -> tuple[int, int]:
    """Top-left corner (row, col) of a size x size patch centred *inside* a defect mask `(H,W)`
    (or `(1,H,W)`), kept inside the image; the image's centre for an empty mask.

    The centre is the pixel of the mask's largest connected region that lies farthest from the
    region's border (a distance transform). A mask's centroid is not enough: for a swap or a
    misplaced part (two regions) it lands on the empty board between them.
    """
    from scipy import ndimage
    m = mask.reshape(mask.shape[-2:]).cpu().numpy() > 0.5
    h, w = m.shape
    if not m.any():
        return (h - size) // 2, (w - size) // 2
    labels, n = ndimage.label(m)
    largest = 1 + int(ndimage.sum(m, labels, range(1, n + 1)).argmax())
    depth = ndimage.distance_transform_edt(labels == largest)
    r, c = divmod(int(depth.argmax()), w)
    return (min(max(r - size // 2, 0), h - size), min(max(c - size // 2, 0), w - size))


@dataclass(frozen=True)
class PatchGrid:
    """The raster grid of Sec. 3.3: `per_side`^2 patches spread uniformly over the image."""

    image_size: int = 256
    patch_size: int = PATCH_SIZE
    per_side: int = 20
    align: int = 2  # corners are multiples of this (2: Local-Net's pool1 aligns, fast_local.py)

    def __post_init__(self):
        if not 0 < self.patch_size <= self.image_size:
            raise ValueError(f"patch_size {self.patch_size} must be in (0, image_size={self.image_size}]")
        if self.per_side < 1:
            raise ValueError(f"per_side must be >= 1; got {self.per_side}")
        if self.align < 1:
            raise ValueError(f"align must be >= 1; got {self.align}")

    @property
    def n_patches(self) -> int:
        return self.per_side ** 2

    @property
    def offsets(self) -> torch.Tensor:
        """`(K,)` first row/col of each patch: a * round(linspace(0, (S - P) // a, K)), a = align.

        The K corners are spread uniformly over the multiples of `align` that keep the patch
        inside the image (for align = 1: round(linspace(0, S - P, K))).
        """
        a = self.align
        steps = torch.linspace(0, (self.image_size - self.patch_size) // a, self.per_side)
        return steps.round().long() * a

    @property
    def top_left(self) -> torch.Tensor:
        """`(K*K, 2)` (row, col) corners in raster order: patch i is row i // K, col i % K."""
        r, c = torch.meshgrid(self.offsets, self.offsets, indexing="ij")
        return torch.stack([r.reshape(-1), c.reshape(-1)], dim=1)

    @property
    def centres(self) -> torch.Tensor:
        """`(K*K, 2)` pixel centres (row, col) of the patches (P odd: an exact pixel)."""
        return self.top_left.float() + (self.patch_size - 1) / 2

    def patches(self, images: torch.Tensor) -> torch.Tensor:
        """`(B,C,S,S) -> (B,K*K,C,P,P)` all grid patches of every image."""
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            raise ValueError(f"grid expects {self.image_size}x{self.image_size} images; got {tuple(images.shape)}")
        return crop(images, self.top_left, self.patch_size)

    def masks(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """`(K*K,1,S,S)` hole masks M0 (Eq. 6), one per grid patch."""
        return hole_masks(self.top_left.to(device), self.image_size, self.patch_size)
