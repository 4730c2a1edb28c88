"""Global-Net G (paper Sec. 3.1, Eq. 6, supplementary Tab. 2).

Global-Net looks at the whole 256x256 image except the patch and predicts the patch's local
feature: Z_g = G(I, M0) with M0 = 0 on the patch and 1 elsewhere (Eq. 6). Every convolution is
a partial convolution (Eq. 5), so the hole's pixels cannot reach Z_g ("no peeking").

    (B,3,256,256) -PConv0 7x7/2,16-> 125 -ReLU-MaxPool3/2-> 62
      -PConv1_1 3x3/2,32-> 30 -PConv1_2 3x3,32-> 28 -PConv2_1 3x3/2,64-> 13 -PConv2_2 3x3,64-> 11
      -PConv3_1 3x3/2,128-> 5 -PConv3_2 3x3,128-> 3 -PConv4 3x3,128-> 1      (ReLU between)

`mask_plan(mask)` runs the mask half of the network alone; its result can be passed back to
`forward` so that many images with the same holes share the mask computations (scoring.py).
"""
from __future__ import annotations

import torch
from torch import nn

from .partial_conv import MaskStep, PartialConv2d, mask_step, pool_mask

IMAGE_SIZE = 256

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


def check_image_and_mask(image: torch.Tensor, mask: torch.Tensor, size: int = IMAGE_SIZE) -> None:
    """Raise ValueError unless image is (B,3,size,size) and mask (B|1,1,size,size)."""
    if image.dim() != 4 or image.shape[1] != 3 or tuple(image.shape[2:]) != (size, size):
        raise ValueError(f"Global-Net expects images (B, 3, {size}, {size}); got {tuple(image.shape)}")
    if mask.dim() != 4 or mask.shape[1] != 1 or tuple(mask.shape[2:]) != (size, size):
        raise ValueError(f"Global-Net expects a single-channel mask (B, 1, {size}, {size}); "
                         f"got {tuple(mask.shape)}")
    if mask.shape[0] not in (1, image.shape[0]):
        raise ValueError(f"mask batch {mask.shape[0]} does not match image batch {image.shape[0]}")


class GlobalNet(nn.Module):
    """Global-Net of supplementary Tab. 2: image `(B,3,256,256)` + mask `(B,1,256,256)` -> `(B,128)`."""

    def __init__(self, feature_dim: int = 128):
        super().__init__()
        self.pconv0 = PartialConv2d(3, 16, 7, stride=2)
        self.relu0 = nn.ReLU()
        self.pool0 = nn.MaxPool2d(3, 2)
        for name, cin, cout, k, s in _TAB2:
            setattr(self, name, PartialConv2d(cin, cout if name != "pconv4" else feature_dim, k, s))
        self.relu = nn.ReLU()

    def _convs(self) -> list[PartialConv2d]:
        return [self.pconv0] + [getattr(self, name) for name, *_ in _TAB2]

    @staticmethod
    def mask_plan(mask: torch.Tensor) -> list[MaskStep]:
        """Mask bookkeeping of every partial convolution for masks `(B,1,256,256)`.

        Depends only on the hole geometry (never on the image or the weights), so it can be
        computed once for a raster grid and reused for every test image.
        """
        steps, m = [], mask
        for i, (k, s) in enumerate([(7, 2)] + [(k, s) for _, _, _, k, s in _TAB2]):
            step = mask_step(m, k, s)
            steps.append(step)
            m = pool_mask(step.mask, 3, 2) if i == 0 else step.mask
        return steps

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
        for i, conv in enumerate(convs[1:], start=1):
            x, m = conv(x, m, steps[i])
            if conv is not self.pconv4:
                x = self.relu(x)
        return x.flatten(1)
