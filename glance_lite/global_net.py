"""Global-Net G (paper Sec. 3.1, Eq. 6, supplementary Tab. 2).

Global-Net looks at the whole 256x256 image except the patch and predicts the patch's local
feature: Z_g = G(I, M0) with M0 = 0 on the patch and 1 elsewhere (Eq. 6). Every convolution is
a partial convolution (Eq. 5), so the hole's pixels cannot reach Z_g ("no peeking").

    (B,3,256,256) -PConv0 7x7/2,16-> 125 -ReLU-MaxPool3/2-> 62
      -PConv1_1 3x3/2,32-> 30 -PConv1_2 3x3,32-> 28 -PConv2_1 3x3/2,64-> 13 -PConv2_2 3x3,64-> 11
      -PConv3_1 3x3/2,128-> 5 -PConv3_2 3x3,128-> 3 -PConv4 3x3,128-> 1      (ReLU between)

Three architectures (`arch`):

* ``"paper"`` - supp. Tab. 2 exactly, as drawn above.
* ``"coords"`` - our deviation (measured in benchmarks/accuracy.py, chapter 4 of the book).
  Tab. 2 never tells the network *where* the hole is: partial convolution hides the hole, and
  by layer 1_2 the updated mask is all ones, so the position survives only as faint
  renormalisation artefacts. A network that cannot tell which patch to predict can only
  predict the average patch, and that is what the paper architecture learns in a short
  schedule. "coords" adds the hole's position, and nothing of its pixels:
    1. two channels concatenated to layer 1_2's output (the input of PConv2_1, 32 -> 34
       channels): the offset of every location's receptive-field centre from the hole's centre,
       in units of 128 px, so the later layers know which neighbour is left of the hole;
    2. a learned position prior P added to the output: a (128, 17, 17) table of vectors over the
       image, read bilinearly at the hole's centre - "what a patch here usually looks like" -
       so the convolutions only need to learn how the context changes that.
  The hole's centre is computed from the mask M0 alone (the mean position of its zeros), so
  the no-peeking property is unchanged (tests/test_partial_conv.py checks every architecture).
* ``"centred"`` - "coords" with layers 2_1 .. 4 run on a hole-centred window (our second
  deviation and the short profiles' default; docs/deviations.md#global_arch). Tab. 2 ends in a 1x1 output
  whose 3x3 kernels weigh *image* positions: to use "the dot 48 px right of the hole" the
  network must learn that conjunction for every hole position anew. "centred" moves layer
  1_2's 28x28 map so that the hole's location lies at its middle (locations outside the image
  get mask 0, which partial convolution already handles) before PConv2_1; a neighbour at a
  given offset from the hole then always meets the same weights (what a convolution gives a
  pixel, given to the hole). Shifts are whole layer-1_2 steps (8 px); the rest of the offset
  is in the coordinate channels, and P still says where in the image the hole is.

`mask_plan(mask)` runs the mask half of the network alone; its result can be passed back to
`forward` so that many images with the same holes share the mask computations (scoring.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .partial_conv import MaskStep, PartialConv2d, mask_step, pool_mask

IMAGE_SIZE = 256
ARCHS = ("paper", "coords", "centred")
PRIOR_SIDE = 17         # knots of the position prior per side ("coords"), one every 16 px
COORD_UNIT = 128.0      # pixels per unit of the relative-coordinate channels ("coords")
L12_STRIDE, L12_CENTRE = 8, 17  # layer 1_2 location o sees input pixels 8o .. 8o+34 (centre 8o+17)
BACK_START = 3  # index of PConv2_1 among the partial convolutions (`mask_plan`'s `start`)

# (name, in, out, kernel, stride) of the partial convolutions after the first pooling layer.
_TAB2 = [
    ("pconv1_1", 16, 32, 3, 2),
    ("pconv1_2", 32, 32, 3, 1),
    ("pconv2_1", 32, 64, 3, 2),
    ("pconv2_2", 64, 64, 3, 1),
    ("pconv3_1", 64, 128, 3, 2),
    ("pconv3_2", 128, 128, 3, 1),
    ("pconv4", 128, 128, 3, 1),
]


def centre_index(centres: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where the "centred" move reads: hole centres `(B,2)` in pixels, an n x n layer-1_2 map ->
    rows `(B,n,1)` and cols `(B,1,n)` of the map to read (clamped inside it), valid `(B,1,n,n)`
    (0 where the window lies outside the image) and the window's first row / col `(B,2)`."""
    o = torch.round((centres - L12_CENTRE) / L12_STRIDE).long().clamp(0, n - 1)
    first = o - n // 2                                                # in [-n//2, n - 1 - n//2]
    idx = first[:, :, None] + torch.arange(n, device=centres.device)  # (B,2,n) rows / cols of the map
    inside = ((idx >= 0) & (idx < n)).to(centres.dtype)
    valid = (inside[:, 0, :, None] * inside[:, 1, None, :]).unsqueeze(1)
    idx = idx.clamp(0, n - 1)             # outside the image: any location, zeroed by `valid`
    return idx[:, 0, :, None], idx[:, 1, None, :], valid, first


def centre_on_hole(x: torch.Tensor, m: torch.Tensor, centres: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The "centred" move: layer 1_2 features `(B,C,n,n)` and mask `(B|1,1,n,n)`, hole centres
    `(B,2)` in pixels -> the n x n window of both whose middle location (n // 2) is the one
    nearest the hole's centre (zeros and mask 0 outside the image), and the window's first
    row / col `(B,2)` in layer-1_2 locations (negative when it starts outside the image)."""
    b, n = x.shape[0], x.shape[-1]
    rows, cols, valid, first = centre_index(centres.to(x.dtype), n)
    bi = torch.arange(b, device=x.device).view(-1, 1, 1)
    # plain advanced indexing of the map itself: its backward scatters into a (B,C,n,n) map
    # (not a padded one, nor all (2n)^2 windows of an unfold view: 4x and 10 GB more memory)
    take = lambda t: t.permute(0, 2, 3, 1)[bi, rows, cols].permute(0, 3, 1, 2)  # noqa: E731
    return take(x) * valid, take(m.expand(b, -1, -1, -1)) * valid, first.to(x.dtype)


def check_arch(arch: str) -> str:
    if arch not in ARCHS:
        raise ValueError(f"unknown Global-Net architecture {arch!r}; expected one of {', '.join(ARCHS)}")
    return arch


def check_image_and_mask(image: torch.Tensor, mask: torch.Tensor, size: int = IMAGE_SIZE) -> None:
    """Raise ValueError unless image is (B,3,size,size) and mask (B|1,1,size,size)."""
    if image.dim() != 4 or image.shape[1] != 3 or tuple(image.shape[2:]) != (size, size):
        raise ValueError(f"Global-Net expects images (B, 3, {size}, {size}); got {tuple(image.shape)}")
    if mask.dim() != 4 or mask.shape[1] != 1 or tuple(mask.shape[2:]) != (size, size):
        raise ValueError(f"Global-Net expects a single-channel mask (B, 1, {size}, {size}); "
                         f"got {tuple(mask.shape)}")
    if mask.shape[0] not in (1, image.shape[0]):
        raise ValueError(f"mask batch {mask.shape[0]} does not match image batch {image.shape[0]}")


def hole_centres(mask: torch.Tensor) -> torch.Tensor:
    """Centre (row, col) in pixels of the hole (the zeros) of each mask `(B,1,S,S)` -> `(B,2)`."""
    hole = 1.0 - mask[:, 0].float()
    pos = torch.arange(mask.shape[-1], device=mask.device, dtype=hole.dtype)
    area = hole.sum(dim=(1, 2)).clamp(min=1.0)
    return torch.stack([(hole.sum(2) * pos).sum(1) / area, (hole.sum(1) * pos).sum(1) / area], dim=1)


class GlobalNet(nn.Module):
    """Global-Net: image `(B,3,256,256)` + mask `(B,1,256,256)` -> `(B,128)`; `arch` above."""

    def __init__(self, feature_dim: int = 128, arch: str = "paper"):
        super().__init__()
        self.arch = check_arch(arch)
        extra = 0 if arch == "paper" else 2
        self.pconv0 = PartialConv2d(3, 16, 7, stride=2)
        self.relu0 = nn.ReLU()
        self.pool0 = nn.MaxPool2d(3, 2)
        for name, cin, cout, k, s in _TAB2:
            setattr(self, name, PartialConv2d(cin + (extra if name == "pconv2_1" else 0),
                                              cout if name != "pconv4" else feature_dim, k, s))
        self.relu = nn.ReLU()
        if arch != "paper":
            self.prior = nn.Parameter(torch.zeros(1, feature_dim, PRIOR_SIDE, PRIOR_SIDE))

    def _convs(self) -> list[PartialConv2d]:
        return [self.pconv0] + [getattr(self, name) for name, *_ in _TAB2]

    @staticmethod
    def mask_plan(mask: torch.Tensor, start: int = 0) -> list[MaskStep]:
        """Mask bookkeeping of every partial convolution for masks `(B,1,256,256)`.

        Depends only on the hole geometry (never on the image or the weights), so it can be
        computed once for a raster grid and reused for every test image. With `start` > 0,
        `mask` is the input mask of convolution number `start` (e.g. 3: PConv2_1, a 28x28 mask)
        and only the steps from there on are returned.
        """
        steps, m = [], mask
        kernels = [(7, 2)] + [(k, s) for _, _, _, k, s in _TAB2]
        for i, (k, s) in enumerate(kernels[start:], start=start):
            step = mask_step(m, k, s)
            steps.append(step)
            m = pool_mask(step.mask, 3, 2) if i == 0 else step.mask
        return steps

    def back(self, x: torch.Tensor, m: torch.Tensor, steps: list[MaskStep] | None,
             centres: torch.Tensor | None, first: torch.Tensor | None = None) -> torch.Tensor:
        """Layers 2_1 .. 4 (+ the "coords" / "centred" additions): layer 1_2 output
        `(B,32,28,28)`, its mask, the mask steps of those layers and the hole centres `(B,2)` in
        pixels -> Z_g `(B,128)`. "centred" moves the map first (`centre_on_hole`) and then
        computes the moved mask's own steps (the given ones are for the unmoved map); with
        `first` (`centre_index`'s), x and m are already moved (fast_global.py moves while it reads)."""
        if self.arch != "paper":
            side = x.shape[-1]
            c = centres.to(x.dtype)
            if self.arch == "centred":
                if first is None:
                    x, m, first = centre_on_hole(x, m, c)
                first = first.to(x.dtype)
                steps = GlobalNet.mask_plan(m, start=BACK_START)
            else:
                first = torch.zeros_like(c)
            ar = torch.arange(side, device=x.device, dtype=x.dtype)
            loc = (first[:, :, None] + ar) * L12_STRIDE + L12_CENTRE  # (B,2,side) pixel rows / cols
            dy = (loc[:, 0, :, None] - c[:, :1, None]).expand(-1, side, side)
            dx = (loc[:, 1, None, :] - c[:, 1:, None]).expand(-1, side, side)
            rel = torch.stack([dy, dx], dim=1) / COORD_UNIT
            x = torch.cat([x, rel], dim=1)
        convs = self._convs()[len(self._convs()) - len(steps):]
        x = x.contiguous(memory_format=torch.channels_last)  # CPU: PConv2_1 fwd + bwd 2x faster than NCHW
        for conv, st in zip(convs, steps):
            x, m = conv(x, m, st)
            if conv is not self.pconv4:
                x = self.relu(x)
        z = x.flatten(1)
        if self.arch != "paper":
            z = z + self.position_prior(centres)
        return z

    def position_prior(self, centres: torch.Tensor) -> torch.Tensor:
        """The learned prior P at hole centres `(B,2)` (pixels) -> `(B,128)` (not in "paper")."""
        xy = (centres.flip(1) / (IMAGE_SIZE - 1) * 2 - 1).to(self.prior.dtype)  # grid_sample wants (x, y)
        out = F.grid_sample(self.prior.expand(len(xy), -1, -1, -1), xy.view(-1, 1, 1, 2),
                            mode="bilinear", align_corners=True)
        return out.flatten(1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor,
                plan: list[MaskStep] | None = None) -> torch.Tensor:
        """image (B,3,256,256), mask (B|1,1,256,256) with 0 on the hole -> Z_g (B,128).

        plan: optional output of `mask_plan(mask)` to skip the mask computations.
        """
        check_image_and_mask(image, mask)
        convs = self._convs()
        steps = plan if plan is not None else [None] * len(convs)
        x, m = self.pconv0(image, mask, steps[0])
        x = self.pool0(self.relu0(x))
        m = pool_mask(m, 3, 2)
        for conv, st in zip(convs[1:3], steps[1:3]):
            x, m = conv(x, m, st)
            x = self.relu(x)
        centres = hole_centres(mask).expand(image.shape[0], -1) if self.arch != "paper" else None
        return self.back(x, m, steps[3:], centres)
